//! Human handoff: a visitor asks for a person, an operator takes the session over
//! and hands it back, and a request nobody picks up times out.
//!
//! - [`ChatService::request_handoff`]: `responder` becomes `human` at once and
//!   `handoff_requested_at` is set; the model stops (an answer in flight is
//!   cancelled, its partial text stored).
//! - `PATCH responder` ([`ChatService::update_session`]): the operator takes over
//!   (`human`, which also cancels an answer in flight) or hands back (`ai`, which
//!   clears `handoff_requested_at`).
//! - An operator's reply (an `assistant` message with `metadata.operator`) answers
//!   the pending request: `handoff_requested_at` is cleared.
//! - **Timeout.** While `handoff_requested_at` is set, `responder` is `human` and
//!   [`HandoffConfig::timeout`] has passed since the request without an operator's
//!   reply, the session goes back to `ai` and an assistant message with
//!   `metadata.notice = "handoff_timeout"` tells the visitor. Checked by a timer on
//!   the instance that took the request, and lazily by the next chat on any
//!   instance (so a restart cannot leave a session waiting for ever). Two instances
//!   that decide it at the same instant may both store the notice; nothing else is
//!   doubled.
//!
//! While `responder` is `human`, chat stores the visitor's message and generates
//! nothing (see [`ChatReply::responder`](crate::ChatReply::responder)).

use crate::stats::StatCounts;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::ChatService;
use crate::announce::Announcement;
use crate::error::{ServiceError, StoreError};
use crate::message::Role;
use crate::session::{Metadata, Responder, Session, SessionPatch, SessionRef};

/// The text of the notice stored when a handoff times out, unless configured.
pub const DEFAULT_HANDOFF_TIMEOUT_MESSAGE: &str =
    "No one is available to take over right now, so the assistant will answer again. You can ask for a person again later.";

/// The value of `metadata.notice` on the message a handoff timeout stores.
pub const HANDOFF_TIMEOUT_NOTICE: &str = "handoff_timeout";

/// The handoff settings; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffConfig {
    /// How long a handoff request may wait for an operator's reply before the model
    /// answers again; `None`: for ever. Default 5 minutes.
    pub timeout: Option<Duration>,
    /// The assistant message stored when a request times out. Default
    /// [`DEFAULT_HANDOFF_TIMEOUT_MESSAGE`].
    pub timeout_message: String,
}

impl HandoffConfig {
    /// The default `timeout`: 5 minutes.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            timeout: Some(Self::DEFAULT_TIMEOUT),
            timeout_message: DEFAULT_HANDOFF_TIMEOUT_MESSAGE.to_owned(),
        }
    }
}

/// The shortest wait of the timeout timer between two looks at a session (a clock
/// a little behind the timer's must not make it spin).
const MIN_TIMER_WAIT: Duration = Duration::from_millis(10);

impl ChatService {
    /// The handoff settings.
    #[must_use]
    pub fn handoff_config(&self) -> &HandoffConfig {
        &self.handoff
    }

    /// The visitor asks for a person: `responder` becomes `human` and
    /// `handoff_requested_at` is set to now; an answer being generated is cancelled.
    /// A session whose responder is already `human` is returned unchanged (and
    /// nothing is announced again).
    ///
    /// # Errors
    /// `session_not_found`, `session_inactive`, or a store failure.
    pub async fn request_handoff(&self, reference: &SessionRef) -> Result<Session, ServiceError> {
        let session = self.get_session(reference).await?;
        if !session.is_active {
            return Err(ServiceError::SessionInactive);
        }
        if session.responder == Responder::Human {
            return Ok(session);
        }
        let patch = SessionPatch {
            responder: Some(Responder::Human),
            handoff_requested_at: Some(Some(self.deps.now())),
            ..SessionPatch::default()
        };
        let session = self
            .deps
            .store
            .update_session(&SessionRef::from_uuid(session.id), &patch)
            .await?;
        self.count_handoff().await;
        let announced = self
            .deps
            .announce(Announcement::HandoffRequested(&session))
            .await;
        self.cancel_answer(&session).await;
        self.schedule_handoff_timeout(&session);
        // The webhook could not be enqueued (503; kept in this process meanwhile).
        announced?;
        Ok(session)
    }

    /// Counts a handoff request in the dashboard's stats. A store that keeps no
    /// stats (a third-party one) or fails here only loses the count: the request is
    /// stored already.
    async fn count_handoff(&self) {
        let counts = StatCounts {
            handoffs: 1,
            ..StatCounts::default()
        };
        match self.deps.store.add_stats(self.deps.now(), &counts).await {
            Ok(()) | Err(StoreError::NotSupported(_)) => {}
            Err(error) => tracing::warn!(%error, "handoff not counted in the stats"),
        }
    }

    /// What a patch that sets `responder` implies: handing back (`ai`) clears the
    /// pending request.
    pub(super) fn handoff_patch(patch: &mut SessionPatch) {
        if patch.responder == Some(Responder::Ai) {
            patch.handoff_requested_at = Some(None);
        }
    }

    /// Announces a session changed by a patch (`before` is the session before it, read
    /// when the patch sets `responder`), and cancels the answer in flight when a
    /// person took over.
    ///
    /// # Errors
    /// When the webhook of the change could not be enqueued (see
    /// [`crate::announce`]); the rest is done regardless.
    pub(super) async fn announce_patched(
        &self,
        before: Option<&Session>,
        after: &Session,
    ) -> Result<(), ServiceError> {
        match before {
            Some(before) if before.responder != after.responder => {
                let announced = self
                    .deps
                    .announce(Announcement::ResponderChanged(after))
                    .await;
                if after.responder == Responder::Human {
                    self.cancel_answer(after).await;
                    self.schedule_handoff_timeout(after);
                }
                announced
            }
            _ => {
                self.deps
                    .announce(Announcement::SessionChanged(after))
                    .await
            }
        }
    }

    /// An operator's reply was stored in `session`: a pending request is answered
    /// (`handoff_requested_at` cleared, so it no longer times out).
    pub(super) async fn operator_replied(&self, session: &Session) {
        if session.handoff_requested_at.is_none() {
            return;
        }
        let patch = SessionPatch {
            handoff_requested_at: Some(None),
            ..SessionPatch::default()
        };
        match self
            .deps
            .store
            .update_session(&SessionRef::from_uuid(session.id), &patch)
            .await
        {
            Ok(session) => {
                self.deps
                    .announce_detached(Announcement::SessionChanged(&session))
                    .await;
            }
            Err(e) => {
                tracing::warn!(error = %e, session = %session.id, "could not mark the handoff request answered");
            }
        }
    }

    /// When `session`'s pending handoff request times out: `None` when it has none,
    /// the model answers, or no timeout is set.
    fn handoff_deadline(&self, session: &Session) -> Option<DateTime<Utc>> {
        let timeout = chrono::Duration::from_std(self.handoff.timeout?).ok()?;
        if session.responder != Responder::Human {
            return None;
        }
        session.handoff_requested_at.map(|at| at + timeout)
    }

    /// Times out `session`'s pending handoff request if its time has come: back to
    /// `ai`, the notice stored, both announced. Returns the session as changed, or
    /// `None` when nothing was due (or the change failed: logged, and the next
    /// chat or timer tries again).
    pub(super) async fn expire_handoff(&self, session: &Session) -> Option<Session> {
        let deadline = self.handoff_deadline(session)?;
        if self.deps.now() < deadline {
            return None;
        }
        let reference = SessionRef::from_uuid(session.id);
        let patch = SessionPatch {
            responder: Some(Responder::Ai),
            handoff_requested_at: Some(None),
            ..SessionPatch::default()
        };
        let changed = match self.deps.store.update_session(&reference, &patch).await {
            Ok(changed) => changed,
            Err(e) => {
                tracing::warn!(error = %e, session = %session.id, "could not time the handoff request out");
                return None;
            }
        };
        self.deps
            .announce_detached(Announcement::HandoffTimedOut(&changed))
            .await;
        let mut metadata = Metadata::new();
        metadata.insert("notice".into(), json!(HANDOFF_TIMEOUT_NOTICE));
        let draft = self.draft(
            &reference,
            Role::Assistant,
            self.handoff.timeout_message.clone(),
            metadata,
        );
        match self.deps.store.append(&reference, draft).await {
            Ok((stored_in, notice)) => {
                self.deps
                    .announce_detached(Announcement::MessageStored(&stored_in, &notice))
                    .await;
            }
            Err(e) => {
                tracing::warn!(error = %e, session = %session.id, "could not store the handoff timeout notice");
            }
        }
        Some(changed)
    }

    /// Reads the session `reference` names and times out its pending handoff
    /// request if its time has come (what the timer and the next chat do); returns
    /// the session as it is now.
    ///
    /// # Errors
    /// `session_not_found`, or a store failure.
    pub async fn check_handoff_timeout(
        &self,
        reference: &SessionRef,
    ) -> Result<Session, ServiceError> {
        let session = self.get_session(reference).await?;
        Ok(self.time_out_handoff(session).await)
    }

    /// `session` (as just read) with its pending handoff request timed out if its
    /// time has come; unchanged otherwise. Costs nothing unless one is due. The
    /// events endpoint calls it when a watcher connects, so a request whose
    /// instance restarted times out as soon as anyone looks.
    pub async fn time_out_handoff(&self, session: Session) -> Session {
        self.expire_handoff(&session).await.unwrap_or(session)
    }

    /// Starts the timer that times out `session`'s pending request on this
    /// instance. It ends at its deadline, when the request was answered or handed
    /// back before (it then finds nothing due), or at shutdown.
    fn schedule_handoff_timeout(&self, session: &Session) {
        let Some(deadline) = self.handoff_deadline(session) else {
            return;
        };
        let service = self.clone();
        let id = session.id;
        let requested = session.handoff_requested_at;
        let mut wait = until(deadline, self.deps.now());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = service.timers.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                let session = match service.deps.store.session(&SessionRef::from_uuid(id)).await {
                    Ok(Some(session)) if session.handoff_requested_at == requested => session,
                    // Answered, handed back, requested anew (its own timer), or gone.
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, session = %id, "handoff timer could not read the session; the next chat checks it");
                        return;
                    }
                };
                let Some(deadline) = service.handoff_deadline(&session) else {
                    return;
                };
                let now = service.deps.now();
                if now >= deadline {
                    service.expire_handoff(&session).await;
                    return;
                }
                wait = until(deadline, now);
            }
        });
    }

    /// Cancels the answer being generated in `session`, wherever it runs (its
    /// partial text is stored with `finish_reason = "cancelled"`).
    async fn cancel_answer(&self, session: &Session) {
        let running = match self.deps.streams.active(session).await {
            Ok(running) => running,
            Err(e) => {
                tracing::warn!(error = %e, session = %session.id, "could not look for an answer to cancel");
                return;
            }
        };
        if let Some(response) = running {
            match self.cancel(response).await {
                Ok(()) | Err(ServiceError::ResponseComplete | ServiceError::MessageNotFound) => {}
                Err(e) => {
                    tracing::warn!(error = %e, %response, "could not cancel the answer a person took over");
                }
            }
        }
    }
}

/// How long from `now` until `deadline` (at least [`MIN_TIMER_WAIT`]).
fn until(deadline: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (deadline - now)
        .to_std()
        .unwrap_or_default()
        .max(MIN_TIMER_WAIT)
}
