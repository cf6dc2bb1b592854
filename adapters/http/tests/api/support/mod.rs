//! Test support: a real server on a loopback port, a real HTTP client, a
//! spec-following SSE parser, and test doubles for the model and the store.

pub mod client;
pub mod doubles;
pub mod sse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use colloquy_core::ports::{ChatModel, ChatStore};
use colloquy_core::ratelimit::{Admission, RateLimiter, RatePolicy};
use colloquy_core::{ChatService, Clock, EchoModel, ManualClock, ServiceConfig};
use colloquy_http::HttpConfig;
use colloquy_memory::MemoryStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use client::{Client, Reply};

/// How a test server is put together; `Setup::default()` is the echo model over the
/// memory store with a manual clock.
pub struct Setup {
    pub model: Arc<dyn ChatModel>,
    pub config: HttpConfig,
    pub service: ServiceConfig,
    pub store: Option<Arc<dyn ChatStore>>,
    /// Rate limits over a fresh in-memory limiter (or `limiter`).
    pub rate_limits: Option<RatePolicy>,
    /// The limiter `rate_limits` use, when not a fresh in-memory one.
    pub limiter: Option<Arc<dyn RateLimiter>>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            model: Arc::new(EchoModel::new()),
            config: HttpConfig {
                shutdown_grace: Duration::from_secs(10),
                ..HttpConfig::default()
            },
            service: ServiceConfig::default(),
            store: None,
            rate_limits: None,
            limiter: None,
        }
    }
}

impl Setup {
    pub fn model(mut self, model: impl ChatModel) -> Self {
        self.model = Arc::new(model);
        self
    }

    pub fn store(mut self, store: impl ChatStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    pub async fn start(self) -> TestServer {
        TestServer::start(self).await
    }
}

/// A running server and a client pointed at it.
pub struct TestServer {
    pub addr: SocketAddr,
    pub client: Client,
    pub clock: Arc<ManualClock>,
    /// The memory store, when the setup did not bring its own.
    pub store: Option<Arc<MemoryStore>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(setup: Setup) -> Self {
        let clock = Arc::new(ManualClock::new());
        let mut memory = None;
        let store = setup.store.unwrap_or_else(|| {
            let store = Arc::new(MemoryStore::new(clock.clone() as Arc<dyn Clock>));
            memory = Some(store.clone());
            store as Arc<dyn ChatStore>
        });
        let mut builder = ChatService::builder(store, clock.clone())
            .model(setup.model)
            .config(setup.service);
        if let Some(policy) = setup.rate_limits {
            let limiter = setup
                .limiter
                .unwrap_or_else(|| Arc::new(colloquy_core::local::LocalRateLimiter::new()));
            builder = builder.rate_limits(Admission::new(limiter, policy));
        }
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(colloquy_http::serve(
            listener,
            service,
            setup.config,
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            addr,
            client: Client::new(addr),
            clock,
            store: memory,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Starts the graceful shutdown; `finished` waits for `serve` to return.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits (bounded) for `serve` to return after `begin_shutdown`.
    pub async fn finished(&mut self) {
        let task = self.task.take().expect("server task");
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("serve returns within 30 s")
            .expect("serve does not panic");
    }
}

/// Polls `check` every few milliseconds until it returns `Some`, for at most 10 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
