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
use crate::message::{ChatMessage, MessageFilter, MessageView, NewMessage, Role};
use crate::model::ModelRequest;
use crate::ports::{ChatModel, MessageStore, SessionStore};
use crate::session::{
    generate_session_id, NewSession, Page, Session, SessionFilter, SessionPatch, SessionRef,
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
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            session_ttl: chrono::Duration::hours(24),
            limits: Limits::default(),
            context: ContextBudget::default(),
        }
    }
}

/// The adapters a service works through, shared with its generation tasks.
pub(crate) struct Deps {
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) messages: Arc<dyn MessageStore>,
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
}

impl std::fmt::Debug for ChatService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatService")
            .field("config", &self.config)
            .field("generations_in_flight", &self.generations.len())
            .finish_non_exhaustive()
    }
}

impl ChatService {
    /// A service over the given adapters.
    pub fn new(
        sessions: Arc<dyn SessionStore>,
        messages: Arc<dyn MessageStore>,
        model: Arc<dyn ChatModel>,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
    ) -> Self {
        Self {
            deps: Arc::new(Deps {
                sessions,
                messages,
                model,
                clock,
            }),
            config,
            generations: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        }
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
        self.deps
            .sessions
            .create(&session)
            .await
            .map_err(ServiceError::from_session_store)?;
        Ok(session)
    }

    /// The live session named by `reference` (UUID or session_id).
    ///
    /// # Errors
    /// `session_not_found`, or a store failure.
    pub async fn get_session(&self, reference: &SessionRef) -> Result<Session, ServiceError> {
        self.deps
            .sessions
            .get(reference)
            .await
            .map_err(ServiceError::from_session_store)?
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
        let session = self.get_session(reference).await?;
        self.deps
            .sessions
            .update(session.id, &patch)
            .await
            .map_err(ServiceError::from_session_store)
    }

    /// Deletes a session and all its messages.
    ///
    /// # Errors
    /// `session_not_found` (also on a second delete), or a store failure.
    pub async fn delete_session(&self, reference: &SessionRef) -> Result<(), ServiceError> {
        let session = self.get_session(reference).await?;
        self.deps
            .sessions
            .delete(session.id)
            .await
            .map_err(ServiceError::from_session_store)
    }

    /// Lists live sessions, newest first.
    ///
    /// # Errors
    /// A store failure.
    pub async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: Page,
    ) -> Result<Vec<Session>, ServiceError> {
        self.deps
            .sessions
            .list(filter, page)
            .await
            .map_err(ServiceError::from_session_store)
    }

    /// Stores a message written by a client (any role).
    ///
    /// # Errors
    /// `session_not_found`, `session_inactive`, or a store failure.
    pub async fn create_message(&self, new: NewMessage) -> Result<MessageView, ServiceError> {
        let session = self.get_session(&new.session).await?;
        let stored = self
            .append(&session, new.role, new.message, new.metadata)
            .await?;
        Ok(MessageView::new(stored, session))
    }

    async fn append(
        &self,
        session: &Session,
        role: Role,
        text: String,
        metadata: crate::Metadata,
    ) -> Result<ChatMessage, ServiceError> {
        let message = ChatMessage {
            id: Uuid::now_v7(),
            session: session.id,
            message: text,
            role,
            metadata,
            timestamp: self.now(),
            is_deleted: false,
        };
        self.deps
            .messages
            .append(message)
            .await
            .map_err(ServiceError::from_session_store)
    }

    /// A live message with its session.
    ///
    /// # Errors
    /// `message_not_found` (also when soft-deleted or its session expired), or a store
    /// failure.
    pub async fn get_message(&self, id: Uuid) -> Result<MessageView, ServiceError> {
        let message = self
            .deps
            .messages
            .get(id)
            .await
            .map_err(ServiceError::from_message_store)?
            .ok_or(ServiceError::MessageNotFound)?;
        let session = self
            .deps
            .sessions
            .get(&SessionRef::from_uuid(message.session))
            .await
            .map_err(ServiceError::from_session_store)?
            .ok_or(ServiceError::MessageNotFound)?;
        Ok(MessageView::new(message, session))
    }

    /// Lists a session's live messages in write order.
    ///
    /// # Errors
    /// `session_not_found`, or a store failure.
    pub async fn list_messages(
        &self,
        reference: &SessionRef,
        filter: &MessageFilter,
        page: Page,
    ) -> Result<Vec<MessageView>, ServiceError> {
        let session = self.get_session(reference).await?;
        let messages = self
            .deps
            .messages
            .list(session.id, filter, page)
            .await
            .map_err(ServiceError::from_session_store)?;
        Ok(messages
            .into_iter()
            .map(|m| MessageView::new(m, session.clone()))
            .collect())
    }

    /// Soft-deletes a message.
    ///
    /// # Errors
    /// `message_not_found` (also on a second delete), or a store failure.
    pub async fn delete_message(&self, id: Uuid) -> Result<(), ServiceError> {
        self.deps
            .messages
            .soft_delete(id)
            .await
            .map_err(ServiceError::from_message_store)
    }

    /// Stores the user's message and prepares the model's context, newest history
    /// within the budget.
    async fn begin_chat(&self, new: NewMessage) -> Result<Generation, ServiceError> {
        let session = self.get_session(&new.session).await?;
        let user = self
            .append(&session, Role::User, new.message, new.metadata)
            .await?;
        let budget = self.config.context;
        let system_filter = MessageFilter {
            role: Some(Role::System),
            search: None,
        };
        let messages = &self.deps.messages;
        let (system, recent) = tokio::try_join!(
            messages.list(
                session.id,
                &system_filter,
                Page {
                    limit: Page::MAX_LIMIT,
                    offset: 0
                }
            ),
            messages.recent(session.id, budget.max_messages),
        )
        .map_err(ServiceError::from_session_store)?;
        let mut request = ModelRequest {
            messages: context::assemble(&system, &recent, budget),
        };
        if !recent.iter().any(|m| m.id == user.id) {
            // Only possible if the budget keeps no messages at all; the question must go.
            request.messages.push(crate::model::ContextMessage {
                role: Role::User,
                content: user.message.clone(),
            });
        }
        Ok(Generation {
            session,
            message_id: user.id,
            response_id: Uuid::now_v7(),
            request,
        })
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

    /// Succeeds when the store answers.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn ready(&self) -> Result<(), ServiceError> {
        self.deps.sessions.ping().await.map_err(ServiceError::Store)
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
