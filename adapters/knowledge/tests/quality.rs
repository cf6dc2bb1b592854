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
