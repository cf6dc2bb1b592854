//! `colloquy-bench`: starts the ceiling and `colloquy` per store, runs every scenario
//! against each, and prints a markdown table with req/s, p50, p99 and the share of the
//! ceiling's req/s measured in the same run; then SSE scale and Redis round trips.
//!
//! It builds nothing: it takes the release binaries' paths, or finds them beside
//! itself / in `target/release`. `scripts/bench.sh` builds them and runs this.

mod ab;
mod baseline;
mod budgets;
mod limits;
mod machine;
mod orchestrate;
mod postgres;
mod redis;
mod round_trips;
mod servers;
mod settings;
mod summary;
mod sustained;
mod urls;

use std::process::ExitCode;

use clap::Parser;

use crate::settings::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("colloquy-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = orchestrate::run(&args) => outcome,
            _ = tokio::signal::ctrl_c() => Err(orchestrate::Failure::Interrupted),
        }
    });
    // Every child server was killed when the orchestration future was dropped.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("colloquy-bench: some requests failed (see the errors column)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("colloquy-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
