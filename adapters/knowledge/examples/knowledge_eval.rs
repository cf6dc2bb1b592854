//! Retrieval quality of BM25, vectors and hybrid search on the shipped Kestrel docs
//! and their labelled questions, with a real embeddings server; prints a markdown
//! table (recall@5, MRR).
//!
//! ```sh
//! HF_HUB_OFFLINE=1 target/bench-venv/bin/python bench/embeddings_server.py --port 8089 &
//! cargo run --release -p colloquy-knowledge --features testing --example knowledge_eval -- \
//!     --embeddings-base-url http://127.0.0.1:8089/v1 --embeddings-model all-MiniLM-L6-v2
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use colloquy_knowledge::testing::eval::{evaluate, load_questions};
use colloquy_knowledge::testing::testdata;
use colloquy_knowledge::{
    ingest, EmbeddingsConfig, IngestOptions, OpenAiEmbeddings, SearchMode, SqliteKnowledge,
};

/// Recall@5 and MRR of each search mode over a labelled question set.
#[derive(Debug, Parser)]
struct Args {
    /// API root of an OpenAI-compatible embeddings server.
    #[arg(long)]
    embeddings_base_url: String,
    /// The embedding model's name.
    #[arg(long, default_value = "all-MiniLM-L6-v2")]
    embeddings_model: String,
    /// Folder of documents (default: the shipped Kestrel docs).
    #[arg(long)]
    docs: Option<PathBuf>,
    /// Labelled questions, a JSON array of {question, document, answer}.
    #[arg(long)]
    questions: Option<PathBuf>,
    /// Print the questions each mode missed.
    #[arg(long)]
    misses: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let docs = args.docs.unwrap_or_else(|| testdata().join("kestrel"));
    let questions = load_questions(
        &args
            .questions
            .unwrap_or_else(|| testdata().join("questions.json")),
    )?;
    let embedder = Arc::new(OpenAiEmbeddings::new(EmbeddingsConfig {
        base_url: args.embeddings_base_url,
        model: args.embeddings_model.clone(),
        ..EmbeddingsConfig::default()
    })?);
    let kb = SqliteKnowledge::open_in_memory(Some(embedder))?;
    let summary = ingest(&kb, &[docs], &IngestOptions::default(), |_| {}).await?;
    println!(
        "{} documents, {} passages, {} questions, embeddings: {}\n",
        summary.files,
        summary.passages,
        questions.len(),
        args.embeddings_model
    );
    println!("| search | recall@5 | MRR (top 10) |");
    println!("|---|---|---|");
    for mode in [SearchMode::Bm25, SearchMode::Vector, SearchMode::Hybrid] {
        let kb = kb.clone().with_mode(mode)?;
        let m = evaluate(&kb, &questions).await?;
        println!(
            "| {} | {:.3} | {:.3} |",
            mode.as_str(),
            m.recall_at_5,
            m.mrr
        );
        if args.misses {
            for q in &m.misses {
                eprintln!("  {} missed: {q}", mode.as_str());
            }
        }
    }
    Ok(())
}
