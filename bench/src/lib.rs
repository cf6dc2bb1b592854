//! # colloquy-bench
//!
//! Reproducible benchmarks for Colloquy, measured against a bare hyper server (the
//! *ceiling*) in the same run:
//!
//! - [`ceiling`]: the bare hyper 1.x "hello JSON" server (binary `colloquy-ceiling`);
//! - [`load`]: a load generator on `hyper::client::conn::http1` (keep-alive
//!   connections, a fixed duration or request count, latencies in an HDR histogram);
//! - [`scenarios`]: the API scenarios and their data; [`sse_scale`]: many slow
//!   streams held open at once; [`rtt`]: store round trips per API operation;
//!   [`idle_flood`]: many silent connections held against a server (binary
//!   `colloquy-idle-flood`); [`session_events`]: the `SessionEvents` port's
//!   memory and latency (binary `colloquy-session-events`);
//! - the `colloquy-bench` binary starts the servers and prints the markdown table.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use colloquy_bench::load::{self, Load, Mode, Stop};
//! use colloquy_bench::RequestSpec;
//!
//! # async fn example() -> Result<(), colloquy_bench::BenchError> {
//! let result = load::run(&Load {
//!     target: "127.0.0.1:8080".parse().expect("an address"),
//!     connections: 16,
//!     stop: Stop::Duration { warmup: Duration::from_secs(1), measure: Duration::from_secs(5) },
//!     mode: Mode::Whole,
//!     expect: http::StatusCode::OK,
//!     sources: Vec::new(),
//!     plan: Arc::new(|_, _| RequestSpec::get("/healthz")),
//! })
//! .await?;
//! println!("{:.0} req/s, p99 {:?}", result.rps(), result.latency.p99());
//! # Ok(()) }
//! ```

pub mod ceiling;
pub mod client;
mod error;
pub mod idle_flood;
pub mod load;
pub mod process;
pub mod report;
mod request;
pub mod rtt;
pub mod scenarios;
pub mod session_events;
pub mod sse;
pub mod sse_scale;
pub mod stats;

pub use error::BenchError;
pub use request::RequestSpec;
