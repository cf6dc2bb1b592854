//! [`ChatService`]: every use case of the API, over the ports.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::chat::{self, ChatReply, ChatStream, Generation, Publisher};
use crate::clock::{now_micros, Clock};
use crate::context::{self, ContextBudget};
use crate::error::{ServiceError, ValidationError};
use crate::idempotency::{IdempotencyStore, LocalIdempotency};
use crate::knowledge::{self, Grounding, KnowledgeBase, KnowledgeConfig};
use crate::message::{Cursor, MessageDraft, MessageQuery, MessageView, NewMessage, Order, Role};
use crate::model::{ContextMessage, ModelRequest};
use crate::ports::{ChatModel, ChatStore};
use crate::ratelimit::{Action, Admission};
use crate::resume::{self, Resume, ResumePoint};
use crate::session::{
    generate_session_id, NewSession, Page, Retention, Session, SessionFilter, SessionPatch,
    SessionRef,
};
use crate::streams::{CancelOutcome, LocalStreamLog, StreamLog, StreamMeta};
use crate::validate::{self, Limits};

/// Settings of the service; every field has a documented default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Lifetime of a session created without `expires_at`. Default 24 h.
    pub session_ttl: chrono::Duration,
    /// Input size limits.
    pub limits: Limits,
    /// How much history the model sees.
    pub context: ContextBudget,
    /// How long expired sessions stay stored before [`ChatService::purge_expired`]
    /// removes them. Default 0 (purged at the first purge after expiry).
    pub retention: Retention,
    /// The longest a session may live: `expires_at` further than this from now is
    /// refused (400 `invalid_field`). Default 30 days.
    pub max_session_ttl: chrono::Duration,
    /// How many generations may run at once in this service; beyond, chat answers
    /// 503 `busy` at once instead of queueing. `None` (the default): no limit.
    pub max_generations: Option<usize>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            session_ttl: chrono::Duration::hours(24),
            limits: Limits::default(),
            context: ContextBudget::default(),
            retention: Retention::default(),
            max_session_ttl: chrono::Duration::days(30),
            max_generations: None,
        }
    }
}

/// A session with all its live messages; see [`ChatService::export_session`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionExport {
    /// The session.
    pub session: Session,
    /// Its live messages in write order (each names the session by UUID).
    pub messages: Vec<crate::message::ChatMessage>,
}

/// A generation ended: forget its cancel switch and stop its watcher.
fn end_generation(
    running: &Mutex<HashMap<Uuid, CancellationToken>>,
    watcher: &tokio::task::JoinHandle<()>,
    response: Uuid,
) {
    watcher.abort();
    running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&response);
}

/// A page of sessions; see [`ChatService::list_sessions`].
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    /// The sessions, newest first.
    pub sessions: Vec<Session>,
    /// The next page, when this one was cut by the limit.
    pub next: Option<Page>,
}

/// A page of a session's messages; see [`ChatService::list_messages`].
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    /// The messages, in the order asked for.
    pub messages: Vec<MessageView>,
    /// Where the next page starts, when this one was cut by the limit.
    pub next: Option<Cursor>,
}

/// The adapters a service works through, shared with its generation tasks.
pub(crate) struct Deps {
    pub(crate) store: Arc<dyn ChatStore>,
    pub(crate) model: Arc<dyn ChatModel>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) streams: Arc<dyn StreamLog>,
}

/// How often a running generation checks for a cancel requested on another instance.
const CANCEL_POLL: Duration = Duration::from_millis(250);

/// Renews a running generation's lease and turns a cancel requested anywhere into
/// `cancel`, until it is dropped (the generation ended).
async fn watch(deps: Arc<Deps>, meta: StreamMeta, cancel: CancellationToken) {
    let renew_every = deps.streams.lease() / 3;
    let mut renewed = tokio::time::Instant::now();
    // The first check one period in: an answer shorter than that costs no poll.
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + CANCEL_POLL, CANCEL_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if deps
            .streams
            .cancel_requested(meta.response_id)
            .await
            .unwrap_or(false)
        {
            cancel.cancel();
        }
        if renewed.elapsed() >= renew_every {
            if let Err(e) = deps.streams.renew(&meta).await {
                tracing::warn!(error = %e, response_id = %meta.response_id, "could not renew the answer's lease");
            }
            renewed = tokio::time::Instant::now();
        }
    }
}

/// A session as `GET /sessions/{id}/` shows it: the record and the answer being
/// generated in it right now, if any.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionView {
    /// The session.
    #[serde(flatten)]
    pub session: Session,
    /// The id of the answer being generated in the session now (the newest started,
    /// when several are), or `None`. Cleared when the generation ends, however it
    /// ends; at most the stream log's lease after its instance died.
    pub active_response_id: Option<Uuid>,
}

/// The chat module's use cases: sessions, messages and chat, over any store and model.
///
/// Cheap to clone; clones share the same adapters and generation tasks.
#[derive(Clone)]
pub struct ChatService {
    deps: Arc<Deps>,
    config: ServiceConfig,
    generations: TaskTracker,
    /// Generation slots, when `config.max_generations` limits them.
    slots: Option<Arc<Semaphore>>,
    /// Rate limits, when set with [`ChatService::with_rate_limits`].
    admission: Option<Admission>,
    /// Cancel switches of the generations running in this process.
    running: Arc<Mutex<HashMap<Uuid, CancellationToken>>>,
    /// Results kept for `Idempotency-Key` retries.
    idempotency: Arc<dyn IdempotencyStore>,
    shutdown: CancellationToken,
    knowledge: Option<(Arc<dyn KnowledgeBase>, KnowledgeConfig)>,
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
}

impl std::fmt::Debug for ChatServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatServiceBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ChatServiceBuilder {
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

    /// Where running answers' events are kept (default: in this process).
    pub fn stream_log(mut self, log: Arc<dyn StreamLog>) -> Self {
        self.stream_log = Some(log);
        self
    }

    /// Where `Idempotency-Key` results are kept (default: in this process).
    pub fn idempotency(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.idempotency = Some(store);
        self
    }

    /// Rate limits (default: none).
    pub fn rate_limits(mut self, admission: Admission) -> Self {
        self.rate_limits = Some(admission);
        self
    }

    /// The service.
    #[must_use]
    pub fn build(self) -> ChatService {
        let mut service = ChatService::new(self.store, self.model, self.clock, self.config);
        if let Some(log) = self.stream_log {
            service = service.with_stream_log(log);
        }
        if let Some(store) = self.idempotency {
            service = service.with_idempotency(store);
        }
        if let Some(admission) = self.rate_limits {
            service = service.with_rate_limits(admission);
        }
        service
    }
}

impl ChatService {
    /// A builder over `store` and the `clock` the store was built with:
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use colloquy_core::{ChatService, SystemClock};
    /// # use colloquy_memory::MemoryStore;
    /// let clock = Arc::new(SystemClock);
    /// let service = ChatService::builder(Arc::new(MemoryStore::new(clock.clone())), clock).build();
    /// # let _ = service;
    /// ```
    pub fn builder(store: Arc<dyn ChatStore>, clock: Arc<dyn Clock>) -> ChatServiceBuilder {
        ChatServiceBuilder {
            store,
            clock,
            model: Arc::new(crate::EchoModel::new()),
            config: ServiceConfig::default(),
            stream_log: None,
            idempotency: None,
            rate_limits: None,
        }
    }

    /// A service over the given adapters. `clock` should be the one the store was
    /// built with, so both agree on what has expired.
    pub fn new(
        store: Arc<dyn ChatStore>,
        model: Arc<dyn ChatModel>,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
    ) -> Self {
        Self {
            deps: Arc::new(Deps {
                store,
                model,
                clock,
                streams: Arc::new(LocalStreamLog::default()),
            }),
            running: Arc::default(),
            idempotency: Arc::new(LocalIdempotency::new()),
            config,
            generations: TaskTracker::new(),
            slots: config.max_generations.map(|n| Arc::new(Semaphore::new(n))),
            admission: None,
            shutdown: CancellationToken::new(),
            knowledge: None,
        }
    }

    /// Keeps the events of running answers in `log` (default: a [`LocalStreamLog`]
    /// in this process). Instances behind one load balancer share one log (Redis)
    /// so a stream resumes, and cancels, on any of them.
    #[must_use]
    pub fn with_stream_log(mut self, log: Arc<dyn StreamLog>) -> Self {
        self.deps = Arc::new(Deps {
            store: Arc::clone(&self.deps.store),
            model: Arc::clone(&self.deps.model),
            clock: Arc::clone(&self.deps.clock),
            streams: log,
        });
        self
    }

    /// Keeps `Idempotency-Key` results in `store` (default: a [`LocalIdempotency`]
    /// in this process); instances behind one load balancer share one.
    #[must_use]
    pub fn with_idempotency(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.idempotency = store;
        self
    }

    /// Where transports keep `Idempotency-Key` results.
    #[must_use]
    pub fn idempotency(&self) -> &Arc<dyn IdempotencyStore> {
        &self.idempotency
    }

    /// Enforces `admission`'s rate limits in [`ChatService::admit`].
    #[must_use]
    pub fn with_rate_limits(mut self, admission: Admission) -> Self {
        self.admission = Some(admission);
        self
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

    /// Grounds every chat answer in `knowledge`: see [`crate::knowledge`].
    #[must_use]
    pub fn with_knowledge(
        mut self,
        knowledge: Arc<dyn KnowledgeBase>,
        config: KnowledgeConfig,
    ) -> Self {
        self.knowledge = Some((knowledge, config));
        self
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

    fn now(&self) -> DateTime<Utc> {
        now_micros(self.deps.clock.as_ref())
    }

    fn future_expiry(
        &self,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, ValidationError> {
        if at <= now {
            return Err(ValidationError::invalid(
                "expires_at",
                "must be in the future",
            ));
        }
        if at > now + self.config.max_session_ttl {
            return Err(ValidationError::invalid(
                "expires_at",
                format_args!(
                    "may be at most {} days from now",
                    self.config.max_session_ttl.num_days()
                ),
            ));
        }
        Ok(at)
    }

    /// Creates a session, generating its `session_id` when none is given.
    ///
    /// # Errors
    /// `invalid_field` when `expires_at` is not in the future, `session_exists` when a
    /// custom `session_id` is taken, or a store failure.
    pub async fn create_session(&self, new: NewSession) -> Result<Session, ServiceError> {
        validate::check_new_session(&new, self.limits())?;
        let now = self.now();
        let expires_at = match new.expires_at {
            Some(at) => self.future_expiry(at, now)?,
            None => now + self.config.session_ttl,
        };
        let session_id = match new.session_id {
            Some(id) => id,
            None => generate_session_id().map_err(|e| ServiceError::Internal(Box::new(e)))?,
        };
        let session = Session {
            id: Uuid::now_v7(),
            session_id,
            external_user_id: new.external_user_id,
            created_at: now,
            expires_at,
            is_active: true,
            metadata: new.metadata,
        };
        self.deps.store.create_session(&session).await?;
        Ok(session)
    }

    /// The live session named by `reference` (UUID or session_id).
    ///
    /// # Errors
    /// `session_not_found`, or a store failure.
    pub async fn get_session(&self, reference: &SessionRef) -> Result<Session, ServiceError> {
        self.deps
            .store
            .session(reference)
            .await?
            .ok_or(ServiceError::SessionNotFound)
    }

    /// Changes a session's `is_active`, `metadata`, `external_user_id` or `expires_at`.
    ///
    /// # Errors
    /// `invalid_field` when `expires_at` is not in the future, `session_not_found`, or a
    /// store failure.
    pub async fn update_session(
        &self,
        reference: &SessionRef,
        patch: SessionPatch,
    ) -> Result<Session, ServiceError> {
        validate::check_session_patch(&patch, self.limits())?;
        if let Some(at) = patch.expires_at {
            self.future_expiry(at, self.now())?;
        }
        Ok(self.deps.store.update_session(reference, &patch).await?)
    }

    /// Deletes a session and all its messages.
    ///
    /// # Errors
    /// `session_not_found` (also on a second delete), or a store failure.
    pub async fn delete_session(&self, reference: &SessionRef) -> Result<(), ServiceError> {
        Ok(self.deps.store.delete_session(reference).await?)
    }

    /// Lists a page of live sessions, newest first, and the page after it when this
    /// one was cut by the limit.
    ///
    /// # Errors
    /// A store failure.
    pub async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: Page,
    ) -> Result<SessionPage, ServiceError> {
        // One more than asked for tells whether the page was cut.
        let probe = Page {
            limit: page.limit.saturating_add(1),
            ..page
        };
        let mut sessions = self.deps.store.list_sessions(filter, probe).await?;
        let next = (sessions.len() > page.limit).then(|| {
            sessions.truncate(page.limit);
            Page {
                limit: page.limit,
                offset: page.offset.saturating_add(page.limit),
            }
        });
        Ok(SessionPage { sessions, next })
    }

    /// A new message draft for the session `to` names: a fresh id (from the store),
    /// the current time.
    fn draft(
        &self,
        to: &SessionRef,
        role: Role,
        message: String,
        metadata: crate::Metadata,
    ) -> MessageDraft {
        MessageDraft {
            id: self.deps.store.new_message_id(to),
            role,
            message,
            metadata,
            timestamp: self.now(),
        }
    }

    /// Stores a message written by a client (any role).
    ///
    /// # Errors
    /// `session_not_found`, `session_inactive`, or a store failure.
    pub async fn create_message(&self, new: NewMessage) -> Result<MessageView, ServiceError> {
        validate::check_new_message(&new, self.limits())?;
        let draft = self.draft(&new.session, new.role, new.message, new.metadata);
        let (session, stored) = self.deps.store.append(&new.session, draft).await?;
        Ok(MessageView::new(stored, session))
    }

    /// A live message with its session.
    ///
    /// # Errors
    /// `message_not_found` (also when soft-deleted or its session expired), or a store
    /// failure.
    pub async fn get_message(&self, id: Uuid) -> Result<MessageView, ServiceError> {
        let (message, session) = self
            .deps
            .store
            .message(id)
            .await?
            .ok_or(ServiceError::MessageNotFound)?;
        Ok(MessageView::new(message, session))
    }

    /// Lists a page of a session's live messages (see [`MessageQuery`]), and where
    /// the next page starts when this one was cut by the limit.
    ///
    /// # Errors
    /// `session_not_found`, `message_not_found` for a cursor that names no message of
    /// the session, or a store failure.
    pub async fn list_messages(
        &self,
        reference: &SessionRef,
        query: &MessageQuery,
    ) -> Result<MessagePage, ServiceError> {
        let limit = query.page.limit;
        // One more than asked for tells whether the page was cut.
        let mut probe = query.clone();
        probe.page.limit = limit.saturating_add(1);
        let (session, mut messages) = self.deps.store.list_messages(reference, &probe).await?;
        let next = if messages.len() > limit {
            messages.truncate(limit);
            messages.last().map(|last| match query.order {
                Order::Asc => Cursor::After(last.id),
                Order::Desc => Cursor::Before(last.id),
            })
        } else {
            None
        };
        Ok(MessagePage {
            messages: messages
                .into_iter()
                .map(|m| MessageView::new(m, session.clone()))
                .collect(),
            next,
        })
    }

    /// The session with every live message in write order, for the operator's
    /// export. Reads the messages a page at a time.
    ///
    /// # Errors
    /// `session_not_found`, or a store failure.
    pub async fn export_session(
        &self,
        reference: &SessionRef,
    ) -> Result<SessionExport, ServiceError> {
        let mut query = MessageQuery {
            page: Page {
                limit: Page::MAX_LIMIT,
                offset: 0,
            },
            ..MessageQuery::default()
        };
        let mut messages = Vec::new();
        let mut session = None;
        loop {
            let this = session.as_ref().map_or_else(
                || reference.clone(),
                |s: &Session| SessionRef::from_uuid(s.id),
            );
            let (s, page) = self.deps.store.list_messages(&this, &query).await?;
            let last = page.last().map(|m| m.id);
            let full = page.len() == query.page.limit;
            messages.extend(page);
            session = Some(s);
            match last {
                Some(id) if full => query.cursor = Some(Cursor::After(id)),
                _ => break,
            }
        }
        let session = session.ok_or(ServiceError::SessionNotFound)?;
        Ok(SessionExport { session, messages })
    }

    /// Soft-deletes a message.
    ///
    /// # Errors
    /// `message_not_found` (also on a second delete), or a store failure.
    pub async fn delete_message(&self, id: Uuid) -> Result<(), ServiceError> {
        Ok(self.deps.store.delete_message(id).await?)
    }

    /// Takes a generation slot, before anything is stored: a full service answers
    /// `busy` and the client may retry without leaving a question behind.
    fn generation_slot(&self) -> Result<Option<OwnedSemaphorePermit>, ServiceError> {
        self.slots
            .as_ref()
            .map(|slots| Arc::clone(slots).try_acquire_owned())
            .transpose()
            .map_err(|_| ServiceError::Busy)
    }

    /// Stores the user's message and reads the model's context in one store call.
    async fn begin_chat(&self, new: NewMessage) -> Result<Generation, ServiceError> {
        validate::check_new_message(&new, self.limits())?;
        let budget = self.config.context;
        let draft = self.draft(&new.session, Role::User, new.message, new.metadata);
        let turn = self
            .deps
            .store
            .begin_turn(&new.session, draft, budget.max_messages)
            .await?;
        let mut request = ModelRequest {
            messages: context::assemble(&turn.system, &turn.recent, budget),
        };
        if !turn.recent.iter().any(|m| m.id == turn.message.id) {
            // Only possible if the budget keeps no messages at all; the question must go.
            request.messages.push(ContextMessage {
                role: Role::User,
                content: turn.message.message.clone(),
            });
        }
        let grounding = self.ground(&turn, &mut request).await;
        // The answer's id, for its session by session_id (the store's common path).
        let response_id = self
            .deps
            .store
            .new_message_id(&SessionRef::parse(&turn.session.session_id));
        Ok(Generation {
            session: turn.session,
            message_id: turn.message.id,
            response_id,
            request,
            grounding,
        })
    }

    /// Searches the knowledge base for the turn and adds the passages that fit the
    /// context budget to `request`. A failed search only loses the sources.
    async fn ground(&self, turn: &crate::ports::Turn, request: &mut ModelRequest) -> Grounding {
        let Some((base, config)) = &self.knowledge else {
            return Grounding::Off;
        };
        let query = knowledge::retrieval_query(&turn.recent, &turn.message.message);
        let found = tokio::time::timeout(config.timeout, base.search(&query, config.top_k)).await;
        let passages = match found {
            Ok(Ok(passages)) => passages,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "knowledge search failed; answering without sources");
                return Grounding::Failed;
            }
            Err(_) => {
                tracing::warn!(timeout = ?config.timeout, "knowledge search timed out; answering without sources");
                return Grounding::Failed;
            }
        };
        let room = self
            .config
            .context
            .max_chars
            .saturating_sub(knowledge::chars(&request.messages))
            .min(config.max_chars);
        let sources = knowledge::fit(passages, room);
        if !sources.is_empty() {
            knowledge::insert(&mut request.messages, knowledge::context_message(&sources));
        }
        Grounding::Sources(sources)
    }

    /// Chat: stores the user's message, asks the model with the session's history,
    /// stores the answer and returns it.
    ///
    /// The generation runs in its own task: if the caller goes away, the answer is
    /// still stored.
    ///
    /// # Errors
    /// `session_not_found`, `session_inactive`, `llm_unavailable`/`llm_timeout` (the
    /// user message stays stored), or a store failure.
    pub async fn chat(&self, new: NewMessage) -> Result<ChatReply, ServiceError> {
        let slot = self.generation_slot()?;
        let generation = self.begin_chat(new).await?;
        let response = generation.response_id;
        let (publisher, _cancel, watcher) = self.begin_generation(&generation, None).await;
        let complete = chat::complete(Arc::clone(&self.deps), generation, publisher);
        let running = Arc::clone(&self.running);
        let task = self.generations.spawn(async move {
            let _slot = slot;
            let reply = complete.await;
            end_generation(&running, &watcher, response);
            reply
        });
        task.await
            .map_err(|e| ServiceError::Internal(Box::new(e)))?
    }

    /// Chat, streamed: stores the user's message, then returns at once with the ids
    /// and a stream of events that follows the model as it produces text.
    ///
    /// Errors that can be known up front (validation, missing or inactive session,
    /// store down) are returned here, before any event. Dropping the stream does not
    /// stop the generation: the answer runs to completion and is stored. Its events
    /// also go to the stream log, for [`ChatService::resume`] and
    /// [`ChatService::cancel`] from any instance sharing the log.
    ///
    /// # Errors
    /// `session_not_found`, `session_inactive`, or a store failure.
    pub async fn chat_stream(&self, new: NewMessage) -> Result<ChatStream, ServiceError> {
        let slot = self.generation_slot()?;
        let generation = self.begin_chat(new).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = ChatStream {
            session_id: generation.session.session_id.clone(),
            message_id: generation.message_id,
            response_id: generation.response_id,
            events: chat::event_stream(rx),
            offset: 0,
        };
        let response = generation.response_id;
        let (publisher, cancel, watcher) = self.begin_generation(&generation, Some(tx)).await;
        let run = chat::stream(Arc::clone(&self.deps), generation, publisher, cancel);
        let running = Arc::clone(&self.running);
        self.generations.spawn(async move {
            let _slot = slot;
            run.await;
            end_generation(&running, &watcher, response);
        });
        Ok(stream)
    }

    /// Starts a generation's log (a log that fails only costs resumes: logged), its
    /// cancel switch, and the task that renews its lease and hears remote cancels.
    async fn begin_generation(
        &self,
        generation: &Generation,
        client: Option<mpsc::UnboundedSender<crate::ChatEvent>>,
    ) -> (Publisher, CancellationToken, tokio::task::JoinHandle<()>) {
        let meta = generation.meta();
        if let Err(e) = self.deps.streams.start(&meta).await {
            tracing::warn!(error = %e, response_id = %meta.response_id, "could not start the answer's stream log");
        }
        let cancel = self.shutdown.child_token();
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(meta.response_id, cancel.clone());
        let publisher = Publisher::new(Arc::clone(&self.deps), meta.response_id, client);
        let watcher = tokio::spawn(watch(Arc::clone(&self.deps), meta, cancel.clone()));
        (publisher, cancel, watcher)
    }

    /// Resumes the streamed answer `response` after `after` (the client's
    /// `Last-Event-ID`; `None`: from its first event): the events it missed, then the
    /// live ones to the end. Once the log is gone, the stored answer is replayed
    /// from where the client stopped.
    ///
    /// # Errors
    /// `message_not_found` for an unknown response or one whose session expired, or
    /// a store failure.
    pub async fn resume(
        &self,
        response: Uuid,
        after: Option<ResumePoint>,
    ) -> Result<Resume, ServiceError> {
        if let Some(read) = self.deps.streams.read(response, 0).await? {
            let live = self
                .deps
                .store
                .session(&SessionRef::from_uuid(read.meta.session))
                .await?;
            if live.is_none() {
                return Err(ServiceError::MessageNotFound);
            }
            return Ok(resume::from_log(Arc::clone(&self.deps), read, after));
        }
        let (answer, session) = self
            .deps
            .store
            .message(response)
            .await?
            .filter(|(m, _)| m.role == Role::Assistant)
            .ok_or(ServiceError::MessageNotFound)?;
        let message_id = answer
            .metadata
            .get("in_reply_to")
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::try_parse(v).ok())
            .unwrap_or(Uuid::nil());
        resume::from_store(answer, &session, message_id, after)
    }

    /// Attaches to the answer being generated in the session `reference` names (a
    /// reloaded page, or an `EventSource` reconnecting without a response id), from
    /// after `after`; [`Resume::Finished`] when none is running.
    ///
    /// # Errors
    /// `session_not_found`, or a store failure.
    pub async fn attach(
        &self,
        reference: &SessionRef,
        after: Option<ResumePoint>,
    ) -> Result<Resume, ServiceError> {
        let view = self.session_view(reference).await?;
        match view.active_response_id {
            Some(response) => self.resume(response, after).await,
            None => Ok(Resume::Finished),
        }
    }

    /// Stops the streamed answer `response` wherever it is generated: its partial
    /// text is stored with `finish_reason = "cancelled"` and every stream attached to
    /// it ends with that `done` event.
    ///
    /// # Errors
    /// `response_complete` when the answer already ended, `message_not_found` for an
    /// unknown response, or a store failure.
    pub async fn cancel(&self, response: Uuid) -> Result<(), ServiceError> {
        let local = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&response)
            .cloned();
        let outcome = self.deps.streams.request_cancel(response).await?;
        if let Some(cancel) = local {
            cancel.cancel();
            return Ok(());
        }
        match outcome {
            CancelOutcome::Requested => Ok(()),
            CancelOutcome::AlreadyComplete => Err(ServiceError::ResponseComplete),
            CancelOutcome::Unknown => match self.deps.store.message(response).await? {
                Some((m, _)) if m.role == Role::Assistant => Err(ServiceError::ResponseComplete),
                _ => Err(ServiceError::MessageNotFound),
            },
        }
    }

    /// The session with the answer being generated in it right now, if any.
    ///
    /// # Errors
    /// `session_not_found`, or a store failure.
    pub async fn session_view(&self, reference: &SessionRef) -> Result<SessionView, ServiceError> {
        let session = self.get_session(reference).await?;
        self.view(session).await
    }

    /// `session` with the answer being generated in it right now, if any.
    ///
    /// # Errors
    /// The stream log's failure.
    pub async fn view(&self, session: Session) -> Result<SessionView, ServiceError> {
        let active_response_id = self.deps.streams.active(&session).await?;
        Ok(SessionView {
            session,
            active_response_id,
        })
    }

    /// Removes the sessions whose retention has run out (see
    /// [`ServiceConfig::retention`]); returns how many. Servers call it periodically.
    ///
    /// # Errors
    /// A store failure.
    pub async fn purge_expired(&self) -> Result<u64, ServiceError> {
        match self.config.retention.cutoff(self.deps.clock.now()) {
            Some(cutoff) => Ok(self.deps.store.purge_expired(cutoff).await?),
            None => Ok(0),
        }
    }

    /// Succeeds when the store answers.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn ready(&self) -> Result<(), ServiceError> {
        Ok(self.deps.store.ping().await?)
    }

    /// How many generations are running.
    #[must_use]
    pub fn generations_in_flight(&self) -> usize {
        self.generations.len()
    }

    /// Graceful shutdown: lets running generations finish for up to `grace`, then
    /// cancels the rest, which store their partial text with
    /// `finish_reason = "cancelled"`. Returns once every answer is stored.
    pub async fn shutdown(&self, grace: Duration) {
        self.generations.close();
        if tokio::time::timeout(grace, self.generations.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.generations.len(),
                "shutdown grace period over; cancelling generations"
            );
            self.shutdown.cancel();
            self.generations.wait().await;
        }
    }
}
