//! Announcing what happened in a session: the one place every change the
//! service stores is told to whoever watches. Today that is the session's live
//! events ([`crate::events`]); webhooks hang off the same call.
//!
//! Every use case calls [`Deps::announce`] once, **after** the change is
//! stored, with what happened. Announcing never fails the request: the change
//! is already stored, and a subscriber that missed the doorbell replays from
//! the store (see [`crate::events`]).

use uuid::Uuid;

use crate::deps::Deps;
use crate::events::{EventKind, EventTopic};
use crate::message::ChatMessage;
use crate::session::Session;

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
    /// Tells whoever watches `announcement`'s session what happened. Call it after
    /// the change is stored; it never fails the caller (a broker that cannot be
    /// reached is logged, and subscribers catch up from the store).
    pub(crate) async fn announce(&self, announcement: Announcement<'_>) {
        let topic = EventTopic::from(announcement.session());
        if let Err(error) = self.events.publish(&topic, announcement.event()).await {
            tracing::warn!(%error, session = %topic.session, "session event not published");
        }
    }
}
