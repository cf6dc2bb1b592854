//! # colloquy-knowledge
//!
//! Knowledge bases for Colloquy's grounded answers (see `colloquy_core::knowledge`):
//!
//! - [`SqliteKnowledge`]: documents and passages in one SQLite file, searched with
//!   FTS5 and BM25 (`unicode61 remove_diacritics 2`: case and accents do not matter).
//!   Nothing to install or run: the zero-setup default.
//! - [`OpenAiEmbeddings`]: vectors from any OpenAI-compatible `/v1/embeddings`
//!   server, stored in the same file and searched by cosine similarity; with both,
//!   search is hybrid (reciprocal rank fusion of BM25 and vectors, [`SearchMode`]).
//! - [`ingest()`]: Markdown, plain text and HTML files and folders, split into passages
//!   on headings and paragraphs ([`SplitConfig`]: size cap, overlap); a file whose
//!   content hash is unchanged is skipped, a changed one has its passages replaced.
//!
//! ```
//! use std::sync::Arc;
//! use colloquy_core::{ChatService, EchoModel, KnowledgeBase, KnowledgeConfig, ServiceConfig, SystemClock};
//! use colloquy_knowledge::{ingest, IngestOptions, SqliteKnowledge};
//! use colloquy_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("colloquy-kb-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! # std::fs::create_dir_all(&dir)?;
//! # std::fs::write(dir.join("faq.md"), "# FAQ\n\nRefunds are possible within 30 days.\n")?;
//! let kb = Arc::new(SqliteKnowledge::open(dir.join("kb.db"), None).await?);
//! let summary = ingest(kb.as_ref(), &[dir.join("faq.md")], &IngestOptions::default(), |_| {}).await?;
//! assert_eq!(summary.added, 1);
//! let hits = kb.search("refunds", 5).await?; // words match whole: no stemming
//! assert!(hits[0].text.contains("30 days"));
//!
//! let clock = Arc::new(SystemClock);
//! let store = Arc::new(MemoryStore::new(clock.clone()));
//! let service = ChatService::builder(store, clock)
//!     .model(Arc::new(EchoModel::new()))
//!     .config(ServiceConfig::default())
//!     .knowledge(kb, KnowledgeConfig::default())
//!     .build();
//! # drop(service);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! ## The file
//!
//! `kb_documents` (id, title, URI, content hash), `kb_passages` (document, position,
//! title, text), the external-content FTS5 table `kb_fts` kept in step by triggers,
//! `kb_vectors` (one little-endian `f32` BLOB per passage, with its model's name) and
//! `kb_meta` (a generation counter bumped by every write). WAL mode: `colloquy
//! ingest` can write while a server searches; the server's in-memory copy of the
//! vectors is reloaded when the generation changed.
//!
//! ## Feature `testing`
//!
//! `testing::fake` (a deterministic fake embeddings server) and `testing::eval`
//! (recall@k and MRR over labelled questions; top-1 and MRR over labelled multi-turn
//! conversations). The knowledge ports' contract suite is in colloquy-conformance
//! (`knowledge_contract_tests!`), like every port's.

mod embeddings;
mod fusion;
mod html;
mod ingest;
mod query;
mod split;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod vectors;

pub use embeddings::{normalized, Embedder, EmbeddingsConfig, EmbeddingsError, OpenAiEmbeddings};
pub use fusion::{reciprocal_rank_fusion, RRF_K};
pub use html::{html_to_text, HtmlText};
pub use ingest::{
    collect, ingest, load, Format, IngestError, IngestOptions, Outcome, Progress, SourceFile,
    Summary,
};
pub use query::fts_query;
pub use split::{split_markdown, split_plain, Split, SplitConfig, HEADING_SEPARATOR};
pub use sqlite::{OpenError, SearchMode, SqliteKnowledge, Stats, SCHEMA_VERSION};
