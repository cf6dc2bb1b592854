//! `colloquy-ceiling`: the bare hyper "hello JSON" server the benchmarks compare
//! colloquy to. Answers `{"message":"hello","ok":true}` to every request.

use std::net::SocketAddr;

use clap::Parser;
use colloquy_bench::ceiling::serve_ceiling;

/// Bare hyper 1.x server answering a small JSON body to every request.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    println!("colloquy-ceiling listening on {}", listener.local_addr()?);
    serve_ceiling(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
