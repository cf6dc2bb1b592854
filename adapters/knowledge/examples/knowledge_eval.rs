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

use clap::Parser;
use colloquy_knowledge::testing::eval::{evaluate, load_questions};
use colloquy_knowledge::testing::testdata;
use colloquy_knowledge::SearchMode;

mod common;

/// Recall@5 and MRR of each search mode over a labelled question set.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    knowledge: common::KnowledgeArgs,
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
    let questions = load_questions(
        &args
            .questions
            .unwrap_or_else(|| testdata().join("questions.json")),
    )?;
    let (kb, summary) = args.knowledge.ingest().await?;
    println!(
        "{} documents, {} passages, {} questions, embeddings: {}\n",
        summary.files,
        summary.passages,
        questions.len(),
        args.knowledge.embeddings_model
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
