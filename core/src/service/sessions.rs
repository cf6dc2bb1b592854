//! The session use cases: create, read, change, delete, list, expire.

use crate::announce::Announcement;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ChatService, SessionPage, SessionView};
use crate::error::{ServiceError, ValidationError};
use crate::session::{
    generate_session_id, NewSession, Page, Session, SessionFilter, SessionPatch, SessionRef,
};
use crate::validate;

impl ChatService {
    /// `at` when it is in the future and within the longest session lifetime.
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
        let now = self.deps.now();
        let expires_at = match new.expires_at {
            Some(at) => self.future_expiry(at, now)?,
            None => now + self.config.session_ttl,
        };
        let session_id = match new.session_id {
            Some(id) => id,
            None => generate_session_id().map_err(|e| ServiceError::Internal(Box::new(e)))?,
        };
        let session = Session {
            id: Uuid::new_v4(), // 122 random bits: a capability in public mode (API.md)
            session_id,
            external_user_id: new.external_user_id,
            created_at: now,
            expires_at,
            is_active: true,
            responder: crate::session::Responder::Ai,
            handoff_requested_at: None,
            metadata: new.metadata,
        };
        self.deps.store.create_session(&session).await?;
        self.deps
            .announce(Announcement::SessionCreated(&session))
            .await?;
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

    /// Changes a session's `is_active`, `metadata`, `external_user_id`, `expires_at`
    /// or `responder` (`human`: a person takes over, and an answer in flight is
    /// cancelled; `ai`: handed back, `handoff_requested_at` cleared).
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
            self.future_expiry(at, self.deps.now())?;
        }
        let mut patch = patch;
        Self::handoff_patch(&mut patch);
        // Who answered before, to announce a change of responder as one.
        let before = match patch.responder {
            Some(_) => Some(self.get_session(reference).await?),
            None => None,
        };
        let session = self.deps.store.update_session(reference, &patch).await?;
        self.announce_patched(before.as_ref(), &session).await?;
        Ok(session)
    }

    /// Deletes a session and all its messages.
    ///
    /// # Errors
    /// `session_not_found` (also on a second delete), or a store failure.
    pub async fn delete_session(&self, reference: &SessionRef) -> Result<(), ServiceError> {
        // Read first: the announcement names the session the reference resolved to.
        let session = self.get_session(reference).await?;
        self.deps
            .store
            .delete_session(&SessionRef::from_uuid(session.id))
            .await?;
        self.deps
            .announce(Announcement::SessionDeleted(&session))
            .await?;
        Ok(())
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
    /// [`super::ServiceConfig::retention`]); returns how many. Servers call it periodically.
    ///
    /// # Errors
    /// A store failure.
    pub async fn purge_expired(&self) -> Result<u64, ServiceError> {
        match self.config.retention.cutoff(self.deps.clock.now()) {
            Some(cutoff) => Ok(self.deps.store.purge_expired(cutoff).await?),
            None => Ok(0),
        }
    }
}
