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
//! moves `expires_at` moves the session's three keys in the same script (and its
//! message pointers too on standalone Redis; right after it on a cluster).
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
//! `{idx}`, so each index change is itself atomic.
//!
//! **On standalone Redis** every operation is one script covering the session, its
//! message pointers and the index together (one round trip, fully atomic). These
//! scripts build some key names inside Lua (the session keys named by an index entry or
//! a pointer), which Redis allows outside cluster mode only.
//!
//! **On Redis Cluster** a script may only touch one slot, so the index is written as a
//! **second step** after the session's own script (and message pointers, each in its
//! own slot, likewise). The trade-off, and how it is contained:
//!
//! - Between the two steps (or if the process dies between them) the index can lag the
//!   sessions. Readers never trust it alone: a lookup by session_id and every list entry
//!   are verified against the session hash, and entries whose session is gone are
//!   pruned as they are met. A create whose index step finds the session_id held by a
//!   session that turns out to be gone takes the session_id over. Index refreshes carry
//!   the session's update counter, so a late or replayed refresh never undoes a newer
//!   one.
//! - A create whose index step fails is undone, so a failed create leaves nothing;
//!   update and delete report success once the session's own script ran, since the
//!   index catches up (pruning) or is verified on read.
//! - An append claims the message's pointer right after its script, and is undone when
//!   the id turns out to belong to another session.
//! - The `{idx}` slot takes O(1) work per session create, update and delete, none per
//!   message, so the hot path (appends and reads) spreads over the cluster.
//!
//! In both modes index structures carry no TTL; instead every create and list prunes a
//! bounded number of entries whose `expires_at` has passed (by the store's clock),
//! oldest first, so they do not grow without bound.
//!
//! # Round trips per operation
//!
//! Counted by [`RedisStore::requests_sent`] and checked by this crate's tests (on
//! standalone Redis also against `MONITOR`):
//!
//! | operation | standalone | cluster |
//! |---|---|---|
//! | `SessionStore::create` | 1 | 2 |
//! | `SessionStore::get` by UUID | 1 | 1 |
//! | `SessionStore::get` by session_id | 1 | 2 |
//! | `SessionStore::update` | 1 | 1; 2 when `expires_at` or `external_user_id` changes, + one request per message pointer when `expires_at` moves (64 at a time) |
//! | `SessionStore::delete` | 1 | 2, + one when the session had messages (concurrently) |
//! | `SessionStore::list` | 1 per batch of up to 500 index entries | 1 + one per session (64 at a time), per batch |
//! | `SessionStore::ping` | 1 | 1 (sent to every master) |
//! | `MessageStore::append` | 1 | 2 |
//! | `MessageStore::get` / `get_stored` / `soft_delete` | 1 | 2 |
//! | `MessageStore::list` (unfiltered) / `recent` | 1 | 1 |
//! | `MessageStore::list` (filtered) | 1 per 500 messages scanned | same |
//!
//! The first call of each script on a fresh Redis costs two more (`NOSCRIPT`, then
//! `SCRIPT LOAD`), once.
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
mod idempotency;
mod limiter;
mod message_store;
mod scripts;
mod session_store;
mod store;
mod streams;

pub use config::{ConnectError, RedisConfig};
pub use idempotency::RedisIdempotency;
pub use limiter::RedisRateLimiter;
pub use store::RedisStore;
pub use streams::RedisStreamLog;
