//! The console's inbox on Redis.
//!
//! - **kept as things happen**: the session hash keeps `last` (newest message's
//!   timestamp), `fq` (the id of its first visible visitor message), `down` (how many
//!   visible messages are rated down) and `iv` (the inbox version), written by the
//!   session scripts that change them (append, soft delete, feedback, patch). Each
//!   such script then writes the session's **inbox record** into the `{idx}` slot:
//!   `P{idx}:i` (every session, scored by last activity in µs), `P{idx}:i:s:<state>`,
//!   `P{idx}:i:d` (rated down), `P{idx}:i:u:<external_user_id>`, and the hash
//!   `P{idx}:i:r` (member → version, state, rating, visitor), members
//!   `"<uuid> <session_id>"`. A record older than the stored one is ignored, so
//!   writes that race apply in version order.
//! - **standalone Redis**: the record is applied inside the same script (atomic with
//!   the write, no extra round trip).
//! - **cluster**: `{idx}` is another slot, so the script hands the record back and
//!   the store applies it with one more request to the node serving `{idx}` before
//!   the call returns: **+1 request per append, `begin_turn`, patch, soft delete,
//!   feedback, create and delete**, and that node sees one small script per write
//!   of every session (the same node already holds the session list index). Should
//!   that request fail, the write stands and a warning is logged; the session's next
//!   write brings its record up to date, and readers check every entry against the
//!   session itself.
//! - **a page**: one script in `{idx}` walks the set of the most selective filter
//!   (visitor, state, rated down, or all) from the cursor, checks the other filters
//!   against the records and returns up to `limit` members, looking at most
//!   [`SCAN_PER_STEP`] entries; then the rows are read (standalone: one script for
//!   the page; cluster: one script per row, 64 at a time) and checked against the
//!   sessions themselves (expired or deleted sessions are dropped from the sets).
//!   A page whose filters skip more than [`MAX_STEPS_PER_PAGE`] × [`SCAN_PER_STEP`]
//!   entries ends short (a combination of filters none of the sets serves alone).
//! - expired sessions leave the sets when a reader meets them, or when the list
//!   index's purge drops their entry (16 per create).

use colloquy_core::inbox::{self, InboxEntry, InboxQuery, InboxState, LastMessage};
use futures::{StreamExt, TryStreamExt};
use redis::Value;
use uuid::Uuid;

use crate::codec;
use crate::error::Error;
use crate::sessions::CLUSTER_FANOUT;
use crate::RedisStore;

/// How many entries one page script looks at, at most.
pub(crate) const SCAN_PER_STEP: usize = 1000;

/// How many page scripts one page runs, at most.
pub(crate) const MAX_STEPS_PER_PAGE: usize = 10;

/// One row as `inbox_rows.lua` returns it.
enum Row {
    Live(Box<InboxEntry>),
    Dead,
}

fn parse_row(value: &Value) -> Result<Row, Error> {
    let Value::Array(parts) = value else {
        return Ok(Row::Dead);
    };
    let [fields, first, last, count] = parts.as_slice() else {
        return Err(Error::Reply("inbox row".into()));
    };
    let read = |v: &Value| -> Result<String, Error> {
        redis::from_redis_value_ref(v).map_err(|e| Error::Reply(format!("inbox row: {e}")))
    };
    let flat: Vec<String> =
        redis::from_redis_value_ref(fields).map_err(|e| Error::Reply(format!("inbox row: {e}")))?;
    let fields = codec::pairs_to_map(flat);
    let Some(session) = codec::session_from_fields(&fields)? else {
        return Ok(Row::Dead);
    };
    let message = |value: String| -> Result<Option<colloquy_core::ChatMessage>, Error> {
        if value.is_empty() {
            return Ok(None);
        }
        codec::message_from_value(Uuid::nil(), session.id, &value, false).map(|(_, m)| Some(m))
    };
    let first_question = message(read(first)?)?.map(|m| inbox::preview(&m.message));
    let last_message = message(read(last)?)?.map(|m| LastMessage {
        role: m.role,
        text: inbox::preview(&m.message),
        created_at: m.timestamp,
    });
    let newest = fields
        .get("last")
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(chrono::DateTime::from_timestamp_micros);
    let downs: i64 = fields.get("down").and_then(|d| d.parse().ok()).unwrap_or(0);
    let count: u64 = read(count)?.parse().unwrap_or(0);
    Ok(Row::Live(Box::new(InboxEntry {
        first_question,
        last_message,
        message_count: count,
        last_activity_at: inbox::last_activity(&session, newest),
        state: InboxState::of(&session),
        rated_down: downs > 0,
        session,
    })))
}

impl RedisStore {
    /// Cluster: applies an inbox record a session script handed back, and drops the
    /// members `dead`, in the `{idx}` slot. A failure is logged, not returned (see
    /// the module docs).
    pub(crate) async fn apply_inbox(&self, record: &[String], dead: &[String]) {
        let mut call = self.plain_call(&self.scripts.inbox_put, self.keys.index());
        for i in 0..7 {
            call.arg(record.get(i).map_or("", String::as_str));
        }
        for member in dead {
            call.arg(member);
        }
        if let Err(e) = call.invoke_async::<i64>(&mut self.conn.clone()).await {
            tracing::warn!(error = %e, "could not update the inbox index; the session's next write will");
        }
    }

    /// The rows of `members`, in order.
    async fn inbox_rows(&self, members: &[String]) -> Result<Vec<Row>, Error> {
        if !self.is_cluster() {
            let mut call = self.plain_call(&self.scripts.inbox_rows, self.keys.index());
            for m in members {
                call.arg(m);
            }
            let reply = self.send(&call).await?;
            let Value::Array(rows) = reply.raw(0)? else {
                return Err(Error::Reply("inbox rows".into()));
            };
            return rows.iter().map(parse_row).collect();
        }
        futures::stream::iter(members.to_vec())
            .map(|member: String| self.inbox_row(member))
            .buffered(CLUSTER_FANOUT)
            .try_collect()
            .await
    }

    /// Cluster: the row of one member, read in its session's slot.
    async fn inbox_row(&self, member: String) -> Result<Row, Error> {
        let sid = member.get(37..).unwrap_or_default();
        let mut call = self.plain_call(&self.scripts.inbox_rows, self.keys.holder(sid));
        call.arg(&member);
        {
            let reply = self.send(&call).await?;
            let Value::Array(rows) = reply.raw(0)? else {
                return Err(Error::Reply("inbox rows".into()));
            };
            rows.first().map_or(Ok(Row::Dead), parse_row)
        }
    }

    pub(crate) async fn inbox_page(&self, query: &InboxQuery) -> Result<Vec<InboxEntry>, Error> {
        let f = &query.filter;
        let walk = if let Some(ext) = &f.external_user_id {
            format!(":u:{ext}")
        } else if let Some(state) = f.state {
            format!(":s:{}", state.as_str())
        } else if f.rated_down {
            ":d".to_owned()
        } else {
            String::new()
        };
        let min = f
            .from
            .map_or_else(|| "-inf".to_owned(), |t| codec::micros(t).to_string());
        let max =
            f.to.map_or_else(|| "+inf".to_owned(), |t| codec::micros(t).to_string());
        // The member of a cursor: its UUID sorts just before every "<uuid> <sid>" of
        // that session, so "member >= cursor" skips exactly the cursor's session.
        let mut cursor = query.after.map(|c| {
            (
                codec::micros(c.last_activity_at).to_string(),
                c.id.to_string(),
            )
        });
        let mut out: Vec<InboxEntry> = Vec::new();
        let mut dead: Vec<String> = Vec::new();
        for _ in 0..MAX_STEPS_PER_PAGE {
            let want = query.limit.saturating_sub(out.len());
            if want == 0 {
                break;
            }
            let mut call = self.plain_call(&self.scripts.inbox_page, self.keys.index());
            let (cursor_score, cursor_member) = cursor.clone().unwrap_or_default();
            call.arg(&walk)
                .arg(f.state.map_or("", InboxState::as_str))
                .arg(codec::flag(f.rated_down))
                .arg(codec::flag(f.external_user_id.is_some()))
                .arg(f.external_user_id.as_deref().unwrap_or(""))
                .arg(&min)
                .arg(&max)
                .arg(cursor_score)
                .arg(cursor_member)
                .arg(want)
                .arg(SCAN_PER_STEP);
            let reply = self.send(&call).await?;
            let members = reply.strings(0)?;
            let exhausted = reply.string(2)? == "1";
            let last = (reply.string(3)?, reply.string(4)?);
            if !members.is_empty() {
                for (member, row) in members.iter().zip(self.inbox_rows(&members).await?) {
                    match row {
                        Row::Dead => dead.push(member.clone()),
                        Row::Live(entry) => {
                            let after_cursor = query.after.is_none_or(|c| {
                                c.precedes(entry.last_activity_at, entry.session.id)
                            });
                            if f.matches(&entry) && after_cursor {
                                out.push(*entry);
                            }
                        }
                    }
                }
            }
            if exhausted || last.0.is_empty() {
                break;
            }
            cursor = Some(last);
        }
        if !dead.is_empty() {
            self.apply_inbox(&[], &dead).await;
        }
        out.sort_by_key(|e| std::cmp::Reverse((e.last_activity_at, e.session.id)));
        out.truncate(query.limit);
        Ok(out)
    }
}
