//! The chat API over a store of your own: [`NaiveStore`] (this crate's
//! `src/naive_store.rs`, required methods of `ChatStore` only), served with
//! `colloquy_http::serve`. `tests/custom_store.rs` proves the store against the
//! conformance suite in one `store_contract_tests!` call.
//!
//! ```sh
//! cargo run -p colloquy-examples --bin custom-store -- --bind 127.0.0.1:3000
//! curl -s -X POST localhost:3000/api/chats/messages/chat/ -d '{"session_id":"s","message":"hi"}'
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use colloquy_core::{ChatService, EchoModel, SystemClock};
use colloquy_examples::NaiveStore;
use colloquy_http::{serve, HttpConfig};

/// The Colloquy API over a custom (naive, in-memory) store.
#[derive(Parser)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:3000")]
    bind: SocketAddr,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let clock = Arc::new(SystemClock);
    // The store judges expiry by the same clock as the service.
    let store = Arc::new(NaiveStore::new(clock.clone()));
    let service = ChatService::builder(store, clock)
        .model(Arc::new(EchoModel::new()))
        .build();
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    println!(
        "custom-store listening on http://{}",
        listener.local_addr()?
    );
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    // `serve` owns the rest: TCP_NODELAY, peer addresses, graceful shutdown.
    serve(listener, service, HttpConfig::default(), ctrl_c).await;
    Ok(())
}
