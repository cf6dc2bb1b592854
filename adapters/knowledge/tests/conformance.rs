//! The knowledge ports' contract (colloquy-conformance) against `SqliteKnowledge` in each search mode; the
//! vector modes embed through the fake OpenAI-compatible embeddings server.

use std::sync::Arc;

use async_trait::async_trait;
use colloquy_core::{
    DocumentInfo, KnowledgeBase, KnowledgeError, KnowledgeIngest, NewDocument, Passage,
};
use colloquy_knowledge::testing::fake::FakeEmbeddings;
use colloquy_knowledge::{EmbeddingsConfig, OpenAiEmbeddings, SearchMode, SqliteKnowledge};

/// A knowledge base and the fake embeddings server it uses, alive together.
struct WithServer {
    kb: SqliteKnowledge,
    _server: Option<FakeEmbeddings>,
}

#[async_trait]
impl KnowledgeBase for WithServer {
    async fn search(&self, query: &str, k: usize) -> Result<Vec<Passage>, KnowledgeError> {
        self.kb.search(query, k).await
    }
}

#[async_trait]
impl KnowledgeIngest for WithServer {
    async fn upsert_document(&self, document: &NewDocument) -> Result<(), KnowledgeError> {
        self.kb.upsert_document(document).await
    }
    async fn delete_document(&self, id: &str) -> Result<bool, KnowledgeError> {
        self.kb.delete_document(id).await
    }
    async fn documents(&self) -> Result<Vec<DocumentInfo>, KnowledgeError> {
        self.kb.documents().await
    }
}

async fn with_mode(mode: SearchMode) -> WithServer {
    if mode == SearchMode::Bm25 {
        return WithServer {
            kb: SqliteKnowledge::open_in_memory(None).expect("opens"),
            _server: None,
        };
    }
    let server = FakeEmbeddings::start(512).await;
    let embedder = OpenAiEmbeddings::new(EmbeddingsConfig {
        base_url: server.base_url(),
        model: "fake".into(),
        ..EmbeddingsConfig::default()
    })
    .expect("valid settings");
    let kb = SqliteKnowledge::open_in_memory(Some(Arc::new(embedder)))
        .expect("opens")
        .with_mode(mode)
        .expect("mode");
    WithServer {
        kb,
        _server: Some(server),
    }
}

async fn bm25_kb() -> WithServer {
    with_mode(SearchMode::Bm25).await
}

async fn vector_kb() -> WithServer {
    with_mode(SearchMode::Vector).await
}

async fn hybrid_kb() -> WithServer {
    with_mode(SearchMode::Hybrid).await
}

colloquy_conformance::knowledge_contract_tests!(bm25, bm25_kb);
colloquy_conformance::knowledge_contract_tests!(vector, vector_kb);
colloquy_conformance::knowledge_contract_tests!(hybrid, hybrid_kb);
