//! The console's inbox. Two counters of the session's row are kept by the
//! statements that change them (`live_messages`: append, `begin_turn`, soft delete;
//! `down_ratings`: the same and feedback); `last_activity_at` and `inbox_state` are
//! generated columns, indexed in the inbox's order. A page is one statement: it walks
//! one index from its cursor (by visitor, by state, the rated-down ones, or all) and
//! reads each row's first question and last message with one index lookup each.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use colloquy_core::inbox::{self, InboxEntry, InboxQuery, InboxState, LastMessage};
use colloquy_core::StoreError;
use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;

use crate::error::Corrupt;
use crate::rows::{self, SESSION_COLUMNS};
use crate::text;

/// Which index a page walks: the most selective filter given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    All,
    State,
    User,
    RatedDown,
}

impl Walk {
    const ALL: [Self; 4] = [Self::All, Self::State, Self::User, Self::RatedDown];

    fn of(query: &InboxQuery) -> Self {
        let f = &query.filter;
        if f.external_user_id.is_some() {
            Self::User
        } else if f.state.is_some() {
            Self::State
        } else if f.rated_down {
            Self::RatedDown
        } else {
            Self::All
        }
    }
}

/// The page statement of a walk, with or without a cursor. Parameters: `$1` now,
/// `$2` state (NULL: any), `$3` only rated down, `$4` external_user_id (NULL: any),
/// `$5` from, `$6` to (NULL: open), `$7` limit; with a cursor `$8` its last
/// activity and `$9` its session id.
fn statement(walk: Walk, cursor: bool) -> String {
    let driving = match walk {
        Walk::All => "",
        Walk::State => " AND s.inbox_state = $2::smallint",
        Walk::User => " AND s.external_user_id = $4::text",
        Walk::RatedDown => " AND s.down_ratings > 0",
    };
    let after = if cursor {
        " AND (s.last_activity_at, s.id) < ($8::timestamptz, $9::uuid)"
    } else {
        ""
    };
    format!(
        "SELECT {cols}, s.last_activity_at, s.live_messages, s.down_ratings,
            fq.message, lm.role, lm.message, lm.written_at
        FROM colloquy_sessions s
        LEFT JOIN LATERAL (
            SELECT left(m.message, 400) AS message FROM colloquy_messages m
            WHERE m.session = s.id AND NOT m.is_deleted AND m.role = 'user'
            ORDER BY m.seq LIMIT 1
        ) fq ON true
        LEFT JOIN LATERAL (
            SELECT m.role, left(m.message, 400) AS message, m.written_at
            FROM colloquy_messages m
            WHERE m.session = s.id AND NOT m.is_deleted
            ORDER BY m.seq DESC LIMIT 1
        ) lm ON true
        WHERE s.expires_at > $1::timestamptz{driving}{after}
            AND ($2::smallint IS NULL OR s.inbox_state = $2::smallint)
            AND (NOT $3::boolean OR s.down_ratings > 0)
            AND ($4::text IS NULL OR s.external_user_id = $4::text)
            AND ($5::timestamptz IS NULL OR s.last_activity_at >= $5::timestamptz)
            AND ($6::timestamptz IS NULL OR s.last_activity_at < $6::timestamptz)
        ORDER BY s.last_activity_at DESC, s.id DESC LIMIT $7::bigint",
        cols = "s.id, s.session_id, s.external_user_id, s.created_at, s.expires_at, \
                s.is_active, s.metadata, s.responder, s.handoff_requested_at",
    )
}

/// The eight page statements: for each walk, without then with a cursor.
pub(crate) static STATEMENTS: LazyLock<Vec<String>> = LazyLock::new(|| {
    Walk::ALL
        .iter()
        .flat_map(|&w| [statement(w, false), statement(w, true)])
        .collect()
});

fn statement_for(query: &InboxQuery) -> &'static str {
    let walk = Walk::ALL
        .iter()
        .position(|&w| w == Walk::of(query))
        .unwrap_or(0);
    &STATEMENTS[walk * 2 + usize::from(query.after.is_some())]
}

/// The number an `inbox_state` column holds.
fn state_number(state: InboxState) -> i16 {
    match state {
        InboxState::Waiting => 0,
        InboxState::Human => 1,
        InboxState::Active => 2,
        InboxState::Closed => 3,
    }
}

/// A stored text's start, decoded and cut for a preview (the start may end inside
/// an escape: that half is dropped).
fn preview(stored: &str) -> String {
    let mut stored = stored;
    loop {
        if let Some(decoded) = text::decode(stored) {
            return inbox::preview(&decoded);
        }
        let mut chars = stored.chars();
        chars.next_back();
        stored = chars.as_str();
    }
}

/// One page of the inbox.
pub(crate) async fn page(
    pool: &Pool,
    deadline: Option<Duration>,
    now: DateTime<Utc>,
    query: &InboxQuery,
) -> Result<Vec<InboxEntry>, StoreError> {
    let f = &query.filter;
    let state = f.state.map(state_number);
    let external = f.external_user_id.as_deref().map(text::encode);
    let limit = rows::sql_count(query.limit);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &now,
        &state,
        &f.rated_down,
        &external,
        &f.from,
        &f.to,
        &limit,
    ];
    let after_at = query.after.map(|c| c.last_activity_at);
    let after_id = query.after.map(|c| c.id);
    if query.after.is_some() {
        params.push(&after_at);
        params.push(&after_id);
    }
    let found = crate::store::query(pool, deadline, statement_for(query), &params).await?;
    let at = SESSION_COLUMNS;
    let get = |e: tokio_postgres::Error| StoreError::backend(e);
    found
        .iter()
        .map(|row| {
            let session = rows::session(row, 0)?;
            let last_activity_at: DateTime<Utc> = row.try_get(at).map_err(get)?;
            let count: i64 = row.try_get(at + 1).map_err(get)?;
            let downs: i64 = row.try_get(at + 2).map_err(get)?;
            let first: Option<&str> = row.try_get(at + 3).map_err(get)?;
            let role: Option<&str> = row.try_get(at + 4).map_err(get)?;
            let last_text: Option<&str> = row.try_get(at + 5).map_err(get)?;
            let last_at: Option<DateTime<Utc>> = row.try_get(at + 6).map_err(get)?;
            let last_message = match (role, last_text, last_at) {
                (Some(role), Some(text), Some(created_at)) => Some(LastMessage {
                    role: rows::role(role)?,
                    text: preview(text),
                    created_at,
                }),
                (None, None, None) => None,
                _ => return Err(StoreError::backend(Corrupt("inbox row"))),
            };
            Ok(InboxEntry {
                state: InboxState::of(&session),
                session,
                first_question: first.map(preview),
                last_message,
                message_count: u64::try_from(count).unwrap_or(0),
                last_activity_at,
                rated_down: downs > 0,
            })
        })
        .collect()
}
