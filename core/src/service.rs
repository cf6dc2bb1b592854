//! [`ChatService`]: every use case of the API, over the ports.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::chat::{self, ChatReply, ChatStream, Generation};
use crate::clock::{now_micros, Clock};
use crate::context::{self, ContextBudget};
use crate::error::{ServiceError, ValidationError};
use crate::knowledge::{self, Grounding, KnowledgeBase, KnowledgeConfig};
use crate::message::{Cursor, MessageDraft, MessageQuery, MessageView, NewMessage, Order, Role};
use crate::model::{ContextMessage, ModelRequest};
use crate::ports::{ChatModel, ChatStore};
use crate::session::{
    generate_session_id, NewSession, Page, Retention, Session, SessionFilter, SessionPatch,
    SessionRef,
};
use crate::validate::Limits;

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
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            session_ttl: chrono::Duration::hours(24),
            limits: Limits::default(),
            context: ContextBudget::default(),
            retention: Retention::default(),
        }
    }
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
}

/// The chat module's use cases: sessions, messages and chat, over any store and model.
///
/// Cheap to clone; clones share the same adapters and generation tasks.
#[derive(Clone)]
pub struct ChatService {
    deps: Arc<Deps>,
    config: ServiceConfig,
    generations: TaskTracker,
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

impl ChatService {
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
            }),
            config,
            generations: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            knowledge: None,
        }
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
        Ok(at)
    }

    /// Creates a session, generating its `session_id` when none is given.
    ///
    /// # Errors
    /// `invalid_field` when `expires_at` is not in the future, `session_exists` when a
    /// custom `session_id` is taken, or a store failure.
    pub async fn create_session(&self, new: NewSession) -> Result<Session, ServiceError> {
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

    /// A new message draft: a fresh id, the current time.
    fn draft(&self, role: Role, message: String, metadata: crate::Metadata) -> MessageDraft {
        MessageDraft {
            id: Uuid::now_v7(),
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
        let draft = self.draft(new.role, new.message, new.metadata);
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

    /// Soft-deletes a message.
    ///
    /// # Errors
    /// `message_not_found` (also on a second delete), or a store failure.
    pub async fn delete_message(&self, id: Uuid) -> Result<(), ServiceError> {
        Ok(self.deps.store.delete_message(id).await?)
    }

    /// Stores the user's message and reads the model's context in one store call.
    async fn begin_chat(&self, new: NewMessage) -> Result<Generation, ServiceError> {
        let budget = self.config.context;
        let draft = self.draft(Role::User, new.message, new.metadata);
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
        Ok(Generation {
            session: turn.session,
            message_id: turn.message.id,
            response_id: Uuid::now_v7(),
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
        let generation = self.begin_chat(new).await?;
        let task = self
            .generations
            .spawn(chat::complete(Arc::clone(&self.deps), generation));
        task.await
            .map_err(|e| ServiceError::Internal(Box::new(e)))?
    }

    /// Chat, streamed: stores the user's message, then returns at once with the ids
    /// and a stream of events that follows the model as it produces text.
    ///
    /// Errors that can be known up front (validation, missing or inactive session,
    /// store down) are returned here, before any event. Dropping the stream does not
    /// stop the generation: the answer runs to completion and is stored.
    ///
    /// # Errors
    /// `session_not_found`, `session_inactive`, or a store failure.
    pub async fn chat_stream(&self, new: NewMessage) -> Result<ChatStream, ServiceError> {
        let generation = self.begin_chat(new).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = ChatStream {
            session_id: generation.session.session_id.clone(),
            message_id: generation.message_id,
            response_id: generation.response_id,
            events: chat::event_stream(rx),
        };
        self.generations.spawn(chat::stream(
            Arc::clone(&self.deps),
            generation,
            tx,
            self.shutdown.child_token(),
        ));
        Ok(stream)
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
