//! Who may do what: the access modes and the one table that decides, for every API
//! operation, whether a visitor may do it or it needs the operator's admin token.
//!
//! In [`AccessMode::Public`] a session is a capability: a visitor reaches only what
//! they hold an unguessable id for — a server-generated `session_id` (128 random
//! bits), or a session or message UUID the API gave them. Everything else (listing
//! sessions, client-chosen `session_id`s, `system`/`assistant` messages, changing
//! what the operator decides) needs the admin token. In [`AccessMode::Open`] every
//! operation is open, as in the seed.

use std::fmt;
use std::str::FromStr;

use crate::message::{NewMessage, Role};
use crate::session::{NewSession, SessionPatch, SessionRef, GENERATED_SESSION_ID_CHARS};

/// How the API treats callers without the admin token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessMode {
    /// Every endpoint open to anyone (the seed's behaviour; for loopback and trusted
    /// networks).
    Open,
    /// For the internet: visitors reach only their own sessions.
    Public,
}

impl AccessMode {
    /// The mode as `--access` spells it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Public => "public",
        }
    }
}

impl fmt::Display for AccessMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown access mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown access mode {0:?}: use open or public")]
pub struct AccessModeError(String);

impl FromStr for AccessMode {
    type Err = AccessModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "public" => Ok(Self::Public),
            other => Err(AccessModeError(other.to_owned())),
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Anyone, without the admin token.
    Visitor,
    /// The operator: the request carried the admin token.
    Admin,
}

/// An API operation, with what the access table needs to know about it.
#[derive(Debug, Clone, Copy)]
pub enum Operation<'a> {
    /// `GET /sessions/` (with any filter).
    ListSessions,
    /// `POST /sessions/`.
    CreateSession(&'a NewSession),
    /// `GET /sessions/{id}/`.
    ReadSession(&'a SessionRef),
    /// `PATCH /sessions/{id}/`.
    UpdateSession(&'a SessionRef, &'a SessionPatch),
    /// `DELETE /sessions/{id}/`.
    DeleteSession(&'a SessionRef),
    /// `GET /sessions/{id}/export/`: the session with all its messages.
    ExportSession(&'a SessionRef),
    /// `GET /messages/?session_id=`.
    ListMessages(&'a SessionRef),
    /// `POST /messages/`.
    CreateMessage(&'a NewMessage),
    /// Chat, streamed or not, and attaching to a session's running answer.
    Chat(&'a SessionRef),
    /// Anything addressed by a message or response UUID the caller holds (get or
    /// delete a message, give feedback on it, resume or cancel a stream).
    ByMessageId,
    /// `GET /stats/`: the dashboard's counters.
    Stats,
    /// `GET /sessions/export/?external_user_id=`: every session of one visitor.
    ExportUser,
    /// `DELETE /sessions/?external_user_id=`: erasing one visitor.
    EraseUser,
    /// `GET /inbox/`: the console's inbox.
    Inbox,
    /// `GET /messages/search/?q=`: searching every session's messages.
    SearchMessages,
}

/// Why the access table refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The endpoint is the operator's alone (401 `unauthorized`).
    #[error("{0} needs the admin token (Authorization: Bearer ...)")]
    AdminOnly(&'static str),
    /// A visitor used something only the operator may use (403 `forbidden`).
    #[error("{0} needs the admin token (Authorization: Bearer ...)")]
    Forbidden(&'static str),
}

/// Whether `reference` is one a visitor can only know by being given it: a UUID, or
/// a generated `session_id` (26 base32 characters; 32 lowercase hex digits before
/// that format).
#[must_use]
pub fn is_unguessable(reference: &SessionRef) -> bool {
    let text = reference.as_str();
    let generated = text.len() == GENERATED_SESSION_ID_CHARS
        && text.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'));
    let legacy = text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    reference.uuid().is_some() || generated || legacy
}

fn capability(reference: &SessionRef) -> Result<(), AccessError> {
    if is_unguessable(reference) {
        Ok(())
    } else {
        Err(AccessError::Forbidden(
            "a session named by a custom session_id",
        ))
    }
}

/// The access table: whether `caller` may perform `operation` in `mode`.
/// docs/API.md ("Access modes") shows it as a table.
///
/// # Errors
/// [`AccessError`] naming what needs the admin token.
pub fn authorize(
    mode: AccessMode,
    caller: Caller,
    operation: Operation<'_>,
) -> Result<(), AccessError> {
    if mode == AccessMode::Open || caller == Caller::Admin {
        return Ok(());
    }
    match operation {
        Operation::ListSessions => Err(AccessError::AdminOnly("listing sessions")),
        Operation::ExportSession(_) => Err(AccessError::AdminOnly("exporting a session")),
        Operation::Stats => Err(AccessError::AdminOnly("reading the stats")),
        Operation::ExportUser => Err(AccessError::AdminOnly("exporting a visitor's sessions")),
        Operation::EraseUser => Err(AccessError::AdminOnly("erasing a visitor's sessions")),
        Operation::Inbox => Err(AccessError::AdminOnly("reading the inbox")),
        Operation::SearchMessages => Err(AccessError::AdminOnly("searching messages")),
        Operation::CreateSession(new) => {
            if new.session_id.is_some() {
                return Err(AccessError::Forbidden("choosing a session_id"));
            }
            Ok(())
        }
        Operation::ReadSession(r)
        | Operation::DeleteSession(r)
        | Operation::ListMessages(r)
        | Operation::Chat(r) => capability(r),
        Operation::UpdateSession(r, patch) => {
            capability(r)?;
            let only_closing = patch.is_active != Some(true)
                && patch.metadata.is_none()
                && patch.external_user_id.is_none()
                && patch.expires_at.is_none()
                && patch.responder.is_none()
                && patch.handoff_requested_at.is_none();
            if only_closing {
                Ok(())
            } else {
                Err(AccessError::Forbidden(
                    "changing a session other than setting is_active to false",
                ))
            }
        }
        Operation::CreateMessage(new) => {
            capability(&new.session)?;
            if new.role == Role::User {
                Ok(())
            } else {
                Err(AccessError::Forbidden(
                    "writing a system or assistant message",
                ))
            }
        }
        Operation::ByMessageId => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::generate_session_id;
    use crate::Metadata;

    fn public(op: Operation<'_>) -> Result<(), AccessError> {
        authorize(AccessMode::Public, Caller::Visitor, op)
    }

    #[test]
    fn open_mode_and_admins_may_do_everything() {
        let custom = SessionRef::parse("demo");
        for caller in [Caller::Visitor, Caller::Admin] {
            assert!(authorize(AccessMode::Open, caller, Operation::ListSessions).is_ok());
            assert!(authorize(AccessMode::Open, caller, Operation::Chat(&custom)).is_ok());
        }
        assert!(authorize(AccessMode::Public, Caller::Admin, Operation::ListSessions).is_ok());
        assert!(authorize(AccessMode::Public, Caller::Admin, Operation::Chat(&custom)).is_ok());
    }

    #[test]
    fn public_visitors_reach_only_unguessable_references() {
        let generated = SessionRef::parse(&generate_session_id().expect("random"));
        let legacy = SessionRef::parse("0123456789abcdef0123456789abcdef");
        let uuid = SessionRef::from_uuid(uuid::Uuid::now_v7());
        for r in [&generated, &legacy, &uuid] {
            assert!(public(Operation::Chat(r)).is_ok(), "{r:?}");
            assert!(public(Operation::ReadSession(r)).is_ok(), "{r:?}");
        }
        for guessable in ["demo", "support-1", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"] {
            let r = SessionRef::parse(guessable);
            assert!(
                matches!(public(Operation::Chat(&r)), Err(AccessError::Forbidden(_))),
                "{guessable}"
            );
            assert!(public(Operation::ListMessages(&r)).is_err(), "{guessable}");
        }
        for admin_only in [
            Operation::ListSessions,
            Operation::Stats,
            Operation::ExportUser,
            Operation::EraseUser,
            Operation::Inbox,
            Operation::SearchMessages,
        ] {
            assert!(matches!(public(admin_only), Err(AccessError::AdminOnly(_))));
        }
    }

    #[test]
    fn public_visitors_write_only_user_messages_and_may_only_close_sessions() {
        let r = SessionRef::parse(&generate_session_id().expect("random"));
        let message = |role| NewMessage {
            session: r.clone(),
            message: "hi".into(),
            role,
            metadata: Metadata::new(),
        };
        assert!(public(Operation::CreateMessage(&message(Role::User))).is_ok());
        assert!(public(Operation::CreateMessage(&message(Role::System))).is_err());
        assert!(public(Operation::CreateMessage(&message(Role::Assistant))).is_err());
        let close = SessionPatch {
            is_active: Some(false),
            ..SessionPatch::default()
        };
        assert!(public(Operation::UpdateSession(&r, &close)).is_ok());
        let reopen = SessionPatch {
            is_active: Some(true),
            ..SessionPatch::default()
        };
        assert!(public(Operation::UpdateSession(&r, &reopen)).is_err());
        let relabel = SessionPatch {
            external_user_id: Some(Some("someone-else".into())),
            ..SessionPatch::default()
        };
        assert!(public(Operation::UpdateSession(&r, &relabel)).is_err());
        let custom = NewSession {
            session_id: Some("demo".into()),
            ..NewSession::default()
        };
        assert!(public(Operation::CreateSession(&custom)).is_err());
        assert!(public(Operation::CreateSession(&NewSession::default())).is_ok());
    }
}
