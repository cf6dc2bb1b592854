//! The generation lifecycle: chat and streamed chat, resume, attach, cancel; the
//! generation slot, the lease/cancel watcher and the end of a generation; shutdown.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::ChatService;
use crate::announce::Announcement;
use crate::budget::BudgetCharge;
use crate::chat::{self, ChatEvent, ChatReply, ChatStream, Generation, Publisher};
use crate::context;
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::knowledge::{self, Grounding};
use crate::message::{NewMessage, Role};
use crate::model::{ContextMessage, ModelRequest};
use crate::ports::Turn;
use crate::resume::{self, Resume, ResumePoint};
use crate::session::{Responder, SessionRef};
use crate::slots::GenerationSlot;
use crate::streams::{CancelOutcome, StreamMeta};
use crate::validate;

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

/// What chat's first step leads to.
enum Begun {
    /// The model answers.
    Answer(Box<Generation>),
    /// A person has the session: the message is stored, nothing is generated.
    Human {
        session_id: String,
        message_id: Uuid,
    },
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

impl ChatService {
    /// Takes a generation slot, before anything is stored: a full service answers
    /// `busy` and the client may retry without leaving a question behind.
    /// `client` and the session (by UUID when the reference is one) have their shares.
    fn generation_slot(
        &self,
        client: Option<IpAddr>,
        session: &SessionRef,
    ) -> Result<GenerationSlot, ServiceError> {
        let key = session
            .uuid()
            .map_or_else(|| session.as_str().to_owned(), |u| u.to_string());
        self.slots
            .try_acquire(client, &key)
            .map_err(|_| ServiceError::Busy)
    }

    /// Admits a generation under the token budgets, before anything is stored or
    /// reaches the model: the one place a generation is admitted (a turn that
    /// generates nothing must not call it). Costs one call of the limiter (one
    /// round trip on Redis) when a budget is set, nothing otherwise; resolving a
    /// session referenced by `session_id` costs a store read when the per-session
    /// quota is set (the HTTP transport hands over the UUID already).
    async fn admit_generation(
        &self,
        client: Option<IpAddr>,
        session: &SessionRef,
    ) -> Result<Option<BudgetCharge>, ServiceError> {
        let Some(budgets) = &self.budgets else {
            return Ok(None);
        };
        let session = match (budgets.policy().per_session, session.uuid()) {
            (None, _) => None,
            (Some(_), Some(id)) => Some(id),
            (Some(_), None) => Some(self.get_session(session).await?.id),
        };
        budgets.admit(client, session).await.map(Some)
    }

    /// Admits a generation under the token budgets ([`Self::admit_generation`]),
    /// except that a refusal does not stop a visitor whose session a person
    /// answers: their message is stored for the person and nothing is generated,
    /// so no budget is spent.
    async fn admit_turn(
        &self,
        client: Option<IpAddr>,
        session: &SessionRef,
    ) -> Result<Option<BudgetCharge>, ServiceError> {
        match self.admit_generation(client, session).await {
            Ok(charge) => Ok(charge),
            Err(refused @ (ServiceError::BudgetExhausted(_) | ServiceError::RateLimited(_))) => {
                if self.get_session(session).await?.responder == Responder::Human {
                    Ok(None)
                } else {
                    Err(refused)
                }
            }
            Err(other) => Err(other),
        }
    }

    /// Stores the user's message and reads the model's context in one store call,
    /// and announces the message. While a person has the session (and their
    /// request has not timed out), nothing more: [`Begun::Human`].
    async fn begin_chat(&self, new: NewMessage) -> Result<Begun, ServiceError> {
        validate::check_new_message(&new, self.limits())?;
        let budget = self.config.context;
        let draft = self.draft(&new.session, Role::User, new.message, new.metadata);
        let turn = self
            .deps
            .store
            .begin_turn(&new.session, draft, budget.max_messages)
            .await?;
        self.deps
            .announce(Announcement::MessageStored(&turn.session, &turn.message))
            .await?;
        // The session as stored with the message decides: a takeover before it
        // stops this answer, one after it cancels the answer.
        if turn.session.responder == Responder::Human
            && self.expire_handoff(&turn.session).await.is_none()
        {
            return Ok(Begun::Human {
                session_id: turn.session.session_id,
                message_id: turn.message.id,
            });
        }
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
        Ok(Begun::Answer(Box::new(Generation {
            session: turn.session,
            message_id: turn.message.id,
            response_id,
            request,
            grounding,
            charge: None,
        })))
    }

    /// Searches the knowledge base for the turn and adds the passages that fit the
    /// context budget to `request`. A failed search only loses the sources.
    async fn ground(&self, turn: &Turn, request: &mut ModelRequest) -> Grounding {
        let Some((base, config)) = &self.knowledge else {
            return Grounding::Off;
        };
        let plan = knowledge::retrieval_plan(&turn.recent, &turn.message.message);
        let found = tokio::time::timeout(
            config.timeout,
            knowledge::retrieve(base.as_ref(), &plan, config.top_k),
        )
        .await;
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
    /// still stored. While a person has the session (`responder` is `human`), the
    /// message is stored and nothing is generated: the reply is empty, with
    /// `responder` `Human` and no `response_id` (a request past its handoff
    /// timeout is timed out first, and the model answers).
    ///
    /// # Errors
    /// `session_not_found`, `session_inactive`, `llm_unavailable`/`llm_timeout` (the
    /// user message stays stored), or a store failure.
    pub async fn chat(&self, new: NewMessage) -> Result<ChatReply, ServiceError> {
        self.chat_from(None, new).await
    }

    /// [`ChatService::chat`] for `client` (see
    /// [`ServiceConfig::max_generations_per_client`](crate::ServiceConfig::max_generations_per_client)).
    ///
    /// # Errors
    /// As [`ChatService::chat`].
    pub async fn chat_from(
        &self,
        client: Option<IpAddr>,
        new: NewMessage,
    ) -> Result<ChatReply, ServiceError> {
        let slot = self.generation_slot(client, &new.session)?;
        let charge = self.admit_turn(client, &new.session).await?;
        let mut generation = match self.begin_chat(new).await? {
            Begun::Answer(generation) => *generation,
            Begun::Human {
                session_id,
                message_id,
            } => return Ok(ChatReply::handoff(session_id, message_id)),
        };
        generation.charge = charge;
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
        self.chat_stream_from(None, new).await
    }

    /// [`ChatService::chat_stream`] for `client` (see
    /// [`ServiceConfig::max_generations_per_client`](crate::ServiceConfig::max_generations_per_client)).
    ///
    /// # Errors
    /// As [`ChatService::chat_stream`].
    pub async fn chat_stream_from(
        &self,
        client: Option<IpAddr>,
        new: NewMessage,
    ) -> Result<ChatStream, ServiceError> {
        let slot = self.generation_slot(client, &new.session)?;
        let charge = self.admit_turn(client, &new.session).await?;
        let mut generation = match self.begin_chat(new).await? {
            Begun::Answer(generation) => *generation,
            Begun::Human {
                session_id,
                message_id,
            } => {
                return Ok(ChatStream {
                    session_id,
                    message_id,
                    response_id: Uuid::nil(),
                    events: futures::stream::empty().boxed(),
                    offset: 0,
                    responder: Responder::Human,
                })
            }
        };
        generation.charge = charge;
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = ChatStream {
            session_id: generation.session.session_id.clone(),
            message_id: generation.message_id,
            response_id: generation.response_id,
            events: chat::event_stream(rx),
            offset: 0,
            responder: Responder::Ai,
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
        client: Option<mpsc::UnboundedSender<ChatEvent>>,
    ) -> (Publisher, CancellationToken, tokio::task::JoinHandle<()>) {
        let meta = generation.meta();
        if let Err(e) = self.deps.streams.start(&meta).await {
            tracing::warn!(error = %e, response_id = %meta.response_id, "could not start the answer's stream log");
        }
        // Watchers of the session learn its `active_response_id`, to attach to the answer.
        self.deps
            .announce_detached(Announcement::SessionChanged(&generation.session))
            .await;
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
        if let Some(read) = resume::read_log(self.deps.streams.as_ref(), response, after).await? {
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

    /// How many generations are running.
    #[must_use]
    pub fn generations_in_flight(&self) -> usize {
        self.generations.len()
    }

    /// Graceful shutdown: stops the handoff timeout timers (the next chat or
    /// watcher times a due request out, on any instance), lets running
    /// generations finish for up to `grace`, then cancels the rest, which store
    /// their partial text with `finish_reason = "cancelled"`. Returns once every
    /// answer is stored.
    pub async fn shutdown(&self, grace: Duration) {
        // Handoff timers hold the service: stop them, so the store can close.
        self.timers.cancel();
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
