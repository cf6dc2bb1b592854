//! Ingestion of files and folders into a SQLite knowledge file: skipping unchanged
//! files, replacing changed ones, pruning, formats, embeddings.

use std::path::Path;
use std::sync::Arc;

use colloquy_core::{KnowledgeBase, KnowledgeIngest};
use colloquy_knowledge::testing::fake::FakeEmbeddings;
use colloquy_knowledge::testing::testdata;
use colloquy_knowledge::{
    ingest, EmbeddingsConfig, IngestOptions, OpenAiEmbeddings, Outcome, SearchMode, SqliteKnowledge,
};

/// A temporary folder, removed on drop.
fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("colloquy-kb-{tag}-"))
        .tempdir()
        .expect("temp dir")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn embedder(server: &FakeEmbeddings) -> Arc<OpenAiEmbeddings> {
    Arc::new(
        OpenAiEmbeddings::new(EmbeddingsConfig {
            base_url: server.base_url(),
            model: "fake".into(),
            retry: colloquy_core::retry::RetryPolicy {
                max_attempts: 1,
                ..Default::default()
            },
            ..EmbeddingsConfig::default()
        })
        .expect("valid"),
    )
}

#[tokio::test]
async fn reingesting_skips_unchanged_replaces_changed_and_prunes_removed() {
    let tmp = temp_dir("reingest");
    let docs = tmp.path().join("docs");
    copy_dir(&testdata().join("kestrel"), &docs);
    let kb = SqliteKnowledge::open(tmp.path().join("kb.db"), None)
        .await
        .expect("opens");
    let options = IngestOptions::default();

    let mut events = Vec::new();
    let first = ingest(&kb, std::slice::from_ref(&docs), &options, |p| {
        events.push((p.index, p.total, p.outcome.clone()));
    })
    .await
    .expect("ingest");
    assert_eq!((first.files, first.added, first.unchanged), (11, 11, 0));
    assert!(first.passages >= 30, "{first:?}");
    assert_eq!(events.len(), 11);
    assert_eq!(events[10].0, 11);
    assert!(events
        .iter()
        .all(|(_, total, o)| *total == 11 && matches!(o, Outcome::Added(_))));
    let stats = kb.stats().await.expect("stats");
    assert_eq!((stats.documents, stats.passages), (11, first.passages));

    let second = ingest(&kb, std::slice::from_ref(&docs), &options, |_| {})
        .await
        .expect("ingest");
    assert_eq!((second.added, second.updated, second.unchanged), (0, 0, 11));
    assert_eq!(second.passages, 0);

    std::fs::write(
        docs.join("support.txt"),
        "Kestrel support\n\nOur support team now answers around the clock, every day.\n",
    )
    .expect("edit");
    std::fs::remove_file(docs.join("changelog.md")).expect("remove");
    let third = ingest(&kb, std::slice::from_ref(&docs), &options, |_| {})
        .await
        .expect("ingest");
    assert_eq!((third.updated, third.unchanged, third.removed), (1, 9, 0));
    let hits = kb
        .search("support hours Monday Friday", 10)
        .await
        .expect("search");
    assert!(
        hits.iter().all(|p| !p.text.contains("Monday to Friday")),
        "{hits:?}"
    );
    let hits = kb.search("around the clock", 3).await.expect("search");
    assert!(hits[0].text.contains("around the clock"));
    assert!(kb.search("heartbeat cron", 3).await.expect("search")[0]
        .document
        .ends_with("changelog.md"));

    let pruned = ingest(
        &kb,
        std::slice::from_ref(&docs),
        &IngestOptions {
            prune: true,
            ..IngestOptions::default()
        },
        |_| {},
    )
    .await
    .expect("ingest");
    assert_eq!((pruned.removed, pruned.unchanged), (1, 10));
    assert!(kb
        .search("heartbeat cron", 3)
        .await
        .expect("search")
        .iter()
        .all(|p| !p.document.ends_with("changelog.md")));
    assert_eq!(kb.documents().await.expect("docs").len(), 10);
}

#[tokio::test]
async fn formats_titles_uris_and_bad_files() {
    let tmp = temp_dir("formats");
    let docs = tmp.path().join("site");
    std::fs::create_dir_all(docs.join("guides")).expect("mkdir");
    std::fs::create_dir_all(docs.join(".git")).expect("mkdir");
    std::fs::write(docs.join(".git/notes.md"), "# Hidden\n\nsecret").expect("write");
    std::fs::write(docs.join("logo.png"), [0x89, b'P', b'N', b'G']).expect("write");
    std::fs::write(docs.join("broken.md"), [0xff, 0xfe, 0x00]).expect("write");
    std::fs::copy(
        testdata().join("kestrel/security.html"),
        docs.join("guides/security.html"),
    )
    .expect("copy");
    std::fs::write(docs.join("notes.txt"), "Plain paragraph one.\n\nPlain two.").expect("write");
    let kb = SqliteKnowledge::open_in_memory(None).expect("opens");
    let summary = ingest(
        &kb,
        std::slice::from_ref(&docs),
        &IngestOptions {
            base_url: Some("https://kestrel.example/docs/".into()),
            ..IngestOptions::default()
        },
        |_| {},
    )
    .await
    .expect("ingest");
    assert_eq!(summary.files, 3, "hidden and unknown files are skipped");
    assert_eq!(summary.added, 2);
    assert_eq!(summary.failed.len(), 1);
    assert!(summary.failed[0].0.ends_with("broken.md"));
    assert!(summary.failed[0].1.contains("UTF-8"));

    let hits = kb.search("AES-256 encryption", 1).await.expect("search");
    let p = &hits[0];
    assert_eq!(p.title, "Security at Kestrel › Encryption");
    assert_eq!(p.uri, "https://kestrel.example/docs/guides/security.html");
    assert!(p.document.ends_with("site/guides/security.html"), "{p:?}");
    assert!(!p.text.contains('<'), "tags stripped: {p:?}");
    assert!(
        kb.search("analytics track", 5)
            .await
            .expect("search")
            .is_empty(),
        "scripts are not text"
    );
    let docs_listed = kb.documents().await.expect("docs");
    let notes = docs_listed
        .iter()
        .find(|d| d.id.ends_with("notes.txt"))
        .expect("notes");
    assert_eq!(notes.title, "notes");
    assert_eq!(notes.passages, 1);
}

#[tokio::test]
async fn embeddings_are_stored_filled_in_and_seen_by_other_handles() {
    let tmp = temp_dir("vectors");
    let path = tmp.path().join("kb.db");
    let server = FakeEmbeddings::start(256).await;
    let docs = testdata().join("kestrel");

    // Ingested without embeddings first; then an embedder fills the vectors in.
    let plain = SqliteKnowledge::open(&path, None).await.expect("opens");
    let summary = ingest(
        &plain,
        std::slice::from_ref(&docs),
        &IngestOptions::default(),
        |_| {},
    )
    .await
    .expect("ingest");
    let with_vectors = SqliteKnowledge::open(&path, Some(embedder(&server)))
        .await
        .expect("opens")
        .with_mode(SearchMode::Vector)
        .expect("mode");
    assert_eq!(with_vectors.stats().await.expect("stats").vectors, 0);
    let mut reports = Vec::new();
    let filled = with_vectors
        .embed_missing(16, |done, total| reports.push((done, total)))
        .await
        .expect("embed");
    assert_eq!(filled, summary.passages);
    assert_eq!(reports.last(), Some(&(filled, filled)));
    assert_eq!(with_vectors.stats().await.expect("stats").vectors, filled);
    assert_eq!(
        with_vectors
            .embed_missing(16, |_, _| {})
            .await
            .expect("again"),
        0
    );
    let hits = with_vectors
        .search("webhook signature HMAC", 3)
        .await
        .expect("search");
    assert!(hits[0].document.ends_with("api.md"), "{hits:?}");

    // A document written through another handle (another process, in production)
    // is found by vector search: the in-memory vectors are reloaded.
    let writer = SqliteKnowledge::open(&path, Some(embedder(&server)))
        .await
        .expect("opens");
    let extra = tmp.path().join("extra.md");
    std::fs::write(
        &extra,
        "# Mascot\n\nThe Kestrel mascot is a falcon named Ziggy.",
    )
    .expect("write");
    ingest(&writer, &[extra], &IngestOptions::default(), |_| {})
        .await
        .expect("ingest");
    let hits = with_vectors
        .search("falcon mascot Ziggy", 1)
        .await
        .expect("search");
    assert!(hits[0].text.contains("Ziggy"), "{hits:?}");

    // A failing embeddings server fails ingestion (nothing half-written) and vector
    // search, while hybrid search falls back to BM25.
    server.set_failing(true);
    let failing = SqliteKnowledge::open(&path, Some(embedder(&server)))
        .await
        .expect("opens");
    let other = tmp.path().join("other.md");
    std::fs::write(&other, "# Other\n\nSomething else entirely.").expect("write");
    assert!(
        ingest(&failing, &[other], &IngestOptions::default(), |_| {})
            .await
            .is_err()
    );
    assert!(failing
        .documents()
        .await
        .expect("docs")
        .iter()
        .all(|d| !d.id.ends_with("other.md")));
    assert!(with_vectors.search("falcon", 1).await.is_err());
    let hybrid = failing
        .search("falcon mascot", 1)
        .await
        .expect("falls back");
    assert!(hybrid[0].text.contains("Ziggy"));
}
