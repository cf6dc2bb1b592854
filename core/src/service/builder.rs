//! [`ChatServiceBuilder`]: the one way to build a [`ChatService`].

use std::sync::Arc;

use crate::slots::{GenerationSlots, SlotLimits};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ChatService, HandoffConfig, ServiceConfig};
use crate::budget::TokenBudgets;
use crate::clock::Clock;
use crate::deps::Deps;
use crate::echo::EchoModel;
use crate::events::{LocalSessionEvents, SessionEvents};
use crate::idempotency::IdempotencyStore;
use crate::knowledge::{KnowledgeBase, KnowledgeConfig};
use crate::local::{LocalIdempotency, LocalStreamLog};
use crate::ports::{ChatModel, ChatStore};
use crate::ratelimit::Admission;
use crate::stats::ModelPrice;
use crate::streams::StreamLog;

/// Builds a [`ChatService`] from one store (both halves of the port) and the clock
/// it judges expiry by; everything else is optional. See [`ChatService::builder`].
#[must_use = "call build() to get the service"]
pub struct ChatServiceBuilder {
    store: Arc<dyn ChatStore>,
    clock: Arc<dyn Clock>,
    model: Arc<dyn ChatModel>,
    config: ServiceConfig,
    stream_log: Option<Arc<dyn StreamLog>>,
    idempotency: Option<Arc<dyn IdempotencyStore>>,
    rate_limits: Option<Admission>,
    token_budgets: Option<TokenBudgets>,
    price: Option<ModelPrice>,
    knowledge: Option<(Arc<dyn KnowledgeBase>, KnowledgeConfig)>,
    events: Option<Arc<dyn SessionEvents>>,
    handoff: HandoffConfig,
    webhooks: Option<crate::webhooks::Webhooks>,
}

impl std::fmt::Debug for ChatServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatServiceBuilder")
            .field("config", &self.config)
            .field("knowledge", &self.knowledge.as_ref().map(|(_, c)| c))
            .finish_non_exhaustive()
    }
}

impl ChatServiceBuilder {
    pub(super) fn new(store: Arc<dyn ChatStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            model: Arc::new(EchoModel::new()),
            config: ServiceConfig::default(),
            stream_log: None,
            idempotency: None,
            rate_limits: None,
            token_budgets: None,
            price: None,
            knowledge: None,
            events: None,
            handoff: HandoffConfig::default(),
            webhooks: None,
        }
    }

    /// The language model (default: [`crate::EchoModel`]).
    pub fn model(mut self, model: Arc<dyn ChatModel>) -> Self {
        self.model = model;
        self
    }

    /// The settings (default: [`ServiceConfig::default`]).
    pub fn config(mut self, config: ServiceConfig) -> Self {
        self.config = config;
        self
    }

    /// Where the events of running answers are kept (default: a [`LocalStreamLog`]
    /// in this process). Instances behind one load balancer share one log (Redis)
    /// so a stream resumes, and cancels, on any of them.
    pub fn stream_log(mut self, log: Arc<dyn StreamLog>) -> Self {
        self.stream_log = Some(log);
        self
    }

    /// Where `Idempotency-Key` results are kept (default: a [`LocalIdempotency`] in
    /// this process); instances behind one load balancer share one.
    pub fn idempotency(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.idempotency = Some(store);
        self
    }

    /// Rate limits, enforced by [`ChatService::admit`] (default: none).
    pub fn rate_limits(mut self, admission: Admission) -> Self {
        self.rate_limits = Some(admission);
        self
    }

    /// Token budgets (see [`crate::budget`]), checked where a generation is
    /// admitted and charged when it ends (default: none).
    pub fn token_budgets(mut self, budgets: TokenBudgets) -> Self {
        self.token_budgets = (!budgets.policy().is_unlimited()).then_some(budgets);
        self
    }

    /// The model's price, so the stats report a `cost` (default: none, and `cost`
    /// is null).
    pub fn model_price(mut self, price: ModelPrice) -> Self {
        self.price = Some(price);
        self
    }

    /// Grounds every chat answer in `base` (default: no knowledge base); see
    /// [`crate::knowledge`].
    pub fn knowledge(mut self, base: Arc<dyn KnowledgeBase>, config: KnowledgeConfig) -> Self {
        self.knowledge = Some((base, config));
        self
    }

    /// Where changes to sessions are announced (default: a [`LocalSessionEvents`]
    /// in this process). Instances behind one load balancer share one (Redis or
    /// PostgreSQL) so a watcher on any of them hears every change.
    pub fn events(mut self, events: Arc<dyn SessionEvents>) -> Self {
        self.events = Some(events);
        self
    }

    /// The human handoff settings (default: [`HandoffConfig::default`]: a request
    /// times out after 5 minutes without an operator's reply).
    pub fn handoff(mut self, handoff: HandoffConfig) -> Self {
        self.handoff = handoff;
        self
    }

    /// Sends webhooks (default: none): every announced change of a selected
    /// type is enqueued in `webhooks`' outbox before the request is answered;
    /// a deliverer (the `colloquy-webhook` crate) sends them. See
    /// [`crate::webhooks`].
    pub fn webhooks(mut self, webhooks: crate::webhooks::Webhooks) -> Self {
        self.webhooks = Some(webhooks);
        self
    }

    /// The service.
    #[must_use]
    pub fn build(self) -> ChatService {
        let config = self.config;
        ChatService {
            deps: Arc::new(Deps {
                store: self.store,
                model: self.model,
                clock: self.clock,
                streams: self
                    .stream_log
                    .unwrap_or_else(|| Arc::new(LocalStreamLog::default())),
                events: self
                    .events
                    .unwrap_or_else(|| Arc::new(LocalSessionEvents::default())),
                webhooks: self.webhooks,
            }),
            config,
            generations: TaskTracker::new(),
            slots: Arc::new(GenerationSlots::new(SlotLimits {
                total: config.max_generations,
                per_client: config.max_generations_per_client,
                per_session: config.max_generations_per_session,
            })),
            admission: self.rate_limits,
            budgets: self.token_budgets,
            price: self.price,
            running: Arc::default(),
            idempotency: self
                .idempotency
                .unwrap_or_else(|| Arc::new(LocalIdempotency::new())),
            shutdown: CancellationToken::new(),
            knowledge: self.knowledge,
            handoff: Arc::new(self.handoff),
            timers: CancellationToken::new(),
        }
    }
}
