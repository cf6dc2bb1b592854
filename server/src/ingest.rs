//! `colloquy ingest`: files and folders into a knowledge base, with progress on
//! stderr and a summary on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::builder::RangedU64ValueParser;
use clap::Args;
use colloquy_knowledge::{IngestError, IngestOptions, Outcome, SplitConfig};

use crate::knowledge::{EmbeddingsArgs, KnowledgeOpenError, KnowledgeSpec};

/// Reads Markdown (.md), plain text (.txt) and HTML (.html) files, splits them into
/// passages on headings and paragraphs, and stores them in a knowledge base for
/// `colloquy --knowledge`. A file whose content is unchanged since the last run is
/// skipped; a changed one has its passages replaced. Folders are read recursively
/// (hidden entries skipped). With --embeddings-base-url, passages are embedded too.
#[derive(Debug, Clone, Args)]
pub(crate) struct IngestArgs {
    /// The knowledge base to fill: `sqlite:PATH` (created if missing).
    #[arg(long, env = "COLLOQUY_KNOWLEDGE")]
    pub(crate) knowledge: KnowledgeSpec,

    /// Files and folders to ingest.
    #[arg(required = true, value_name = "FILE_OR_DIR")]
    pub(crate) paths: Vec<PathBuf>,

    /// Links to the documents: this URL followed by each file's path below the folder
    /// given (e.g. `https://www.example.com/docs/`). Default: the file path.
    #[arg(long, env = "COLLOQUY_INGEST_BASE_URL")]
    pub(crate) base_url: Option<String>,

    /// Also remove stored documents of the given folders whose file is gone.
    #[arg(long)]
    pub(crate) prune: bool,

    /// Longest passage, in characters.
    #[arg(long, default_value_t = SplitConfig::default().max_chars,
          value_parser = RangedU64ValueParser::<usize>::new().range(100..=20_000))]
    pub(crate) max_passage_chars: usize,

    /// Characters repeated from the end of one passage at the start of the next.
    #[arg(long, default_value_t = SplitConfig::default().overlap_chars,
          value_parser = RangedU64ValueParser::<usize>::new().range(0..=5_000))]
    pub(crate) overlap_chars: usize,

    /// The embeddings server, when passages should be embedded too.
    #[command(flatten)]
    pub(crate) embeddings: EmbeddingsArgs,
}

/// Why an ingestion failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IngestCommandError {
    #[error(transparent)]
    Open(#[from] KnowledgeOpenError),
    #[error("ingestion failed")]
    Ingest(#[from] IngestError),
    #[error("embedding failed")]
    Embed(#[source] colloquy_core::KnowledgeError),
    #[error("{0} file(s) could not be ingested")]
    Files(usize),
}

fn label(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Added(n) => format!("added     ({n} passages)"),
        Outcome::Updated(n) => format!("updated   ({n} passages)"),
        Outcome::Unchanged => "unchanged".to_owned(),
        Outcome::Removed => "removed".to_owned(),
        Outcome::Failed(why) => format!("FAILED    ({why})"),
    }
}

/// Runs the ingestion; `Ok` only when every file was ingested.
pub(crate) async fn run(args: IngestArgs) -> Result<(), IngestCommandError> {
    let started = Instant::now();
    let kb = args.embeddings.open(&args.knowledge, None).await?;
    let options = IngestOptions {
        split: SplitConfig {
            max_chars: args.max_passage_chars,
            overlap_chars: args.overlap_chars.min(args.max_passage_chars / 2),
        },
        base_url: args.base_url.clone(),
        prune: args.prune,
    };
    let mut stderr = std::io::stderr();
    let summary = colloquy_knowledge::ingest(&kb, &args.paths, &options, |p| {
        let width = p.total.to_string().len();
        let _ = writeln!(
            stderr,
            "[{:>width$}/{}] {} {}",
            p.index,
            p.total,
            label(p.outcome),
            p.id
        );
    })
    .await?;
    // Passages stored before embeddings were configured (or with another model).
    let embedded = kb
        .embed_missing(256, |done, total| {
            let _ = writeln!(std::io::stderr(), "embedding passages: {done}/{total}");
        })
        .await
        .map_err(IngestCommandError::Embed)?;
    if summary.added + summary.updated + summary.removed > 0 {
        kb.optimize().await.map_err(IngestCommandError::Embed)?;
    }
    let stats = kb.stats().await.map_err(IngestCommandError::Embed)?;
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        summary.passages as f64 / secs
    } else {
        0.0
    };
    println!(
        "{} files: {} added, {} updated, {} unchanged, {} removed, {} failed; \
         {} passages written in {secs:.1} s ({rate:.0} passages/s){}; \
         {} now holds {} documents, {} passages",
        summary.files,
        summary.added,
        summary.updated,
        summary.unchanged,
        summary.removed,
        summary.failed.len(),
        summary.passages,
        if embedded > 0 {
            format!(", {embedded} passages embedded")
        } else {
            String::new()
        },
        args.knowledge,
        stats.documents,
        stats.passages,
    );
    if summary.failed.is_empty() {
        Ok(())
    } else {
        Err(IngestCommandError::Files(summary.failed.len()))
    }
}
