//! The Lua scripts, loaded once per store and called with `EVALSHA` (redis-rs loads
//! them again by itself after a `NOSCRIPT`, e.g. when a Redis restarted empty).

use redis::Script;

const INDEX_COMMON: &str = include_str!("../lua/index_common.lua");

/// Every script the store runs.
pub(crate) struct Scripts {
    pub(crate) session_create: Script,
    pub(crate) session_update: Script,
    pub(crate) session_delete: Script,
    pub(crate) message_append: Script,
    pub(crate) message_unappend: Script,
    pub(crate) pointer_claim: Script,
    pub(crate) message_get: Script,
    pub(crate) message_soft_delete: Script,
    pub(crate) message_range: Script,
    pub(crate) index_claim: Script,
    pub(crate) index_reindex: Script,
    pub(crate) index_drop: Script,
    pub(crate) index_list: Script,
    pub(crate) create_standalone: Script,
    pub(crate) delete_standalone: Script,
    pub(crate) session_resolve: Script,
    pub(crate) list_standalone: Script,
}

fn index_script(body: &str) -> Script {
    Script::new(&format!("{INDEX_COMMON}\n{body}"))
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            session_create: Script::new(include_str!("../lua/session_create.lua")),
            session_update: index_script(include_str!("../lua/session_update.lua")),
            session_delete: Script::new(include_str!("../lua/session_delete.lua")),
            message_append: Script::new(include_str!("../lua/message_append.lua")),
            message_unappend: Script::new(include_str!("../lua/message_unappend.lua")),
            pointer_claim: Script::new(include_str!("../lua/pointer_claim.lua")),
            message_get: Script::new(include_str!("../lua/message_get.lua")),
            message_soft_delete: Script::new(include_str!("../lua/message_soft_delete.lua")),
            message_range: Script::new(include_str!("../lua/message_range.lua")),
            index_claim: index_script(include_str!("../lua/index_claim.lua")),
            index_reindex: index_script(include_str!("../lua/index_reindex.lua")),
            index_drop: index_script(include_str!("../lua/index_drop.lua")),
            index_list: index_script(include_str!("../lua/index_list.lua")),
            create_standalone: index_script(include_str!("../lua/create_standalone.lua")),
            delete_standalone: index_script(include_str!("../lua/delete_standalone.lua")),
            session_resolve: Script::new(include_str!("../lua/session_resolve.lua")),
            list_standalone: index_script(include_str!("../lua/list_standalone.lua")),
        }
    }
}
