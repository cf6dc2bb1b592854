//! Retrieval quality on the shipped Kestrel docs and their labelled questions:
//! every search mode must find most answers in its top 5. The vector modes use the
//! fake hashed bag-of-words embeddings (CI has no model); BENCHMARKS.md has the
//! figures of a real embedding model (`examples/knowledge_eval.rs`).

use std::sync::Arc;

use colloquy_knowledge::testing::eval::{evaluate, load_questions, Metrics};
use colloquy_knowledge::testing::fake::FakeEmbeddings;
use colloquy_knowledge::testing::testdata;
use colloquy_knowledge::{
    ingest, EmbeddingsConfig, IngestOptions, OpenAiEmbeddings, SearchMode, SqliteKnowledge,
};

async fn metrics(kb: SqliteKnowledge) -> Metrics {
    let summary = ingest(
        &kb,
        &[testdata().join("kestrel")],
        &IngestOptions::default(),
        |_| {},
    )
    .await
    .expect("ingest");
    assert_eq!(summary.files, 11);
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    let questions = load_questions(&testdata().join("questions.json")).expect("questions");
    assert!(questions.len() >= 30);
    evaluate(&kb, &questions).await.expect("evaluate")
}

#[tokio::test]
async fn every_mode_finds_most_answers() {
    let bm25 = metrics(SqliteKnowledge::open_in_memory(None).expect("opens")).await;
    let server = FakeEmbeddings::start(1024).await;
    let embedder = Arc::new(
        OpenAiEmbeddings::new(EmbeddingsConfig {
            base_url: server.base_url(),
            model: "fake".into(),
            ..EmbeddingsConfig::default()
        })
        .expect("valid"),
    );
    let open = |mode| {
        SqliteKnowledge::open_in_memory(Some(embedder.clone()))
            .expect("opens")
            .with_mode(mode)
            .expect("mode")
    };
    let vector = metrics(open(SearchMode::Vector)).await;
    let hybrid = metrics(open(SearchMode::Hybrid)).await;
    for (name, m) in [
        ("bm25", &bm25),
        ("vector (fake)", &vector),
        ("hybrid (fake)", &hybrid),
    ] {
        println!(
            "{name:14} recall@5 {:.3}  MRR {:.3}  misses {:?}",
            m.recall_at_5, m.mrr, m.misses
        );
    }
    assert!(bm25.recall_at_5 >= 0.85, "bm25 {bm25:?}");
    assert!(bm25.mrr >= 0.6, "bm25 {bm25:?}");
    assert!(vector.recall_at_5 >= 0.6, "vector {vector:?}");
    assert!(hybrid.recall_at_5 >= 0.85, "hybrid {hybrid:?}");
}

/// The multi-turn set of `rag_eval` (figures with a real model in BENCHMARKS.md):
/// every label names exactly one passage, and with BM25 the retrieval rule of
/// `colloquy_core::knowledge::retrieve` ranks the answer first for most turns, topic
/// switches above all (the previous question no longer pulls its page up).
#[tokio::test]
async fn retrieval_follows_the_current_question_over_conversations() {
    use colloquy_core::knowledge::{retrieve, RetrievalPlan};
    use colloquy_core::KnowledgeBase;
    use colloquy_knowledge::testing::eval::{evaluate_conversations, load_conversations};

    let kb = SqliteKnowledge::open_in_memory(None).expect("opens");
    ingest(
        &kb,
        &[testdata().join("kestrel")],
        &IngestOptions::default(),
        |_| {},
    )
    .await
    .expect("ingest");
    let conversations =
        load_conversations(&testdata().join("conversations.json")).expect("conversations");
    assert!(conversations.len() >= 20);
    // Every label is answered by exactly one passage (a passage holding the answer
    // holds its every word, so a search for the answer returns it).
    for (c, conversation) in conversations.iter().enumerate() {
        for (t, turn) in conversation.turns.iter().enumerate() {
            let label = turn.question();
            let hits = kb.search(&turn.answer, 1000).await.expect("search");
            let n = hits.iter().filter(|p| label.is_answered_by(p)).count();
            assert_eq!(
                n, 1,
                "conversation {c} turn {t}: {n} passages hold {:?}",
                turn.answer
            );
            assert_eq!(
                turn.kind.is_some(),
                t > 0,
                "conversation {c} turn {t}: every turn after the first is a switch or a follow-up"
            );
        }
    }
    let m = evaluate_conversations(&conversations, |said| {
        let kb = &kb;
        async move {
            let (current, before) = said.split_last().expect("a message");
            let plan = RetrievalPlan::new(before.last().map(String::as_str), current);
            retrieve(kb, &plan, 10).await
        }
    })
    .await
    .expect("evaluate");
    println!("bm25 conversations: {m:?}");
    assert!(m.all.turns >= 40, "{m:?}");
    assert!(m.switches.top1 >= 0.85, "{m:?}");
    assert!(m.all.top1 >= 0.8, "{m:?}");
    assert!(m.all.mrr >= 0.85, "{m:?}");
}
