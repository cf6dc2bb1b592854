//! The console's use cases: feedback on an answer, the dashboard's stats, and one
//! visitor's export and erasure (by `external_user_id`).

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{ChatService, SessionExport};
use crate::error::{ServiceError, ValidationError};
use crate::feedback::{Feedback, NewFeedback};
use crate::inbox::{InboxCursor, InboxEntry, InboxQuery};
use crate::message::{MessageView, Role};
use crate::ports::Erased;
use crate::session::{Page, SessionFilter, SessionRef};
use crate::stats::{Bucket, Stats, StatsQuery};

/// How many ungrounded questions a stats report lists.
pub const STATS_TOP_QUESTIONS: usize = 20;

/// The longest range a stats report covers, in days.
pub const MAX_STATS_DAYS: i64 = 400;

/// The longest range a stats report with hourly buckets covers, in days.
pub const MAX_HOURLY_STATS_DAYS: i64 = 31;

/// The most sessions one visitor's export holds (the newest ones).
pub const MAX_EXPORT_SESSIONS: usize = Page::MAX_LIMIT;

/// Every session of one visitor with its messages; see [`ChatService::export_user`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UserExport {
    /// The visitor.
    pub external_user_id: String,
    /// Their live sessions, newest first, each with its live messages.
    pub sessions: Vec<SessionExport>,
    /// Whether they have more than [`MAX_EXPORT_SESSIONS`] sessions (then only the
    /// newest are here).
    pub truncated: bool,
}

impl ChatService {
    /// Records feedback on the assistant message `id` (the last feedback wins) and
    /// returns the message as stored.
    ///
    /// # Errors
    /// `message_not_found` when the message is missing, or `new.session` is given and
    /// is not the message's session (so nothing about the message is confirmed);
    /// `invalid_field` (`id`) when it is not an assistant message; `not_supported`
    /// when the store keeps no feedback; a store failure.
    pub async fn give_feedback(
        &self,
        id: Uuid,
        new: NewFeedback,
    ) -> Result<MessageView, ServiceError> {
        let (message, session) = self
            .deps
            .store
            .message(id)
            .await?
            .ok_or(ServiceError::MessageNotFound)?;
        if let Some(claimed) = &new.session {
            if claimed.uuid() != Some(session.id) && claimed.as_str() != session.session_id {
                return Err(ServiceError::MessageNotFound);
            }
        }
        if message.role != Role::Assistant {
            return Err(
                ValidationError::invalid("id", "only an assistant message takes feedback").into(),
            );
        }
        let feedback = Feedback {
            rating: new.rating,
            comment: new.comment,
            at: self.deps.now(),
        };
        let (message, session) = self.deps.store.set_feedback(id, &feedback).await?;
        Ok(MessageView::new(message, session))
    }

    /// The dashboard's figures over `query`'s range: by default the last 7 days
    /// (today included), by day. `from` is rounded down to its bucket's start.
    ///
    /// # Errors
    /// `invalid_field` when `to` is not after `from`, or the range is longer than
    /// [`MAX_STATS_DAYS`] ([`MAX_HOURLY_STATS_DAYS`] by hour); `not_supported`;
    /// a store failure.
    pub async fn stats(&self, query: StatsQuery) -> Result<Stats, ServiceError> {
        let to = query.to.unwrap_or_else(|| self.deps.now());
        let from = match query.from {
            Some(from) => from,
            None => {
                last_days(to, 7).ok_or_else(|| ValidationError::invalid("to", "is out of range"))?
            }
        };
        let from = query.bucket.start_of(from);
        if to <= from {
            return Err(ValidationError::invalid("to", "must be after from").into());
        }
        let max_days = match query.bucket {
            Bucket::Day => MAX_STATS_DAYS,
            Bucket::Hour => MAX_HOURLY_STATS_DAYS,
        };
        if to - from > Duration::days(max_days) {
            return Err(ValidationError::invalid(
                "to",
                format_args!("the range may be at most {max_days} days with this bucket"),
            )
            .into());
        }
        let hours = self.deps.store.hourly_stats(from, to).await?;
        Ok(Stats::from_hours(
            &hours,
            from,
            to,
            query.bucket,
            STATS_TOP_QUESTIONS,
        ))
    }

    /// Every live session of the visitor `external_user_id` (the newest
    /// [`MAX_EXPORT_SESSIONS`]), each with its live messages.
    ///
    /// # Errors
    /// A store failure.
    pub async fn export_user(&self, external_user_id: &str) -> Result<UserExport, ServiceError> {
        let filter = SessionFilter {
            external_user_id: Some(external_user_id.to_owned()),
            ..SessionFilter::default()
        };
        let page = Page {
            limit: MAX_EXPORT_SESSIONS,
            offset: 0,
        };
        let listed = self.list_sessions(&filter, page).await?;
        let mut sessions = Vec::with_capacity(listed.sessions.len());
        for session in listed.sessions {
            match self
                .export_session(&SessionRef::from_uuid(session.id))
                .await
            {
                Ok(export) => sessions.push(export),
                // Deleted since it was listed: nothing of it to export.
                Err(ServiceError::SessionNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(UserExport {
            external_user_id: external_user_id.to_owned(),
            sessions,
            truncated: listed.next.is_some(),
        })
    }

    /// Erases everything stored about the visitor `external_user_id` (see
    /// [`crate::ports::ChatStore::erase_user`]); returns how much.
    ///
    /// # Errors
    /// `not_supported`, or a store failure.
    pub async fn erase_user(&self, external_user_id: &str) -> Result<Erased, ServiceError> {
        // The sessions to announce as deleted (the newest MAX_EXPORT_SESSIONS: a
        // watcher of an older one sees it gone at its next read).
        let filter = SessionFilter {
            external_user_id: Some(external_user_id.to_owned()),
            ..SessionFilter::default()
        };
        let page = Page {
            limit: MAX_EXPORT_SESSIONS,
            offset: 0,
        };
        // A failed read only costs the announcements; the erase decides the answer.
        let sessions = match self.deps.store.list_sessions(&filter, page).await {
            Ok(sessions) => sessions,
            Err(e) => {
                tracing::warn!(error = %e, "could not list the sessions to erase; their watchers are not told");
                Vec::new()
            }
        };
        let erased = self.deps.store.erase_user(external_user_id).await?;
        for session in &sessions {
            self.deps
                .announce(crate::announce::Announcement::SessionDeleted(session))
                .await;
        }
        Ok(erased)
    }
}

/// One page of the console's inbox; see [`ChatService::inbox`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InboxPage {
    /// The rows, latest activity first.
    pub results: Vec<InboxEntry>,
    /// The `cursor` of the next page, or `None` when this is the last.
    pub next: Option<String>,
}

/// One message a search found, with its session.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchHit {
    /// The message, as `GET /messages/{id}/` returns it.
    pub message: MessageView,
    /// Its session.
    pub session: crate::session::Session,
}

/// One page of a message search; see [`ChatService::search_messages`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchPage {
    /// The messages found, newest first.
    pub results: Vec<SearchHit>,
    /// The `cursor` of the next page, or `None` when this is the last.
    pub next: Option<String>,
}

impl ChatService {
    /// One page of the console's inbox (see [`crate::inbox`]): the sessions that
    /// pass the query's filter, latest activity first, after its cursor.
    ///
    /// # Errors
    /// `not_supported` when the store keeps no inbox; a store failure.
    pub async fn inbox(&self, query: InboxQuery) -> Result<InboxPage, ServiceError> {
        let limit = query.limit;
        let probe = InboxQuery {
            limit: limit + 1,
            ..query
        };
        let mut results = self.deps.store.inbox(&probe).await?;
        let next = if results.len() > limit {
            results.truncate(limit);
            results.last().map(|e| InboxCursor::after(e).encode())
        } else {
            None
        };
        Ok(InboxPage { results, next })
    }

    /// One page of the messages whose text matches `query` across every live
    /// session (see [`crate::search`]), newest first.
    ///
    /// # Errors
    /// `not_supported` when the store cannot search; a store failure.
    pub async fn search_messages(
        &self,
        query: &str,
        page: Page,
    ) -> Result<SearchPage, ServiceError> {
        let probe = Page {
            limit: page.limit + 1,
            offset: page.offset,
        };
        let mut found = self.deps.store.search_messages(query, probe).await?;
        let next = if found.len() > page.limit {
            found.truncate(page.limit);
            Some((page.offset + page.limit).to_string())
        } else {
            None
        };
        Ok(SearchPage {
            results: found
                .into_iter()
                .map(|(message, session)| SearchHit {
                    message: MessageView::new(message, session.clone()),
                    session,
                })
                .collect(),
            next,
        })
    }
}

/// The start of the UTC day `days - 1` days before the one just before `to`: with
/// `to` exclusive, the range `[that, to)` holds `days` days, `to`'s own included.
fn last_days(to: DateTime<Utc>, days: i64) -> Option<DateTime<Utc>> {
    let last = to.checked_sub_signed(Duration::microseconds(1))?;
    Bucket::Day
        .start_of(last)
        .checked_sub_signed(Duration::days(days - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_range_is_seven_days_with_today() {
        let t = |s: &str| crate::parse_time(s).expect("time");
        assert_eq!(
            last_days(t("2024-05-07T15:30:00Z"), 7),
            Some(t("2024-05-01T00:00:00Z"))
        );
        assert_eq!(
            last_days(t("2024-05-08T00:00:00Z"), 7),
            Some(t("2024-05-01T00:00:00Z"))
        );
    }
}
