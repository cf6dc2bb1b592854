//! What the retrieval evaluations (`knowledge_eval`, `rag_eval`) share: the flags
//! naming the embeddings server and the documents, and the in-memory knowledge base
//! they build from them.

use std::path::PathBuf;
use std::sync::Arc;

use colloquy_knowledge::testing::testdata;
use colloquy_knowledge::{
    ingest, EmbeddingsConfig, IngestOptions, OpenAiEmbeddings, SqliteKnowledge, Summary,
};

/// The embeddings server and the documents to search.
#[derive(Debug, clap::Args)]
pub(crate) struct KnowledgeArgs {
    /// API root of an OpenAI-compatible embeddings server.
    #[arg(long)]
    pub(crate) embeddings_base_url: String,
    /// The embedding model's name.
    #[arg(long, default_value = "all-MiniLM-L6-v2")]
    pub(crate) embeddings_model: String,
    /// Folder of documents (default: the shipped Kestrel docs).
    #[arg(long)]
    pub(crate) docs: Option<PathBuf>,
}

impl KnowledgeArgs {
    /// An in-memory knowledge base with the documents ingested, embedded by the
    /// server, and what the ingestion read.
    pub(crate) async fn ingest(
        &self,
    ) -> Result<(SqliteKnowledge, Summary), Box<dyn std::error::Error>> {
        let docs = self
            .docs
            .clone()
            .unwrap_or_else(|| testdata().join("kestrel"));
        let embedder = Arc::new(OpenAiEmbeddings::new(EmbeddingsConfig {
            base_url: self.embeddings_base_url.clone(),
            model: self.embeddings_model.clone(),
            ..EmbeddingsConfig::default()
        })?);
        let kb = SqliteKnowledge::open_in_memory(Some(embedder))?;
        let summary = ingest(&kb, &[docs], &IngestOptions::default(), |_| {}).await?;
        Ok((kb, summary))
    }
}
