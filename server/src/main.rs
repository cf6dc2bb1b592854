//! `colloquy`: the Colloquy reference server.
//!
//! Reads its settings from flags and `COLLOQUY_*` variables (`colloquy --help`),
//! opens the store (by default the SQLite file `./colloquy.db`) and the model, and
//! serves the HTTP/SSE API until SIGTERM or Ctrl-C, then shuts down gracefully, closes
//! the store (a SQLite file is checkpointed) and exits 0.

mod config;
mod duration;
mod events;
mod fd_limit;
mod healthcheck;
mod ingest;
mod knowledge;
mod logging;
mod model;
mod openai;
mod purge;
mod redact;
mod signal;
mod store;
mod webhooks;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use colloquy_core::budget::TokenBudgets;
use colloquy_core::decorators::ObservedStore;
use colloquy_core::local::LocalStreamLog;
use colloquy_core::ratelimit::Admission;
use colloquy_core::streams::DEFAULT_LEASE;
use colloquy_core::{ChatService, SystemClock};

use crate::config::{Cli, Command, ConfigError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not open the store {spec}")]
    Store {
        spec: store::StoreSpec,
        #[source]
        source: store::OpenStoreError,
    },
    #[error("could not open the session events of {spec}")]
    Events {
        spec: store::StoreSpec,
        #[source]
        source: store::OpenStoreError,
    },
    #[error("could not set up the model {spec}")]
    Model {
        spec: model::ModelSpec,
        #[source]
        source: model::BuildModelError,
    },
    #[error(transparent)]
    Knowledge(#[from] knowledge::KnowledgeOpenError),
    #[error("could not listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Webhooks(#[from] webhooks::WebhookConfigError),
    #[error("could not install the signal handlers")]
    Signals(#[source] std::io::Error),
}

/// How long, after serving stopped, to wait for the store to close its file.
const STORE_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Builds everything from `cli` and serves until a shutdown signal.
async fn run(cli: Cli) -> Result<(), StartError> {
    let service_config = cli.service_config()?;
    let handoff_config = cli.handoff_config()?;
    let mut http_config = cli.http_config()?;
    http_config.max_connections = fit_connections(http_config.max_connections);
    let metrics = colloquy_http::Metrics::new();
    http_config.metrics = metrics.clone();
    let store_options = cli.store_options();
    let rate_policy = cli.rate_policy()?;
    let clock = Arc::new(SystemClock);
    let stores = cli
        .store
        .open(clock.clone(), &store_options)
        .await
        .map_err(|source| StartError::Store {
            spec: cli.store.clone(),
            source,
        })?;
    let events = events::open_events(&cli.store, &store_options)
        .await
        .map_err(|source| StartError::Events {
            spec: cli.store.clone(),
            source,
        })?;
    let model = cli
        .model
        .build(&cli.openai, cli.echo_chunk_delay)
        .map_err(|source| StartError::Model {
            spec: cli.model.clone(),
            source,
        })?;
    let store::OpenedStore {
        store,
        limiter,
        stream_log,
        idempotency,
        closed,
        outbox,
    } = stores;
    let webhook_setup = cli.webhooks.setup(outbox)?;
    let store: Arc<dyn colloquy_core::ports::ChatStore> = if cli.metrics_bind.is_some() {
        Arc::new(ObservedStore::new(
            store,
            metrics.store_observer(cli.store.kind()),
        ))
    } else {
        store
    };
    let stream_log = stream_log
        .unwrap_or_else(|| Arc::new(LocalStreamLog::new(cli.stream_log_ttl, DEFAULT_LEASE)));
    let mut builder = ChatService::builder(store, clock)
        .model(model)
        .config(service_config)
        .stream_log(stream_log)
        .events(events)
        .handoff(handoff_config);
    if let Some(idempotency) = idempotency {
        builder = builder.idempotency(idempotency);
    }
    let token_policy = cli.token_policy();
    if !token_policy.is_unlimited() {
        builder = builder.token_budgets(TokenBudgets::new(limiter.clone(), token_policy));
    }
    if let Some(price) = cli.model_price {
        builder = builder.model_price(price);
    }
    if !rate_policy.is_unlimited() {
        builder = builder.rate_limits(Admission::new(limiter, rate_policy));
    }
    if let Some(spec) = &cli.knowledge.knowledge {
        let kb = cli
            .knowledge
            .embeddings
            .open(spec, cli.knowledge.knowledge_search)
            .await?;
        tracing::info!(knowledge = %spec, search = kb.mode().as_str(), "answers grounded in a knowledge base");
        builder = builder.knowledge(Arc::new(kb), cli.knowledge.config());
    }
    if let Some(setup) = &webhook_setup {
        builder = builder.webhooks(setup.webhooks.clone());
    }
    let service = builder.build();
    let deliverer = webhook_setup.map(|setup| {
        tracing::info!(
            receivers = setup.targets.len(),
            events = ?setup.webhooks.events(),
            "webhooks on"
        );
        let deliverer =
            colloquy_webhook::Deliverer::spawn(setup.webhooks, setup.targets, setup.delivery);
        let counters = std::sync::Arc::clone(deliverer.metrics());
        metrics.add_renderer(move || counters.render());
        deliverer
    });
    let purger = purge::spawn(service.clone(), cli.purge_interval);
    let signal = signal::shutdown().map_err(StartError::Signals)?;
    let listener = tokio::net::TcpListener::bind(cli.bind)
        .await
        .map_err(|source| StartError::Bind {
            addr: cli.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: cli.bind,
        source,
    })?;
    tracing::info!(
        store = %cli.store,
        model = %cli.model,
        access = %http_config.access,
        admin_token = http_config.admin_token.is_some(),
        rate_limits = ?rate_policy,
        token_budgets = ?token_policy,
        max_generations = ?service.config().max_generations,
        "starting"
    );
    let metrics_server = match cli.metrics_bind {
        Some(metrics_addr) => {
            let listener = tokio::net::TcpListener::bind(metrics_addr)
                .await
                .map_err(|source| StartError::Bind {
                    addr: metrics_addr,
                    source,
                })?;
            let bound = listener.local_addr().unwrap_or(metrics_addr);
            println!("colloquy metrics on http://{bound}/metrics");
            Some(tokio::spawn(colloquy_http::serve_metrics(
                listener,
                metrics,
                service.clone(),
                std::future::pending::<()>(),
            )))
        }
        None => None,
    };
    println!("colloquy listening on http://{addr}");
    // After the line above: scripts and tests read it as the first line.
    if http_config.console && http_config.admin_token.is_some() {
        println!("colloquy console on http://{addr}/console/ (sign in with the admin token)");
    }
    colloquy_http::serve(listener, service, http_config, signal).await;
    // Let the webhook POSTs in flight finish (each within --webhook-timeout);
    // what is left stays in the outbox for the next start or another instance.
    if let Some(deliverer) = deliverer {
        deliverer.stop().await;
    }
    if let Some(task) = metrics_server {
        task.abort();
    }
    // Stop the purge (dropping the last service and store handles), then wait,
    // briefly, for a SQLite file to be checkpointed and closed.
    purger.stop().await;
    if let Some(closed) = closed {
        if tokio::time::timeout(STORE_CLOSE_WAIT, closed.wait())
            .await
            .is_err()
        {
            tracing::warn!("the store did not close within {STORE_CLOSE_WAIT:?}; its WAL is kept and replayed at the next start");
        }
    }
    Ok(())
}

/// Raises the open-files limit and fits `requested` connections under it; logs both
/// limits, and the cap if it had to be lowered.
fn fit_connections(requested: usize) -> usize {
    match fd_limit::raise() {
        Ok(limit) => {
            let cap = fd_limit::connection_cap(requested, limit.soft);
            tracing::info!(
                soft_before = limit.soft_before,
                soft = limit.soft,
                hard = limit.hard,
                max_connections = cap,
                "open-files limit"
            );
            if cap < requested {
                tracing::warn!(
                    requested,
                    max_connections = cap,
                    open_files = limit.soft,
                    "--max-connections lowered to fit the open-files limit"
                );
            }
            cap
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read or raise the open-files limit");
            requested
        }
    }
}

/// The error and its causes, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Some errors repeat their source's text in their own; say it once.
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.healthcheck {
        return match healthcheck::check(cli.bind).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("colloquy: unhealthy: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let _flush_logs_at_exit =
        match logging::init(cli.log_format, &cli.log_level, cli.log_max_lines_per_sec) {
            Ok(guard) => guard,
            Err(e) => {
                eprintln!("colloquy: {}", chain(&e));
                return ExitCode::FAILURE;
            }
        };
    if let Some(Command::Ingest(args)) = cli.command {
        return match ingest::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("colloquy ingest: {}", chain(&e));
                ExitCode::FAILURE
            }
        };
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %chain(&e), "could not start");
            eprintln!("colloquy: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}
