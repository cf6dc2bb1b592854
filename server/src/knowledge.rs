//! `--knowledge` and `--embeddings-*`: the knowledge base answers are grounded in,
//! shared by the server and `colloquy ingest`.

use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Args, ValueEnum};
use colloquy_core::KnowledgeConfig;
use colloquy_knowledge::{
    Embedder, EmbeddingsConfig, EmbeddingsError, OpenAiEmbeddings, OpenError, SearchMode,
    SqliteKnowledge,
};

use crate::duration;

/// A parsed `--knowledge` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KnowledgeSpec {
    /// `sqlite:PATH`: a SQLite knowledge file, created if missing.
    Sqlite(PathBuf),
}

/// A `--knowledge` value that names no supported knowledge base.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown knowledge base {spec:?}; supported: sqlite:PATH")]
pub(crate) struct KnowledgeSpecError {
    spec: String,
}

impl FromStr for KnowledgeSpec {
    type Err = KnowledgeSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        match spec.trim().strip_prefix("sqlite:") {
            Some(path) if !path.is_empty() => Ok(Self::Sqlite(PathBuf::from(path))),
            _ => Err(KnowledgeSpecError {
                spec: spec.to_owned(),
            }),
        }
    }
}

impl fmt::Display for KnowledgeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
        }
    }
}

/// The embeddings API key: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl FromStr for ApiKey {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// `--knowledge-search`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SearchArg {
    /// BM25 full-text ranking only.
    Bm25,
    /// Embedding similarity only.
    Vector,
    /// Both, fused by reciprocal rank.
    Hybrid,
}

/// Settings of the embeddings server (any OpenAI-compatible `/v1/embeddings`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Embeddings (optional; with them, search is hybrid)")]
pub(crate) struct EmbeddingsArgs {
    /// API root of an OpenAI-compatible embeddings server; `/embeddings` is appended
    /// (OpenAI `https://api.openai.com/v1`, Ollama `http://localhost:11434/v1`, ...).
    /// Without it, the knowledge base is searched by BM25 alone.
    #[arg(long = "embeddings-base-url", env = "COLLOQUY_EMBEDDINGS_BASE_URL")]
    pub(crate) embeddings_base_url: Option<String>,

    /// Embedding model name, as the server knows it. Ingest and serve with the same one.
    #[arg(
        long = "embeddings-model",
        env = "COLLOQUY_EMBEDDINGS_MODEL",
        default_value = "text-embedding-3-small"
    )]
    pub(crate) embeddings_model: String,

    /// API key, sent as `Authorization: Bearer <key>`; local servers need none.
    /// Prefer the environment (COLLOQUY_EMBEDDINGS_API_KEY, else OPENAI_API_KEY).
    #[arg(
        long = "embeddings-api-key",
        env = "COLLOQUY_EMBEDDINGS_API_KEY",
        hide_env_values = true
    )]
    pub(crate) embeddings_api_key: Option<ApiKey>,

    /// Deadline for opening the connection.
    #[arg(long = "embeddings-connect-timeout", env = "COLLOQUY_EMBEDDINGS_CONNECT_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub(crate) embeddings_connect_timeout: Duration,

    /// Deadline for one embeddings request.
    #[arg(long = "embeddings-timeout", env = "COLLOQUY_EMBEDDINGS_TIMEOUT", default_value = "60s", value_parser = duration::parse)]
    pub(crate) embeddings_timeout: Duration,

    /// Texts per embeddings request.
    #[arg(long = "embeddings-batch-size", env = "COLLOQUY_EMBEDDINGS_BATCH_SIZE", default_value_t = 64,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=2048))]
    pub(crate) embeddings_batch_size: usize,
}

/// A knowledge base that could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KnowledgeOpenError {
    #[error("invalid embeddings settings")]
    Embeddings(#[from] EmbeddingsError),
    #[error("could not open the knowledge base {spec}")]
    Open {
        spec: KnowledgeSpec,
        #[source]
        source: OpenError,
    },
}

impl EmbeddingsArgs {
    /// The embedder, when `--embeddings-base-url` is set.
    pub(crate) fn embedder(&self) -> Result<Option<Arc<dyn Embedder>>, EmbeddingsError> {
        let Some(base_url) = &self.embeddings_base_url else {
            return Ok(None);
        };
        let api_key = self
            .embeddings_api_key
            .as_ref()
            .map(|k| k.0.clone())
            .or_else(|| std::env::var("OPENAI_API_KEY").ok())
            .filter(|k| !k.trim().is_empty());
        let embedder = OpenAiEmbeddings::new(EmbeddingsConfig {
            base_url: base_url.clone(),
            api_key,
            model: self.embeddings_model.clone(),
            batch_size: self.embeddings_batch_size,
            connect_timeout: self.embeddings_connect_timeout,
            request_timeout: self.embeddings_timeout,
            ..EmbeddingsConfig::default()
        })?;
        tracing::info!(url = %embedder.url(), model = %self.embeddings_model, "embeddings server");
        Ok(Some(Arc::new(embedder)))
    }

    /// Opens the knowledge base of `spec` with these embeddings, searching in
    /// `search` (default: hybrid with embeddings, BM25 without).
    pub(crate) async fn open(
        &self,
        spec: &KnowledgeSpec,
        search: Option<SearchArg>,
    ) -> Result<SqliteKnowledge, KnowledgeOpenError> {
        let embedder = self.embedder()?;
        let open_error = |source| KnowledgeOpenError::Open {
            spec: spec.clone(),
            source,
        };
        let KnowledgeSpec::Sqlite(path) = spec;
        let kb = SqliteKnowledge::open(path, embedder)
            .await
            .map_err(open_error)?;
        match search {
            None => Ok(kb),
            Some(mode) => kb
                .with_mode(match mode {
                    SearchArg::Bm25 => SearchMode::Bm25,
                    SearchArg::Vector => SearchMode::Vector,
                    SearchArg::Hybrid => SearchMode::Hybrid,
                })
                .map_err(open_error),
        }
    }
}

/// The server's knowledge settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Answers from your documents")]
pub(crate) struct KnowledgeArgs {
    /// Ground answers in a knowledge base filled by `colloquy ingest`: `sqlite:PATH`.
    /// Each chat searches it for the visitor's message, gives the best passages to
    /// the model and returns them as `sources`. Default: none (answers as before).
    #[arg(long, env = "COLLOQUY_KNOWLEDGE")]
    pub(crate) knowledge: Option<KnowledgeSpec>,

    /// How many passages each answer is given at most.
    #[arg(long = "knowledge-top-k", env = "COLLOQUY_KNOWLEDGE_TOP_K", default_value_t = KnowledgeConfig::default().top_k,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=50))]
    pub(crate) knowledge_top_k: usize,

    /// At most this many characters of passages per answer (they also count toward
    /// the context budget, and are trimmed before the conversation).
    #[arg(long = "knowledge-max-chars", env = "COLLOQUY_KNOWLEDGE_MAX_CHARS", default_value_t = KnowledgeConfig::default().max_chars,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) knowledge_max_chars: usize,

    /// How passages are ranked: `bm25`, `vector` or `hybrid`. Default: hybrid with
    /// --embeddings-base-url, bm25 without.
    #[arg(
        long = "knowledge-search",
        env = "COLLOQUY_KNOWLEDGE_SEARCH",
        value_enum
    )]
    pub(crate) knowledge_search: Option<SearchArg>,

    /// The embeddings server.
    #[command(flatten)]
    pub(crate) embeddings: EmbeddingsArgs,
}

impl KnowledgeArgs {
    /// The service's knowledge settings.
    pub(crate) fn config(&self) -> KnowledgeConfig {
        KnowledgeConfig {
            top_k: self.knowledge_top_k,
            max_chars: self.knowledge_max_chars,
            ..KnowledgeConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        assert_eq!(
            "sqlite:kb.db".parse(),
            Ok(KnowledgeSpec::Sqlite(PathBuf::from("kb.db")))
        );
        assert_eq!(
            KnowledgeSpec::Sqlite(PathBuf::from("a/kb.db")).to_string(),
            "sqlite:a/kb.db"
        );
        for bad in ["sqlite:", "kb.db", "postgres://x", ""] {
            assert!(bad.parse::<KnowledgeSpec>().is_err(), "{bad}");
        }
    }
}
