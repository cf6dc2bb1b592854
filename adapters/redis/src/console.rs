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
//! - **stats**: each write counts itself **in its own script** (no extra round
//!   trip, atomic with the write: a failed or refused write counts nothing). An
//!   hour's counters are a hash `P{T}:st:<hour us>:c` (one field per counter,
//!   `HINCRBY`) and its ungrounded questions a sorted set `P{T}:st:<hour us>:q` (at
//!   most `MAX_QUESTIONS_PER_HOUR` texts, `ZINCRBY`), each living
//!   [`STATS_TTL_SECS`] after its last change. `T` is `st` on standalone Redis; on a
//!   cluster it is `slot_tag(s)` of the slot `s` the counting script runs in (the
//!   session's slot for creates, appends and feedback; `{st}`'s slot for
//!   `add_stats`), so counting spreads over the cluster as the sessions do and adds
//!   no cross-slot write. A question is kept as its text (whitespace runs made one
//!   space, at most 800 bytes) and normalised with `question_key` when read.
//! - **reading stats** (`hourly_stats`): standalone Redis, one script per 744 hours
//!   (a month). A cluster holds an hour's counters in up to 16,384 slots, so a read
//!   is one script per slot per 744 hours: 16,384 requests, 64 at a time, whatever
//!   the traffic was (a fixed cost for the operator's dashboard, never on a
//!   visitor's path); the slots' counters are summed and their question lists merged
//!   (counts summed per `question_key`, the `MAX_QUESTIONS_PER_HOUR` most asked kept).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use colloquy_core::ports::Erased;
use colloquy_core::stats::{self, HourStats, StatCounts, MAX_QUESTIONS_PER_HOUR};
use colloquy_core::{ChatMessage, Entity, Feedback, MessageDraft, Session};
use futures::{StreamExt, TryStreamExt};
use redis::Value;
use uuid::Uuid;

use crate::codec;
use crate::error::Error;
use crate::sessions::LIST_BATCH;
use crate::slots;
use crate::RedisStore;

/// How many times feedback is tried when the message changed between read and write.
const FEEDBACK_ATTEMPTS: usize = 8;

/// How long an hour's counters live after their last change: 400 days.
pub(crate) const STATS_TTL_SECS: u64 = 400 * 24 * 3600;

/// One hour of one slot as `stats_read.lua` returns it: counter pairs, question
/// pairs (text, score; as bytes: a kept text may end inside a character).
type HourRead = (Vec<String>, Vec<Vec<u8>>);

/// How many slots a cluster's stats read reads at once.
const READ_FANOUT: usize = 64;

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
            let was_down = colloquy_core::inbox::is_rated_down(&message.metadata);
            let previous = feedback.apply_to(&mut message.metadata);
            let rated = i64::from(colloquy_core::inbox::is_rated_down(&message.metadata))
                - i64::from(was_down);
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
                .arg(format!("{place}{body}"))
                .arg(rated);
            for (hour, counts) in stats::feedback_changes(previous.as_ref(), feedback) {
                call.arg(codec::micros(stats::hour_of(hour)))
                    .arg(deltas(&counts));
            }
            let reply = self.send(&call).await?;
            match reply.status() {
                "ok" => {
                    self.learn(&session);
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

/// `counts` as the counting scripts take them: comma-separated, in
/// `StatCounts::NAMES` order.
pub(crate) fn deltas(counts: &StatCounts) -> String {
    counts
        .values()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Sums one slot's counters of an hour into `counts` and its questions into `asked`.
fn add_hour(
    counts: &mut StatCounts,
    asked: &mut HashMap<String, u64>,
    (fields, questions): HourRead,
) -> Result<(), Error> {
    for (name, value) in codec::pairs_to_map(fields) {
        let value: i64 = value
            .parse()
            .map_err(|_| Error::corrupt(format!("counter {name}")))?;
        if let Some(i) = StatCounts::NAMES.iter().position(|n| *n == name) {
            let mut values = counts.values();
            values[i] = values[i].saturating_add(value);
            *counts = StatCounts::from_values(values);
        }
    }
    let mut it = questions.into_iter();
    while let (Some(text), Some(score)) = (it.next(), it.next()) {
        let n: f64 = String::from_utf8_lossy(&score)
            .parse()
            .map_err(|_| Error::corrupt("question count"))?;
        // Scores are whole counts, far below 2^53.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = n.max(0.0) as u64;
        let key = stats::question_key(&String::from_utf8_lossy(&text));
        *asked.entry(key).or_default() += n;
    }
    Ok(())
}

impl RedisStore {
    /// Adds `counts` to the hour `at` is in (`add_stats`): one script in `{st}`'s slot.
    pub(crate) async fn count(&self, at: DateTime<Utc>, counts: &StatCounts) -> Result<(), Error> {
        let hour = codec::micros(stats::hour_of(at)).to_string();
        let route = format!("{}{{st}}:st:{hour}:c", self.keys.prefix());
        let mut call = self.plain_call(&self.scripts.stats_count, route);
        call.arg(&hour).arg(deltas(counts));
        let reply = self.send(&call).await?;
        match reply.status() {
            "ok" => Ok(()),
            _ => Err(reply.unexpected()),
        }
    }

    /// What one slot holds for `hours` (the slot of `route`).
    async fn read_slot(
        &self,
        route: String,
        hours: &[DateTime<Utc>],
    ) -> Result<Vec<HourRead>, Error> {
        let mut call = self.plain_call(&self.scripts.stats_read, route);
        for h in hours {
            call.arg(codec::micros(*h));
        }
        let value: Value = call.invoke_async(&mut self.conn.clone()).await?;
        let (_, read): (String, Vec<HourRead>) =
            redis::from_redis_value(value).map_err(|e| Error::Reply(e.to_string()))?;
        if read.len() != hours.len() {
            return Err(Error::Reply("stats read: one reply per hour".into()));
        }
        Ok(read)
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
        let prefix = self.keys.prefix();
        let routes: Vec<String> = if self.is_cluster() {
            (0..slots::SLOTS)
                .map(|s| format!("{prefix}{{{}}}:st:r", slots::slot_tag(s)))
                .collect()
        } else {
            vec![format!("{prefix}{{st}}:st:r")]
        };
        let mut out = Vec::new();
        for chunk in all.chunks(HOURS_PER_READ) {
            let mut sums: Vec<(StatCounts, HashMap<String, u64>, bool)> =
                vec![Default::default(); chunk.len()];
            let mut reads = futures::stream::iter(routes.iter().cloned())
                .map(|route| self.read_slot(route, chunk))
                .buffer_unordered(READ_FANOUT);
            while let Some(read) = reads.try_next().await? {
                for (sum, slot_hour) in sums.iter_mut().zip(read) {
                    if slot_hour.0.is_empty() {
                        continue;
                    }
                    sum.2 = true;
                    add_hour(&mut sum.0, &mut sum.1, slot_hour)?;
                }
            }
            for (h, (counts, asked, seen)) in chunk.iter().zip(sums) {
                if !seen {
                    continue;
                }
                let mut questions: Vec<(String, u64)> = asked.into_iter().collect();
                questions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                questions.truncate(MAX_QUESTIONS_PER_HOUR);
                out.push(HourStats {
                    hour: *h,
                    counts,
                    questions,
                });
            }
        }
        Ok(out)
    }
}
