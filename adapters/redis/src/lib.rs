//! # colloquy-redis
//!
//! A Redis store for Colloquy: [`RedisStore`] implements
//! [`ChatStore`](colloquy_core::ports::ChatStore) on a standalone Redis (through a
//! reconnecting `ConnectionManager`) or a Redis Cluster, so several server instances
//! can share one store. Redis 7.0 or later.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use colloquy_core::ports::ChatStore;
//! use colloquy_core::{Retention, SystemClock};
//! use colloquy_redis::{RedisConfig, RedisStore};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RedisConfig::with_prefix("chat:").with_retention(Retention::default());
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
//! Every operation is one Lua script (`EVALSHA`, reloaded by redis-rs after a
//! `NOSCRIPT`), so it is atomic and costs **one round trip on standalone Redis**. On a
//! cluster, an operation on a session referenced by its `session_id` (the common path:
//! the widget and the seed clients) touches only that session's hash slot; see
//! [Redis Cluster](#redis-cluster).
//!
//! # Key schema
//!
//! `P` is the configured prefix (default `colloquy:`, no braces), `S` a session's
//! `session_id`, `U` its UUID, `M` a message's UUID. Times are integer microseconds
//! since the Unix epoch; purge times milliseconds.
//!
//! | key | type | holds | slot |
//! |---|---|---|---|
//! | `P{S}:h` | string | `U` of the newest session created with `S` (the *holder*) | `S` |
//! | `P{S}:U:s` | hash | the session: `id`, `sid`, `ext` (absent when none), `created`, `exp`, `active` (`1`/`0`), `meta` (JSON), `resp` (`human`; absent: `ai`), `handoff` (handoff_requested_at, us; absent when none); bookkeeping: `seq` (messages written), `last` (newest message's timestamp), `purge` (when its keys expire, or `never`), `cover` (until when all its pointers live at least), `idx` (its list entry), `prev` (the previous holder of `S`, when still stored) | `S` |
//! | `P{S}:U:m` | hash | every message, soft-deleted ones too: `M` → `"<seq>\|<timestamp>\|<JSON role, text, metadata>"` | `S` |
//! | `P{S}:U:v` | zset | the non-deleted messages, `M` scored by `seq` (write order) | `S` |
//! | `P{S}:U:y` | zset | the non-deleted **system** messages, `M` scored by `seq` | `S` |
//! | `P{U}:u` | string | `S`: where session `U` is stored | `U` |
//! | `P{T}:M:p` (cluster) | string | `S`: the session_id message `M` was appended under; `T` = `slot_tag(message_slot(M))` (below) | `M`'s low 14 bits: `S`'s slot for ids the store generated |
//! | `P{M}:p` (standalone; a cluster's before the upgrade) | string | the same | `M` |
//! | `P{idx}:c` | zset | the list index: `"<created 17 digits> U S"`, all scored 0 (text order = `(created_at, id)`) | `idx` |
//! | `P{idx}:p` | zset | the same entries scored by purge time (none for `Retention::Forever`) | `idx` |
//! | `P{idx}:i`, `P{idx}:i:s:<state>`, `P{idx}:i:d`, `P{idx}:i:u:<external_user_id>` | zset | the console's inbox: `"U S"` scored by last activity (µs): every session, by state, rated down, by visitor | `idx` |
//! | `P{idx}:i:r` | hash | `"U S"` → `"<version>\|<state>\|<rated down>\|<has visitor>\|<visitor>"`: which sets hold the session | `idx` |
//! | `P{T}:st:<hour us>:c` | hash | the dashboard's counters of one hour (`sessions`, `visitor_messages`, ...) counted by scripts in this slot, living 400 days after their last change; `T` = `st` on standalone Redis, on a cluster `slot_tag` of the counting script's slot (the session's) | `T` |
//! | `P{T}:st:<hour us>:q` | zset | that hour's ungrounded questions counted in this slot (text → count, at most 100) | `T` |
//!
//! **Message pointers on a cluster.** `GET /messages/{id}` needs message id → session,
//! from the id alone, and an append should touch one slot. So the low 14 bits of a
//! message id name a slot (`message_slot`), and the pointer's key is tagged with that
//! slot's *tag* `slot_tag(s)`: the first string of 1-4 characters of `0-9 A-Z a-z`
//! (by length, then alphabet) whose CRC16 lands in slot `s`, from a table of 16,384
//! built once per process (a few ms; a pure function, so part of the schema). The ids
//! the server generates come from
//! [`ChatStore::new_message_id`](colloquy_core::ports::ChatStore::new_message_id),
//! which this store overrides on a cluster: for a session named by its `session_id`,
//! a version 7 UUID whose low 14 (random) bits are the slot of `{S}`
//! (`id_in_slot(key_slot(P{S}:h))`); the timestamp, the counter that orders ids
//! within a millisecond and 18 random bits stay. A UUID reference keeps the default
//! `Uuid::now_v7()` (its session_id is not known before the lookup); the service
//! asks with the session_id for the user's message of a chat by session_id and for
//! every answer. (The functions are in `src/slots.rs`; `key_slot` is Redis's rule,
//! tested equal to redis-rs's `Slot::for_key`, which does not expose the number.) On
//! standalone Redis slots do not matter: pointers keep the name `P{M}:p` and ids the
//! default.
//!
//! `session_id` characters (`A-Z a-z 0-9 . _ : -`) are safe inside a hash tag. Keys
//! are named per UUID, so a session that expired but is still stored (retention) and
//! a new session that took its `session_id` never share a key; the holder key names
//! the new one, whose `prev` names the old one.
//!
//! # Expiry and retention
//!
//! Expiry is judged by the injected [`Clock`](colloquy_core::Clock): every script
//! gets the store clock's `now` and treats a session whose `expires_at` is not after it
//! as absent, whatever Redis still holds. Physically, every key of a session gets
//! `PEXPIREAT` [`Retention::purge_at`](colloquy_core::Retention::purge_at)`(expires_at)`
//! (rounded up to the millisecond), or no expiry (`PERSIST`) for
//! `Retention::Forever`; [`RedisConfig::retention`] sets the retention (default 0:
//! the keys go at expiry). An update that moves `expires_at` moves the session's keys
//! in the same script. So [`ChatStore::purge_expired`](colloquy_core::ports::ChatStore::purge_expired)
//! has nothing to do and returns `Ok(0)`: Redis removes the data by itself.
//!
//! Pointers (`P{U}:u`, message pointers) and the holder key never expire *before* the
//! session they lead to, but may expire later (their expiry only moves later): every
//! reader checks a pointer against the session's own keys, so a pointer that outlives
//! its session, or that an interrupted write left behind, leads nowhere.
//!
//! # Operations
//!
//! A reference that is not a hyphenated UUID (a `session_id`; generated ones never
//! are) is resolved by reading `P{S}:h`. A UUID reference is tried as a UUID first
//! (its pointer `P{U}:u`, then that session's keys) and then as a `session_id`, all in
//! the same script on standalone Redis.
//!
//! - **append / begin_turn**: checks the session is live and active and the id is new
//!   (in any stored session under `S`, the holder and its `prev` chain, and on
//!   standalone Redis wherever the message pointer leads), raises the timestamp to
//!   the previous message's, assigns the next `seq`, writes the value, adds it to
//!   `v` (and `y` for system messages). `begin_turn` then reads the oldest `window` of
//!   `y` and the newest `window` of `v` in the same script: O(window · log n),
//!   whatever the session's length.
//! - **list_messages**: a cursor message's `seq` comes from `m` (soft-deleted ones
//!   too); the page is a `ZRANGEBYSCORE`/`ZREVRANGEBYSCORE` with `LIMIT offset limit`
//!   on `v`, or on `y` for a `role=system` filter: O(log n + offset + page) in both
//!   orders. Other filters (a search, role user or assistant) are applied by the
//!   adapter, exactly as [`MessageFilter::matches`](colloquy_core::MessageFilter::matches)
//!   says, over batches of 500 messages read in the requested order: one round trip
//!   per 500 messages scanned.
//! - **message / delete_message**: the message pointer names `S`; the message must be
//!   in the live holder of `S` (a pointer to anything else is "not found"). On a
//!   cluster a missing pointer is looked for under its old name `P{M}:p` too.
//! - **set_feedback / erase_user / stats**: see `src/console.rs`: feedback is a
//!   read and a compare-and-set write; erasing a visitor walks the whole list index
//!   (O(stored sessions)); the dashboard's counters are updated by the very script
//!   that writes the event, in its slot (no extra round trip); reading them is one
//!   script per 744 hours, on a cluster one per slot (16,384, 64 at a time).
//!   `search_messages` answers `NotSupported`: Redis has
//!   no text index, and a scan could not be bounded by the matches.
//! - **delete_session**: deletes the session's four keys and hands `P{S}:h` back to
//!   the previous holder (if still stored). On standalone Redis the same script also
//!   deletes its pointers and list entry; on a cluster they are left to expire.
//! - **list_sessions**: reads the list index newest first, in batches of
//!   `offset + limit + 8` entries (16 to 500), and each entry's session hash. An entry
//!   counts only when the session's `idx` field is that very entry (a create that
//!   conflicted on a cluster leaves its entry behind, possibly naming a stored session
//!   of the same UUID and session_id at another `created_at`); entries naming no
//!   session are dropped as they are met, on a cluster only once their `created_at`
//!   is two minutes old (a create in flight writes its entry before its session), and
//!   every create drops up to 16 entries past their purge time.
//!
//! The list index is the one global structure, because listing all sessions by
//! `created_at` needs one ordered set. It lives in the `{idx}` slot and is written
//! only by creates (and by updates that move `expires_at` beyond what the session's
//! pointers cover, on a cluster, to keep its purge score late enough). Appends,
//! reads and the rest of the per-session path never touch it.
//!
//! # Redis Cluster
//!
//! A script may only touch keys of one slot, so writes that span slots are
//! **ordered, with the session's own script last**: that script is the commit, and
//! everything before it is a pointer or index entry that readers check against the
//! session's keys. An interrupted sequence (a node down between steps, a crash) leaves
//! nothing a reader can see, and an operation that reports an error has not stored
//! anything visible (a retry of the same call succeeds). There are no undo steps.
//!
//! - **create**: the UUID pointer `P{U}:u` and the list entry (concurrently), then the
//!   session in `S`'s slot. A UUID pointer already naming another `session_id` is
//!   checked there: a stored session with that UUID is a conflict, a leftover pointer
//!   is taken over.
//! - **append / begin_turn** with an id in `S`'s slot (generated by the store for a
//!   reference by session_id, or for a UUID whose session_id this store has seen): one
//!   script writes the pointer and the message, as on standalone Redis. Should that
//!   pointer already name another session_id (an id reused across sessions), the
//!   script writes nothing and the append takes the path below.
//! - **append / begin_turn** with any other id (chosen by a client): the message
//!   pointer first, then the append in `S`'s slot. The pointer is first given the
//!   purge time of a session expiring [`RedisConfig::pointer_ttl`] from now; when the
//!   session lives longer, the append script refuses to commit and names its purge
//!   time, and the pointer is extended before the append is sent again. (A pointer
//!   written by the append script gets the later of that and the session's purge
//!   time, so `cover` works alike for both.)
//! - **update moving `expires_at`** beyond the session's `cover`: the script refuses
//!   and names the session's pointers; they and the list entry are extended
//!   (`PEXPIREAT … GT`, never earlier), then the update commits. Within `cover` (at
//!   first `pointer_ttl`, a day by default, past the session's creation) it is one
//!   step.
//! - **by UUID**: `P{U}:u` names `S`; the script then runs in `S`'s slot. The store
//!   remembers UUID → `session_id` pairs it has seen (they never change; a stale
//!   one is noticed by the script and forgotten), so e.g. the chat's second append,
//!   which names the session by UUID, goes straight to `S`'s slot.
//!
//! What losing one master of three breaks: every operation by `session_id` on the
//! sessions whose slot it serves (a third), appends with server-generated ids
//! included (their pointers live in the session's slot); appends with a client's id
//! also when that id's slot is on it (about 5/9 of those); `message(id)` of the
//! sessions it serves; and every create if it serves the list index's slot (about 5/9
//! of creates otherwise).
//!
//! With a replica per master the outage ends when the replica takes over: measured
//! by the server's `failover` test (3 masters + 3 replicas on one machine,
//! `cluster-node-timeout` 1 s, `kill -9` of the master serving 6 of the 12 writers'
//! sessions, messages posted by session_id; 5 runs at load average 8-10 on 2 cores):
//! the replica took over 2.1-2.5 s after the kill; meanwhile 82-91 % of the requests
//! to the dead master's sessions failed (all of them once the failure was noticed)
//! and 11-22 % of the other sessions' requests, only in the 0.7-1.0 s in which the
//! survivors reported `cluster_state:fail` (Redis then refuses every slot, with its
//! default `cluster-require-full-coverage yes`); 31-43 % of all requests. With
//! `cluster-require-full-coverage no` none of the other sessions' requests failed (0
//! of 778). No acknowledged write was lost or stored twice; 2 log lines in the
//! outage (0.8/s). A 503 means "not acknowledged": a write the master ran in the
//! instant before it died, whose reply died with it, is stored yet answered 503 (seen
//! once, for a request in flight at the kill); every other failure stored nothing. A
//! client that must know retries with an `Idempotency-Key`.
//! Redis replication is asynchronous, so a write acknowledged by a master in the
//! instant before it dies may still be missing on the replica that replaces it; the
//! store does not send `WAIT`.
//!
//! # The console's inbox
//!
//! The session hash also keeps `fq` (the first visible visitor message's id), `down`
//! (visible messages rated down) and `iv` (the inbox version). Every script that
//! changes what an inbox row shows writes the session's inbox record into the
//! `{idx}` sets above, versioned (an older record never overwrites a newer one). On
//! standalone Redis that happens in the same script; on a cluster `{idx}` is one
//! slot, so it is **one more request per write, to the one node serving `{idx}`**
//! (the node that already holds the session list index): that node sees one small
//! script per write of every session, which bounds the write rate of a whole cluster
//! by that node's (about 50,000 such scripts per second per core). If that request
//! fails the write still stands (a warning is logged) and the session's next write
//! repairs its record; readers check every entry against the session. A page looks
//! at no more than 10,000 index entries (1,000 per request); only a combination of
//! filters none of the sets serves alone can skip that many, and the page then ends
//! short. Sessions stored before this version enter the inbox at their next write.
//!
//! # Round trips per operation
//!
//! Requests sent ([`RedisStore::requests_sent`]), as pinned by this crate's
//! `round_trips` test (on standalone Redis also checked against `MONITOR`):
//!
//! | operation | standalone | cluster |
//! |---|---|---|
//! | `create_session` | 1 | 3 (2 round trips: the UUID pointer and the list entry concurrently, then the session) |
//! | `session`, `update_session`, `delete_session`, `list_messages` by session_id | 1 | 1 |
//! | the same by UUID | 1 | 1 for a session this store has seen, else 2 |
//! | `append`, `begin_turn` by session_id, id from `new_message_id` | 1 | 1 |
//! | `append`, `begin_turn` by UUID, id from `new_message_id` by session_id (the chat's answer) | 1 | 1 for a session this store has seen, else 2 |
//! | `append`, `begin_turn`, a client's id (or by UUID, id from `new_message_id` by UUID) | 1 | 2 (pointer, append) by session_id or by UUID of a session this store has seen, else 3 |
//! | `message`, `delete_message` | 1 | 2 (pointer, session); a missing message 2 (the pointer under both names) |
//! | `list_messages` with a search, or role user/assistant | 1 per 500 messages scanned | same |
//! | `update_session` moving `expires_at` beyond `cover` | 1 | 2 + one request per pointer (concurrently: the UUID pointer, each message pointer, the list entry); + one per message whose pointer was not extended under its new name (concurrently: under its old name) |
//! | `list_sessions` | 1 per index batch (usually 1) | 1 + one request per entry read (concurrently), per batch; +1 to drop entries found gone |
//! | `ping` (readiness) | 1 | 1 + one per master (`CLUSTER SLOTS` from any node, then `CLUSTER INFO` on every master, concurrently) |
//! | `purge_expired` | 0 | 0 |
//! | `set_feedback` | 2 (the message as `message` reads it, then a compare-and-set that also counts) | 3 (the same: `message` is 2) |
//! | `add_stats` | 1 | 1 |
//! | `hourly_stats` | 1 per 744 hours | 16,384 per 744 hours (one per slot, 64 at a time) |
//! | `inbox` (a page) | 2 (the page in `{idx}`, then its rows); +1 per 1,000 entries a combination of filters skips | 1 + one per row (concurrently), same |
//!
//! On a cluster every write that changes what the console's inbox shows (create,
//! append, `begin_turn`, `update_session`, `delete_message`, `set_feedback`,
//! `delete_session`, each session `erase_user` erases) sends **one more request**
//! than the table says: the session's inbox record, applied in the `{idx}` slot (see
//! the inbox section below). On standalone Redis the same script applies it.
//!
//! Rarer extra steps on a cluster: +2 when an append's pointer must be extended first
//! (a session living longer than `pointer_ttl`); +1 when a UUID reference written in
//! upper case is resolved (the pointer and the text hash to different slots); +1 when
//! a UUID's session is not live and a live session has that UUID's text as its
//! `session_id`; +2 when a create or append meets a pointer left by an interrupted
//! write under another `session_id` (checked, then taken over; +4 for an append that
//! would be one script: its refusal, then the claim, the check, the take-over). The
//! first call of
//! each script on a fresh Redis costs two more (`NOSCRIPT`, then `SCRIPT LOAD`), once.
//!
//! # Upgrading to slot-tagged message pointers (cluster)
//!
//! Before, a cluster named every message pointer `P{M}:p`. Now new pointers are
//! `P{T}:M:p` (above); nothing is rewritten. `message`/`delete_message` look for a
//! missing pointer under the old name too (one more round trip, only on a miss), and
//! an update moving a session's expiry extends the old name of each pointer it finds
//! missing under the new one. Two gaps until the sessions of before the upgrade have
//! expired: an append with a client's id that a message of before the upgrade has in
//! **another** session is not refused as a conflict (its pointer is overwritten under
//! the new name only), and a mixed-version fleet (old and new instances on one
//! cluster) does not see the new instances' pointers from the old ones. Upgrade all
//! instances together; the fallback (`Keys::old_message_pointer` and its two callers)
//! can be removed once every session created before the upgrade has passed its purge
//! time (its `expires_at` plus the retention). Standalone Redis is unchanged.
//!
//! # Upgrading from the previous key layout
//!
//! The key layout changed (keys were hash-tagged with the session's UUID, with global
//! session_id and list indexes). **Data written by the old layout is not read by this
//! one**: sessions and messages stored before the upgrade are invisible afterwards,
//! and their old keys expire by their own TTLs (the old global index keys, which had
//! none, can be deleted: `P{idx}:sid`, `P{idx}:created`, `P{idx}:exp`, `P{idx}:sidof`,
//! `P{idx}:extof`, `P{idx}:ver`, `P{idx}:ext:*`). Operators upgrading must drain
//! first or accept losing the sessions in flight; sessions are short-lived (24 h by
//! default), so a quiet moment or a new key prefix is usually enough.
//!
//! # Readiness
//!
//! [`ChatStore::ping`](colloquy_core::ports::ChatStore::ping) (what the server's
//! `/readyz` asks) is a `PING` on standalone Redis. On a cluster a `PING` proves
//! little: redis-rs sends it only to the masters it has a connection to, and the
//! surviving nodes of a failed cluster (`cluster_state:fail`) still answer it. So the
//! store asks any node for `CLUSTER SLOTS` (every slot must have a master), then
//! `CLUSTER INFO` on every master, over its own connections: each must answer and
//! report `cluster_state:ok`. A dead master that still serves slots, a failed
//! cluster, or a master the store cannot reach makes it not ready
//! ([`StoreError::Unavailable`](colloquy_core::StoreError::Unavailable)); once a
//! replica has taken over, it is ready again. Each step waits at most
//! [`RedisConfig::response_timeout`], capped at 1 s (the whole check on a cluster
//! at twice that).
//!
//! # Errors
//!
//! Connection refused or dropped, timeouts and cluster-down replies map to
//! [`StoreError::Unavailable`](colloquy_core::StoreError::Unavailable) (the server
//! answers 503 `store_unavailable`); anything else Redis or the stored data gets wrong
//! maps to [`StoreError::Backend`](colloquy_core::StoreError::Backend); contract
//! outcomes carry their entity (`NotFound(Session)`, `NotFound(Message)` for a
//! missing message or cursor, `Conflict(Session)`, `Conflict(Message)`). The
//! [`RedisConfig`] timeouts bound how long a dead Redis can hold a request.

mod chat_store;
mod codec;
mod config;
mod conn;
mod console;
mod error;
mod events;
mod idempotency;
mod inbox;
mod keys;
mod limiter;
mod messages;
mod readiness;
mod scripts;
mod sessions;
mod slots;
mod store;
mod streams;

pub use config::{ConnectError, RedisConfig};
pub use events::RedisSessionEvents;
pub use idempotency::RedisIdempotency;
pub use limiter::RedisRateLimiter;
pub use store::RedisStore;
pub use streams::RedisStreamLog;
