//! The message use cases: write, read, list, delete, and the operator's export.

use crate::announce::Announcement;
use uuid::Uuid;

use super::{ChatService, MessagePage, SessionExport};
use crate::error::ServiceError;
use crate::message::{Cursor, MessageDraft, MessageQuery, MessageView, NewMessage, Order, Role};
use crate::session::{Metadata, Page, Session, SessionRef};
use crate::validate;

impl ChatService {
    /// A new message draft for the session `to` names: a fresh id (from the store),
    /// the current time.
    pub(super) fn draft(
        &self,
        to: &SessionRef,
        role: Role,
        message: String,
        metadata: Metadata,
    ) -> MessageDraft {
        MessageDraft {
            id: self.deps.store.new_message_id(to),
            role,
            message,
            metadata,
            timestamp: self.deps.now(),
        }
    }

    /// Stores a message written by a client (any role). An `assistant` message with
    /// `metadata.operator` is an operator's reply: it answers a pending handoff
    /// request (see [`ChatService::request_handoff`]).
    ///
    /// # Errors
    /// `invalid_field` (`metadata.operator` on another role, or not 1 to 100
    /// characters), `session_not_found`, `session_inactive`, or a store failure.
    pub async fn create_message(&self, new: NewMessage) -> Result<MessageView, ServiceError> {
        validate::check_new_message(&new, self.limits())?;
        let operator = validate::operator(new.role, &new.metadata)?.is_some();
        let draft = self.draft(&new.session, new.role, new.message, new.metadata);
        let (session, stored) = self.deps.store.append(&new.session, draft).await?;
        self.deps
            .announce(Announcement::MessageStored(&session, &stored))
            .await;
        if operator {
            self.operator_replied(&session).await;
        }
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
        // Read first: the announcement names the message's session.
        let (_, session) = self
            .deps
            .store
            .message(id)
            .await?
            .ok_or(ServiceError::MessageNotFound)?;
        self.deps.store.delete_message(id).await?;
        self.deps
            .announce(Announcement::MessageDeleted(&session, id))
            .await;
        Ok(())
    }
}
