//! The Lua scripts, loaded once per store and called with `EVALSHA` (redis-rs loads
//! them again by itself after a `NOSCRIPT`, e.g. when a Redis restarted empty). Each is
//! the dashboard's constants (from the Rust ones), `lua/common.lua` (key schema,
//! session resolution, counting) and its own body.

use colloquy_core::stats::{StatCounts, MAX_QUESTIONS_PER_HOUR, QUESTION_KEY_CHARS};
use redis::Script;

use crate::console::STATS_TTL_SECS;

const COMMON: &str = include_str!("../lua/common.lua");

/// Every script the store runs.
pub(crate) struct Scripts {
    pub(crate) session_get: Script,
    pub(crate) session_create: Script,
    pub(crate) session_update: Script,
    pub(crate) session_delete: Script,
    pub(crate) message_append: Script,
    pub(crate) message_list: Script,
    pub(crate) message_by_id: Script,
    pub(crate) pointer_claim: Script,
    pub(crate) stored_under: Script,
    pub(crate) index_add: Script,
    pub(crate) index_drop: Script,
    pub(crate) index_list: Script,
    pub(crate) message_feedback: Script,
    pub(crate) session_erase: Script,
    pub(crate) stats_count: Script,
    pub(crate) stats_read: Script,
    pub(crate) inbox_page: Script,
    pub(crate) inbox_rows: Script,
    pub(crate) inbox_put: Script,
}

/// The dashboard's constants as Lua locals: the counter names, how long an hour's
/// counters live, the most questions an hour lists and how many bytes of a question
/// are kept (four per character `question_key` keeps, after runs of ASCII
/// whitespace were made one space).
fn stats_prelude() -> String {
    let names: Vec<String> = StatCounts::NAMES.iter().map(|n| format!("'{n}'")).collect();
    format!(
        "local STAT_NAMES = {{{}}}\nlocal STATS_TTL, STATS_QUESTIONS, STATS_QUESTION_BYTES = {STATS_TTL_SECS}, {MAX_QUESTIONS_PER_HOUR}, {}\n",
        names.join(", "),
        4 * QUESTION_KEY_CHARS
    )
}

fn script(body: &str) -> Script {
    Script::new(&format!("{}{COMMON}\n{body}", stats_prelude()))
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            session_get: script(include_str!("../lua/session_get.lua")),
            session_create: script(include_str!("../lua/session_create.lua")),
            session_update: script(include_str!("../lua/session_update.lua")),
            session_delete: script(include_str!("../lua/session_delete.lua")),
            message_append: script(include_str!("../lua/message_append.lua")),
            message_list: script(include_str!("../lua/message_list.lua")),
            message_by_id: script(include_str!("../lua/message_by_id.lua")),
            pointer_claim: script(include_str!("../lua/pointer_claim.lua")),
            stored_under: script(include_str!("../lua/stored_under.lua")),
            index_add: script(include_str!("../lua/index_add.lua")),
            index_drop: script(include_str!("../lua/index_drop.lua")),
            index_list: script(include_str!("../lua/index_list.lua")),
            message_feedback: script(include_str!("../lua/message_feedback.lua")),
            session_erase: script(include_str!("../lua/session_erase.lua")),
            stats_count: script(include_str!("../lua/stats_count.lua")),
            stats_read: script(include_str!("../lua/stats_read.lua")),
            inbox_page: script(include_str!("../lua/inbox_page.lua")),
            inbox_rows: script(include_str!("../lua/inbox_rows.lua")),
            inbox_put: script(include_str!("../lua/inbox_put.lua")),
        }
    }
}
