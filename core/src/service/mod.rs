//! [`ChatService`]: every use case of the API, over the ports.
//!
//! One job a file: [`config`] (settings and the shapes answered), [`builder`] (the
//! one way to build a service), [`sessions`] and [`messages`] (the use cases over
//! the store), [`console`] (feedback, stats, a visitor's export and erasure),
//! [`generation`] (chat, streaming, resume, attach, cancel and the
//! generation's lifecycle). The adapters the service works through are
//! [`crate::deps::Deps`], shared with the generation tasks of [`crate::chat`] and
//! [`crate::resume`], which import nothing from here.

mod builder;
mod config;
mod console;
mod generation;
mod handoff;
mod messages;
mod sessions;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::clock::Clock;
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::idempotency::IdempotencyStore;
use crate::knowledge::{KnowledgeBase, KnowledgeConfig};
use crate::ports::ChatStore;
use crate::ratelimit::{Action, Admission};
use crate::validate::Limits;

pub use builder::ChatServiceBuilder;
pub use config::{MessagePage, ServiceConfig, SessionExport, SessionPage, SessionView};
pub use console::{
    InboxPage, SearchHit, SearchPage, UserExport, MAX_EXPORT_SESSIONS, MAX_HOURLY_STATS_DAYS,
    MAX_STATS_DAYS, STATS_TOP_QUESTIONS,
};
pub use handoff::{HandoffConfig, DEFAULT_HANDOFF_TIMEOUT_MESSAGE, HANDOFF_TIMEOUT_NOTICE};

/// The chat module's use cases: sessions, messages and chat, over any store and model.
///
/// Built with [`ChatService::builder`]. Cheap to clone; clones share the same
/// adapters and generation tasks.
#[derive(Clone)]
pub struct ChatService {
    deps: Arc<Deps>,
    config: ServiceConfig,
    generations: TaskTracker,
    /// Generation slots, under `config.max_generations` and its shares.
    slots: Arc<crate::slots::GenerationSlots>,
    /// Rate limits, when set with [`ChatServiceBuilder::rate_limits`].
    admission: Option<Admission>,
    /// Cancel switches of the generations running in this process.
    running: Arc<Mutex<HashMap<Uuid, CancellationToken>>>,
    /// Results kept for `Idempotency-Key` retries.
    idempotency: Arc<dyn IdempotencyStore>,
    shutdown: CancellationToken,
    knowledge: Option<(Arc<dyn KnowledgeBase>, KnowledgeConfig)>,
    /// The handoff settings (see [`HandoffConfig`]).
    handoff: Arc<HandoffConfig>,
}

impl std::fmt::Debug for ChatService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatService")
            .field("config", &self.config)
            .field("generations_in_flight", &self.generations.len())
            .field("knowledge", &self.knowledge.as_ref().map(|(_, c)| c))
            .finish_non_exhaustive()
    }
}

impl ChatService {
    /// A builder over `store` and the `clock` the store was built with (so both
    /// agree on what has expired); everything else is optional:
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use colloquy_core::{ChatService, EchoModel, ServiceConfig, SystemClock};
    /// # use colloquy_memory::MemoryStore;
    /// let clock = Arc::new(SystemClock);
    /// let service = ChatService::builder(Arc::new(MemoryStore::new(clock.clone())), clock)
    ///     .model(Arc::new(EchoModel::new()))
    ///     .config(ServiceConfig::default())
    ///     .build();
    /// # let _ = service;
    /// ```
    pub fn builder(store: Arc<dyn ChatStore>, clock: Arc<dyn Clock>) -> ChatServiceBuilder {
        ChatServiceBuilder::new(store, clock)
    }

    /// The service's settings.
    #[must_use]
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The input limits, for transports that validate bodies with [`crate::validate`].
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// The session events this service announces changes on; subscribe here to
    /// watch a session live (see [`crate::events`]).
    #[must_use]
    pub fn events(&self) -> &Arc<dyn crate::events::SessionEvents> {
        &self.deps.events
    }

    /// Where transports keep `Idempotency-Key` results.
    #[must_use]
    pub fn idempotency(&self) -> &Arc<dyn IdempotencyStore> {
        &self.idempotency
    }

    /// Spends the rate-limit quotas of `action` for a visitor at `ip` (see
    /// [`Admission::admit`]); always admits when no limits are set. Transports call
    /// it before the operation, for visitors (not for the operator).
    ///
    /// # Errors
    /// `rate_limited` naming the quota, or `store_unavailable` when the limiter's
    /// store is down.
    pub async fn admit(&self, ip: Option<IpAddr>, action: Action<'_>) -> Result<(), ServiceError> {
        self.admit_all(ip, &[action]).await
    }

    /// [`ChatService::admit`] for several actions of one request, in one call of the
    /// limiter (see [`Admission::admit_all`]).
    ///
    /// # Errors
    /// As [`ChatService::admit`].
    pub async fn admit_all(
        &self,
        ip: Option<IpAddr>,
        actions: &[Action<'_>],
    ) -> Result<(), ServiceError> {
        match &self.admission {
            Some(admission) => Ok(admission.admit_all(ip, actions).await?),
            None => Ok(()),
        }
    }

    /// Whether any per-session quota is in force (then a transport resolves the
    /// session before [`ChatService::admit`], so the quota is keyed by its UUID).
    #[must_use]
    pub fn limits_sessions(&self) -> bool {
        self.admission.as_ref().is_some_and(|a| {
            let p = a.policy();
            p.chats_per_session.is_some() || p.messages_per_session.is_some()
        })
    }

    /// Succeeds when the store answers.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn ready(&self) -> Result<(), ServiceError> {
        Ok(self.deps.store.ping().await?)
    }
}
