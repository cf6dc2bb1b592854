//! # colloquy-redis
//!
//! A Redis store for Colloquy: [`RedisStore`] implements both
//! [`SessionStore`](colloquy_core::ports::SessionStore) and
//! [`MessageStore`](colloquy_core::ports::MessageStore), on a standalone Redis (through
//! a reconnecting `ConnectionManager`) or a Redis Cluster, so several server instances
//! can share one store.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use colloquy_core::ports::SessionStore;
//! use colloquy_core::SystemClock;
//! use colloquy_redis::{RedisConfig, RedisStore};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RedisConfig::with_prefix("chat:");
//! let store = RedisStore::connect("redis://127.0.0.1:6379/0", &config, Arc::new(SystemClock)).await?;
//! store.ping().await?;
//!
//! // Or a cluster, through any of its nodes:
//! let nodes = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"];
//! let cluster = RedisStore::connect_cluster(&nodes, &config, Arc::new(SystemClock)).await?;
//! cluster.ping().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Key schema
//!
//! `P` is the configured prefix (default `colloquy:`), `U` a session's UUID, `M` a
//! message's UUID. Times are integer microseconds since the Unix epoch.
//!
//! | key | type | holds | TTL |
//! |---|---|---|---|
//! | `P{U}:s` | hash | the session: `id`, `sid`, `ext` (absent when none), `created`, `exp`, `expms`, `active` (`1`/`0`), `meta` (JSON), `seq` (messages written), `last` (timestamp of the newest message), `ver` (updates applied) | `PEXPIREAT expires_at` |
//! | `P{U}:m` | hash | every message, soft-deleted ones too: `M` → `"<timestamp>\|<message JSON>"` | same |
//! | `P{U}:o` | zset | the non-deleted messages, `M` scored by write order (`seq`) | same |
//! | `Pmsg:{M}` | string | `U`: which session message `M` belongs to | same as its session |
//! | `P{idx}:sid` | hash | `session_id` → `U` | none (index) |
//! | `P{idx}:created` | zset | `U` scored by `created_at` | none (index) |
//! | `P{idx}:exp` | zset | `U` scored by `expires_at` | none (index) |
//! | `P{idx}:ext:<external_user_id>` | zset | `U` scored by `created_at`, one per user | none (index) |
//! | `P{idx}:sidof`, `P{idx}:extof`, `P{idx}:ver` | hash | `U` → its `session_id`, `external_user_id`, indexed version (to prune and refresh the index) | none (index) |
//!
//! Expiry is judged by the injected [`Clock`](colloquy_core::Clock): a session whose
//! `expires_at` is not after `clock.now()` is invisible to every method, whatever Redis
//! still holds. Independently, every key of a session carries `PEXPIREAT expires_at`
//! (rounded up to the millisecond), so Redis frees it by wall time; an update that
//! moves `expires_at` moves the session's three keys in the same script.
//!
//! # Atomicity and Redis Cluster
//!
//! All keys of one session share the hash tag `{U}`, so they live in one slot and each
//! operation on a session is one Lua script (`EVALSHA`, reloaded by redis-rs after a
//! `NOSCRIPT`): append checks that the session exists, is live and active and that
//! the id is new, raises the timestamp to the previous message's, assigns the next
//! write order, writes and sets the TTL, all at once. Soft delete, update and the delete
//! cascade are single scripts too, so no read-modify-write races.
//!
//! The global indexes (session_id → UUID, lists by `created_at` and by
//! `external_user_id`) cannot live in every session's slot. They share the hash tag
//! `{idx}` (one slot, so each index change is itself one atomic script) and are written
//! as a **second step** after the session's own script. The trade-off, and how it is
//! contained:
//!
//! - Between the two steps (or if the process dies between them) the index can lag the
//!   sessions. Readers never trust it alone: a lookup by session_id and every list entry
//!   are verified against the session hash, and entries whose session is gone are
//!   pruned as they are met. A create whose index step finds the session_id held by a
//!   session that turns out to be gone takes the session_id over.
//! - Index structures carry no TTL; instead every create and list prunes a bounded
//!   number of entries whose `expires_at` has passed (by the store's clock), oldest
//!   first, so they do not grow without bound.
//! - A create whose index step fails is undone, so a failed create leaves nothing;
//!   update and delete report success once the session's own script ran, since the
//!   index catches up (pruning) or is verified on read.
//! - The `{idx}` slot takes O(1) work per session create, update and delete, none per
//!   message, so the hot path (appends and reads) spreads over the cluster.
//!
//! Message pointers (`Pmsg:{M}`) live in the message's own slot. On standalone Redis the
//! append script claims the pointer itself (one round trip); on a cluster it is claimed
//! right after, and the append is undone when the id turns out to belong to another
//! session. An expiry change re-times the pointers after the session's script.
//!
//! # Round trips per operation
//!
//! Counted by [`RedisStore::requests_sent`] (and checked by this crate's tests):
//!
//! | operation | standalone | cluster |
//! |---|---|---|
//! | `append` | 1 | 2 |
//! | `SessionStore::get` by UUID | 1 | 1 |
//! | `SessionStore::get` by session_id | 2 | 2 |
//! | `create` | 2 | 2 |
//! | `update` (is_active / metadata) | 1 | 1 |
//! | `update` (expires_at / external_user_id) | 2, +1 pipeline for the pointers when the expiry moves | 2, + one request per message pointer when the expiry moves |
//! | `delete` | 2 (+1 when it had messages) | same, the last two concurrently |
//! | `MessageStore::get` / `get_stored` / `soft_delete` | 2 | 2 |
//! | `MessageStore::list` (unfiltered) / `recent` | 1 | 1 |
//! | `SessionStore::list` | 2 per batch of up to 500 entries | 1 + one per session, concurrently |
//! | `ping` | 1 | 1 (sent to every master) |
//!
//! # Errors
//!
//! Connection refused or dropped, timeouts and cluster-down replies map to
//! [`StoreError::Unavailable`](colloquy_core::StoreError::Unavailable) (the server
//! answers 503 `store_unavailable`); anything else Redis or the stored data gets wrong
//! maps to [`StoreError::Backend`](colloquy_core::StoreError::Backend). The
//! [`RedisConfig`] timeouts bound how long a dead Redis can hold a request.

mod codec;
mod config;
mod conn;
mod error;
mod keys;
mod message_store;
mod scripts;
mod session_store;
mod store;

pub use config::{ConnectError, RedisConfig};
pub use store::RedisStore;
