//! Multi-turn retrieval quality: which query a chat turn searches with. Plays the
//! labelled conversations of `testdata/conversations.json` (topic switches and
//! follow-ups over the shipped Kestrel docs) and prints, for BM25, vectors and hybrid
//! search, the top-1 hit rate and MRR (top 10) of each retrieval rule over every turn
//! after the first:
//!
//! - `previous + new`: the previous user message, then the new one, always (the rule
//!   before issue 26, item 12);
//! - `new alone`: the new message only;
//! - `plan, one query`: [`RetrievalPlan`]'s follow-up query when the new message
//!   reads as a follow-up, else the new message alone (`retrieval_query`, one search);
//! - `plan, fused`: [`retrieve`]: the new message alone, and for a follow-up also the
//!   follow-up query, fused with the new message weighted higher.
//!
//! Needs an OpenAI-compatible embeddings server; `scripts/rag-eval.sh` starts one with
//! the real all-MiniLM-L6-v2 and runs this.

use std::path::PathBuf;

use clap::Parser;
use colloquy_core::knowledge::{retrieve, RetrievalPlan};
use colloquy_core::{KnowledgeBase, KnowledgeError, Passage};
use colloquy_knowledge::testing::eval::{
    evaluate_conversations, load_conversations, ConversationMetrics,
};
use colloquy_knowledge::testing::testdata;
use colloquy_knowledge::{SearchMode, SqliteKnowledge};

mod common;

/// Top-1 and MRR of each retrieval rule over labelled multi-turn conversations.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    knowledge: common::KnowledgeArgs,
    /// Labelled conversations (default: the shipped `conversations.json`).
    #[arg(long)]
    conversations: Option<PathBuf>,
    /// Print the turns each rule missed at rank 1.
    #[arg(long)]
    misses: bool,
}

/// The retrieval rules compared.
#[derive(Debug, Clone, Copy)]
enum Rule {
    PreviousAndNew,
    NewAlone,
    PlanOneQuery,
    PlanFused,
}

impl Rule {
    const ALL: [Self; 4] = [
        Self::PreviousAndNew,
        Self::NewAlone,
        Self::PlanOneQuery,
        Self::PlanFused,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::PreviousAndNew => "previous + new (before)",
            Self::NewAlone => "new alone",
            Self::PlanOneQuery => "plan, one query",
            Self::PlanFused => "plan, fused (now)",
        }
    }

    /// The top 10 for the last of `said` (the user messages so far).
    async fn search(
        self,
        kb: &dyn KnowledgeBase,
        said: &[String],
    ) -> Result<Vec<Passage>, KnowledgeError> {
        let (current, before) = said.split_last().expect("a turn has a message");
        let previous = before.last().map(String::as_str);
        let plan = RetrievalPlan::new(previous, current);
        match self {
            Self::PreviousAndNew => {
                let query = match previous {
                    Some(p) => format!("{p}\n{current}"),
                    None => current.clone(),
                };
                kb.search(&query, 10).await
            }
            Self::NewAlone => kb.search(current, 10).await,
            Self::PlanOneQuery => {
                kb.search(plan.with_previous.as_ref().unwrap_or(&plan.current), 10)
                    .await
            }
            Self::PlanFused => retrieve(kb, &plan, 10).await,
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let conversations = load_conversations(
        &args
            .conversations
            .unwrap_or_else(|| testdata().join("conversations.json")),
    )?;
    let (kb, summary) = args.knowledge.ingest().await?;
    let first = run(&kb, &conversations, Rule::NewAlone).await?;
    println!(
        "{} documents, {} passages, {} conversations, {} scored turns ({} topic switches, {} follow-ups), embeddings: {}\n",
        summary.files,
        summary.passages,
        conversations.len(),
        first.all.turns,
        first.switches.turns,
        first.follow_ups.turns,
        args.knowledge.embeddings_model
    );
    println!("| search | query rule | top-1 | MRR | top-1 switches | top-1 follow-ups |");
    println!("|---|---|---|---|---|---|");
    for mode in [SearchMode::Bm25, SearchMode::Vector, SearchMode::Hybrid] {
        let kb = kb.clone().with_mode(mode)?;
        for rule in Rule::ALL {
            let m = run(&kb, &conversations, rule).await?;
            println!(
                "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
                mode.as_str(),
                rule.name(),
                m.all.top1,
                m.all.mrr,
                m.switches.top1,
                m.follow_ups.top1
            );
            if args.misses {
                for miss in &m.misses {
                    eprintln!("  {} / {}: {miss}", mode.as_str(), rule.name());
                }
            }
        }
    }
    Ok(())
}

async fn run(
    kb: &SqliteKnowledge,
    conversations: &[colloquy_knowledge::testing::eval::Conversation],
    rule: Rule,
) -> Result<ConversationMetrics, KnowledgeError> {
    evaluate_conversations(
        conversations,
        |said| async move { rule.search(kb, &said).await },
    )
    .await
}
