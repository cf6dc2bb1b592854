//! Ingest speed (passages/s) and search latency (p50/p99) of the SQLite knowledge
//! base on synthetic documents, at each size asked for.
//!
//! ```sh
//! cargo run --release -p colloquy-knowledge --features testing --example knowledge_bench -- \
//!     --passages 10000,100000 --vectors
//! ```
//!
//! Documents are Markdown files of 10 sections of about 70 words drawn from a
//! 20,000-word synthetic vocabulary with a skewed (Zipf-like) frequency, so each
//! section is one passage. Ingestion goes through `ingest()` (read, split, hash,
//! store, index). Queries are 2-5 words drawn the same way; each search asks for the
//! top 5, one at a time. With `--vectors`, the fake embeddings server (hashed
//! bag-of-words, 384 dimensions, over loopback HTTP) gives every passage a vector,
//! and vector and hybrid search are timed too (the query's embedding request
//! included).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use colloquy_core::KnowledgeBase;
use colloquy_knowledge::testing::fake::FakeEmbeddings;
use colloquy_knowledge::{
    ingest, EmbeddingsConfig, IngestOptions, OpenAiEmbeddings, SearchMode, SqliteKnowledge,
};

/// Knowledge base ingest and search benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Corpus sizes, in passages.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    passages: Vec<usize>,
    /// Searches timed per size and mode.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Also embed (fake embeddings) and time vector and hybrid search.
    #[arg(long)]
    vectors: bool,
    /// Where the corpus and the database go (removed afterwards).
    #[arg(long, default_value = "target/knowledge-bench")]
    dir: PathBuf,
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A word index with a skewed distribution: low indexes are common.
    fn word(&mut self, vocabulary: usize) -> usize {
        ((vocabulary as f64) * self.unit().powf(2.5)) as usize % vocabulary
    }
}

fn vocabulary(n: usize) -> Vec<String> {
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ten", "ra", "vo", "sel", "qu", "bri", "dan", "fo", "gre", "hu", "jin",
        "pel", "sto", "ur", "wex", "zan", "yo",
    ];
    (0..n)
        .map(|i| {
            let mut x = i + 1;
            let mut word = String::new();
            while x > 0 {
                word.push_str(SYLLABLES[x % SYLLABLES.len()]);
                x /= SYLLABLES.len();
            }
            word
        })
        .collect()
}

fn write_corpus(
    dir: &Path,
    passages: usize,
    words: &[String],
    rng: &mut Rng,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let files = passages.div_ceil(10);
    for f in 0..files {
        let mut text = format!("# Document {f}\n\n");
        for s in 0..10.min(passages - f * 10) {
            text.push_str(&format!("## Section {s}\n\n"));
            let len = 55 + (rng.next() % 30) as usize;
            let body: Vec<&str> = (0..len)
                .map(|_| words[rng.word(words.len())].as_str())
                .collect();
            text.push_str(&body.join(" "));
            text.push_str(".\n\n");
        }
        std::fs::write(dir.join(format!("doc-{f:06}.md")), text)?;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn time_searches(kb: &SqliteKnowledge, queries: &[String]) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(queries.len());
    for q in queries {
        let started = Instant::now();
        let hits = kb.search(q, 5).await.expect("search");
        times.push(started.elapsed());
        assert!(hits.len() <= 5);
    }
    times.sort();
    (percentile(&times, 50.0), percentile(&times, 99.0))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let words = vocabulary(20_000);
    let fake = if args.vectors {
        Some(FakeEmbeddings::start(384).await)
    } else {
        None
    };
    println!("| passages | ingest (BM25 index) | search | p50 | p99 |");
    println!("|---|---|---|---|---|");
    for &n in &args.passages {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
        let dir = args.dir.join(format!("corpus-{n}"));
        let _ = std::fs::remove_dir_all(&args.dir);
        write_corpus(&dir, n, &words, &mut rng)?;
        let db = args.dir.join(format!("kb-{n}.db"));
        let kb = SqliteKnowledge::open(&db, None).await?;
        let started = Instant::now();
        let summary = ingest(
            &kb,
            std::slice::from_ref(&dir),
            &IngestOptions::default(),
            |_| {},
        )
        .await?;
        kb.optimize().await?;
        let took = started.elapsed();
        assert_eq!(summary.passages, n, "one passage per section");
        let rate = n as f64 / took.as_secs_f64();
        let queries: Vec<String> = (0..args.queries)
            .map(|_| {
                let len = 2 + (rng.next() % 4) as usize;
                (0..len)
                    .map(|_| words[rng.word(words.len())].as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let (p50, p99) = time_searches(&kb, &queries).await;
        println!(
            "| {n} | {rate:.0} passages/s ({:.1} s) | bm25 | {} | {} |",
            took.as_secs_f64(),
            ms(p50),
            ms(p99)
        );
        if let Some(fake) = &fake {
            let embedder = Arc::new(OpenAiEmbeddings::new(EmbeddingsConfig {
                base_url: fake.base_url(),
                model: "fake-384".into(),
                batch_size: 256,
                ..EmbeddingsConfig::default()
            })?);
            let kb = SqliteKnowledge::open(&db, Some(embedder)).await?;
            let started = Instant::now();
            kb.embed_missing(1024, |_, _| {}).await?;
            let embed_rate = n as f64 / started.elapsed().as_secs_f64();
            for mode in [SearchMode::Vector, SearchMode::Hybrid] {
                let kb = kb.clone().with_mode(mode)?;
                kb.search("warm up the vector index", 5).await?;
                let (p50, p99) = time_searches(&kb, &queries).await;
                println!(
                    "| {n} | {embed_rate:.0} passages/s embedded (fake, loopback) | {} | {} | {} |",
                    mode.as_str(),
                    ms(p50),
                    ms(p99)
                );
            }
        }
        drop(kb);
        let _ = std::fs::remove_dir_all(&args.dir);
    }
    Ok(())
}
