//! `colloquy-slow-echo`: colloquy-http's `serve` over the memory store and an echo
//! model that waits before each chunk — what `colloquy --store memory` runs, plus the
//! per-chunk delay SSE scale needs. Used only while `colloquy` has no such flag.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use colloquy_core::{ChatService, EchoModel, ServiceConfig, SystemClock};
use colloquy_http::{serve, HttpConfig};
use colloquy_memory::MemoryStore;

/// Colloquy on the memory store with a slow echo model, for SSE scale.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Delay before each streamed chunk, in milliseconds.
    #[arg(long, default_value_t = 500)]
    chunk_delay_ms: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let clock = Arc::new(SystemClock);
    let store = Arc::new(MemoryStore::new(clock.clone()));
    let service = ChatService::new(
        store.clone(),
        store,
        Arc::new(EchoModel::with_chunk_delay(Duration::from_millis(
            args.chunk_delay_ms,
        ))),
        clock,
        ServiceConfig::default(),
    );
    let config = HttpConfig {
        bind: args.bind,
        ..HttpConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    println!(
        "colloquy-slow-echo listening on http://{}",
        listener.local_addr()?
    );
    serve(listener, service, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
