//! Announcing what happened in a session: the one place every change the
//! service stores is told to whoever watches. Today that is the session's live
//! events ([`crate::events`]); webhooks hang off the same call.
//!
//! Every use case calls [`Deps::announce`] once, **after** the change is
//! stored, with what happened. Ringing the events' doorbell never fails the
//! request: the change is already stored, and a subscriber that missed the
//! doorbell replays from the store (see [`crate::events`]).
//!
//! Webhooks ([`crate::webhooks`]) are different: nothing else would ever tell
//! the site's people, so the announcement enqueues the selected webhook events
//! in the durable outbox, and when the outbox cannot take them (after a few
//! tries within a fraction of a second) `announce` fails with the store's
//! error: the request answers 503 `store_unavailable` ("not acknowledged";
//! the change itself is stored). The refused entries are kept in the process
//! and enqueued by the deliverer once the store answers again, so a client
//! whose retry finds the change already made (a handoff already requested: 200,
//! nothing announced again) still gets its webhook sent; only a crash of the
//! instance while the store is down loses it (logged at `error` level).
//! Changes no request waits for (an answer stored by its generation task, the
//! handoff timer) use [`Deps::announce_detached`]: the same, minus the 503.

use uuid::Uuid;

use crate::deps::Deps;
use crate::error::ServiceError;
use crate::events::{EventKind, EventTopic};
use crate::message::ChatMessage;
use crate::session::Session;
use crate::webhooks::Announced;

/// What happened in a session, as the use cases tell [`Deps::announce`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Announcement<'a> {
    /// A session was created.
    SessionCreated(&'a Session),
    /// A session's fields changed (metadata, `is_active`, expiry, external id), or
    /// an answer started in it (its `active_response_id` is set).
    SessionChanged(&'a Session),
    /// The visitor asked for a person (`session` as stored after the request).
    HandoffRequested(&'a Session),
    /// An operator took the session over or handed it back.
    ResponderChanged(&'a Session),
    /// A handoff request waited longer than `--handoff-timeout` without an
    /// operator's reply: the session is back to `responder: "ai"` (`session` as
    /// stored after the change). The notice message follows as its own
    /// [`Announcement::MessageStored`].
    HandoffTimedOut(&'a Session),
    /// The session was deleted.
    SessionDeleted(&'a Session),
    /// A message was stored in `session`.
    MessageStored(&'a Session, &'a ChatMessage),
    /// A message of `session` was deleted.
    MessageDeleted(&'a Session, Uuid),
}

impl Announcement<'_> {
    /// The session the announcement is about.
    pub(crate) fn session(&self) -> &Session {
        match *self {
            Self::SessionCreated(s)
            | Self::SessionChanged(s)
            | Self::HandoffRequested(s)
            | Self::ResponderChanged(s)
            | Self::HandoffTimedOut(s)
            | Self::SessionDeleted(s)
            | Self::MessageStored(s, _)
            | Self::MessageDeleted(s, _) => s,
        }
    }

    /// What it means to the webhooks.
    fn webhook(&self) -> Announced<'_> {
        match *self {
            Self::SessionCreated(s) => Announced::SessionCreated(s),
            Self::HandoffRequested(s) => Announced::HandoffRequested(s),
            Self::ResponderChanged(s) => Announced::ResponderChanged(s),
            Self::HandoffTimedOut(s) => Announced::HandoffTimedOut(s),
            Self::MessageStored(s, m) => Announced::MessageStored(s, m),
            Self::SessionChanged(_) | Self::SessionDeleted(_) | Self::MessageDeleted(..) => {
                Announced::Other
            }
        }
    }

    /// The doorbell it rings on the session's events.
    fn event(&self) -> EventKind {
        match *self {
            Self::SessionCreated(_)
            | Self::SessionChanged(_)
            | Self::HandoffRequested(_)
            | Self::ResponderChanged(_)
            | Self::HandoffTimedOut(_) => EventKind::SessionChanged,
            Self::SessionDeleted(_) => EventKind::SessionDeleted,
            Self::MessageStored(_, message) => EventKind::MessageStored { id: message.id },
            Self::MessageDeleted(_, id) => EventKind::MessageDeleted { id },
        }
    }
}

impl Deps {
    /// [`Deps::announce`] where no request waits for the outcome (an answer
    /// stored by its generation task, a timer): a webhook the outbox could not
    /// take is kept in this process and enqueued once the store is back (see
    /// [`crate::webhooks`]), and the failure is logged.
    pub(crate) async fn announce_detached(&self, announcement: Announcement<'_>) {
        // `announce` logged the failure already; nobody else is to be told.
        let _logged = self.announce(announcement).await;
    }

    /// Tells whoever watches `announcement`'s session what happened, and enqueues
    /// the webhooks it sends. Call it after the change is stored.
    ///
    /// # Errors
    /// Only when webhooks are configured and the outbox cannot take this
    /// announcement's entries (see the [module docs](self)); a broker that cannot
    /// be reached is logged, and subscribers catch up from the store.
    pub(crate) async fn announce(
        &self,
        announcement: Announcement<'_>,
    ) -> Result<(), ServiceError> {
        let topic = EventTopic::from(announcement.session());
        if let Err(error) = self.events.publish(&topic, announcement.event()).await {
            tracing::warn!(%error, session = %topic.session, "session event not published");
        }
        if let Some(webhooks) = &self.webhooks {
            if let Err(error) = webhooks.announce(self.now(), announcement.webhook()).await {
                tracing::error!(%error, session = %topic.session, "webhook not enqueued; the request fails with 503");
                return Err(error.into());
            }
        }
        Ok(())
    }
}
