//! What the operator's console needs from the store: feedback on a message and
//! erasing a visitor.
//!
//! - **feedback**: the message is read as `message` reads it, its metadata changed
//!   in Rust (exact JSON, no Lua re-encoding), and written back by a script that
//!   replaces the value only if it is still the one read (compare and set, retried a
//!   few times when another write came between): two round trips.
//! - **erase_user**: Redis has no index by `external_user_id`, so erasing walks the
//!   whole session list index (every stored session, expired ones until their purge
//!   time), 500 entries per round trip (on a cluster plus one `HGETALL` per session,
//!   64 at a time), then erases each of the visitor's sessions with one script.
//!   O(stored sessions): a rare operator action, not a visitor's.
//! - **stats**: the counters of an hour are a hash `P{st}:<hour us>:c` (one field
//!   per counter, `HINCRBY`) and its ungrounded questions a sorted set
//!   `P{st}:<hour us>:q` (at most `MAX_QUESTIONS_PER_HOUR` members, `ZINCRBY`), all
//!   in the `{st}` slot, each living [`STATS_TTL_SECS`] after its last change. The
//!   store counts an event with one more script call right after the write it
//!   counts succeeded (on a cluster the counters are in another slot than the
//!   session, so one script cannot do both): a process dying between the two
//!   loses that one count, and a failed count is logged, never failing the write.
//!   Reading a range is one script per 744 hours (a month).

use chrono::{DateTime, Utc};
use colloquy_core::ports::Erased;
use colloquy_core::stats::{self, HourStats, StatCounts, MAX_QUESTIONS_PER_HOUR};
use colloquy_core::{ChatMessage, Entity, Feedback, MessageDraft, Session};
use redis::Value;
use uuid::Uuid;

use crate::codec;
use crate::error::Error;
use crate::sessions::LIST_BATCH;
use crate::RedisStore;

/// How many times feedback is tried when the message changed between read and write.
const FEEDBACK_ATTEMPTS: usize = 8;

/// How long an hour's counters live after their last change: 400 days.
pub(crate) const STATS_TTL_SECS: u64 = 400 * 24 * 3600;

/// One hour as `stats_read.lua` returns it: counter pairs, question pairs.
type HourRead = (Vec<String>, Vec<String>);

/// How many hours one read script covers.
const HOURS_PER_READ: usize = 744;

/// The message an ungrounded answer answers, when `draft` is one.
pub(crate) fn question_asked(draft: &MessageDraft) -> Option<Uuid> {
    stats::is_ungrounded(&draft.metadata)
        .then(|| stats::in_reply_to(&draft.metadata))
        .flatten()
        .filter(|_| draft.role == colloquy_core::Role::Assistant)
}

impl RedisStore {
    pub(crate) async fn feedback(
        &self,
        id: Uuid,
        feedback: &Feedback,
    ) -> Result<(ChatMessage, Session), Error> {
        for _ in 0..FEEDBACK_ATTEMPTS {
            let Some(reply) = self.by_id(id, "get").await? else {
                return Err(Error::NotFound(Entity::Message));
            };
            let session = reply.session(0)?;
            let stored = reply.string(1)?;
            let (_, mut message) = codec::message_from_value(id, session.id, &stored, false)?;
            let previous = feedback.apply_to(&mut message.metadata);
            // The value is "<seq>|<timestamp>|<body>": keep the place, replace the body.
            let place = stored
                .match_indices('|')
                .nth(1)
                .map(|(at, _)| &stored[..=at])
                .ok_or_else(|| Error::corrupt("message value"))?;
            let body = codec::message_body(message.role, &message.message, &message.metadata)?;
            let mut call = self.call(
                &self.scripts.message_feedback,
                self.keys.holder(&session.session_id),
                "",
                "",
                Some((&session.session_id, session.id)),
            );
            call.arg(id.to_string())
                .arg(&stored)
                .arg(format!("{place}{body}"));
            let reply = self.send(&call).await?;
            match reply.status() {
                "ok" => {
                    self.learn(&session);
                    for (hour, counts) in stats::feedback_changes(previous.as_ref(), feedback) {
                        self.count_logged(hour, &counts, None).await;
                    }
                    return Ok((message, session));
                }
                "changed" => {}
                "notfound" => return Err(Error::NotFound(Entity::Message)),
                _ => return Err(reply.unexpected()),
            }
        }
        Err(Error::Reply(
            "feedback: the message kept changing between read and write".into(),
        ))
    }

    pub(crate) async fn erase(&self, external_user_id: &str) -> Result<Erased, Error> {
        // First collect (a script erasing while the walk goes on would move the
        // walk's place in the index on standalone Redis).
        let mut theirs = Vec::new();
        let mut after = String::new();
        loop {
            let rows = self.list_batch(&after, LIST_BATCH).await?;
            for (entry, fields) in &rows {
                let named = fields.get("idx").is_some_and(|idx| idx == entry);
                if named && fields.get("ext").map(String::as_str) == Some(external_user_id) {
                    if let Some(session) = codec::session_from_fields(fields)? {
                        theirs.push(session);
                    }
                }
            }
            match rows.last() {
                Some((last, _)) if rows.len() == LIST_BATCH => after.clone_from(last),
                _ => break,
            }
        }
        let mut erased = Erased::default();
        for session in theirs {
            let mut call = self.call(
                &self.scripts.session_erase,
                self.keys.holder(&session.session_id),
                "",
                "",
                Some((&session.session_id, session.id)),
            );
            call.arg(external_user_id);
            let reply = self.send(&call).await?;
            match reply.status() {
                "ok" => {
                    let messages: u64 = reply
                        .string(0)?
                        .parse()
                        .map_err(|_| Error::Reply("erase: message count".into()))?;
                    erased.sessions += 1;
                    erased.messages += messages;
                }
                "gone" => {}
                _ => return Err(reply.unexpected()),
            }
        }
        Ok(erased)
    }
}

impl RedisStore {
    /// Adds `counts` (and `question`, a question key) to the hour `at` is in.
    pub(crate) async fn count(
        &self,
        at: DateTime<Utc>,
        counts: &StatCounts,
        question: Option<&str>,
    ) -> Result<(), Error> {
        let hour = codec::micros(stats::hour_of(at)).to_string();
        let route = format!("{}{{st}}:{hour}:c", self.keys.prefix());
        let mut call = self.plain_call(&self.scripts.stats_count, route);
        call.arg(&hour);
        for value in counts.values() {
            call.arg(value);
        }
        call.arg(question.unwrap_or(""))
            .arg(MAX_QUESTIONS_PER_HOUR)
            .arg(STATS_TTL_SECS);
        let reply = self.send(&call).await?;
        match reply.status() {
            "ok" => Ok(()),
            _ => Err(reply.unexpected()),
        }
    }

    /// [`RedisStore::count`] after a write that already succeeded: a failure is
    /// logged, not returned.
    async fn count_logged(&self, at: DateTime<Utc>, counts: &StatCounts, question: Option<&str>) {
        if let Err(e) = self.count(at, counts, question).await {
            tracing::warn!(error = %e, "could not update the dashboard's counters");
        }
    }

    /// Counts a session just created.
    pub(crate) async fn count_session(&self, session: &Session) {
        self.count_logged(session.created_at, &StatCounts::of_session(), None)
            .await;
    }

    /// Counts a message just appended; `asked` is the stored value of the question
    /// an ungrounded answer answers, when the append script found it.
    pub(crate) async fn count_message(&self, message: &ChatMessage, asked: Option<&str>) {
        let counts = StatCounts::of_message(message.role, &message.metadata);
        let question = asked
            .and_then(|value| {
                codec::message_from_value(Uuid::nil(), Uuid::nil(), value, false).ok()
            })
            .map(|(_, m)| stats::question_key(&m.message));
        self.count_logged(message.timestamp, &counts, question.as_deref())
            .await;
    }

    /// The counters of every hour from the one `from` is in up to `to`.
    pub(crate) async fn hours(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HourStats>, Error> {
        let mut all = Vec::new();
        let mut hour = stats::hour_of(from);
        while hour < to {
            all.push(hour);
            hour += chrono::Duration::hours(1);
        }
        let mut out = Vec::new();
        for chunk in all.chunks(HOURS_PER_READ) {
            let route = format!("{}{{st}}:hours", self.keys.prefix());
            let mut call = self.plain_call(&self.scripts.stats_read, route);
            for h in chunk {
                call.arg(codec::micros(*h));
            }
            let value: Value = call.invoke_async(&mut self.conn.clone()).await?;
            let (_, read): (String, Vec<HourRead>) =
                redis::from_redis_value(value).map_err(|e| Error::Reply(e.to_string()))?;
            for (h, (fields, questions)) in chunk.iter().zip(read) {
                if fields.is_empty() {
                    continue;
                }
                let mut counts = StatCounts::default();
                for (name, value) in codec::pairs_to_map(fields) {
                    let value = value
                        .parse()
                        .map_err(|_| Error::corrupt(format!("counter {name}")))?;
                    counts.set(&name, value);
                }
                let mut list = Vec::new();
                let mut it = questions.into_iter();
                while let (Some(text), Some(score)) = (it.next(), it.next()) {
                    let n: f64 = score
                        .parse()
                        .map_err(|_| Error::corrupt("question count"))?;
                    // Scores are whole counts, far below 2^53.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    list.push((text, n.max(0.0) as u64));
                }
                out.push(HourStats {
                    hour: *h,
                    counts,
                    questions: list,
                });
            }
        }
        Ok(out)
    }
}
