//! # colloquy-sqlite
//!
//! A durable embedded [`ChatStore`](colloquy_core::ports::ChatStore) in one SQLite
//! database file (SQLite is compiled in: nothing to install or run). It is the
//! reference server's default store.
//!
//! ```
//! use std::sync::Arc;
//! use colloquy_core::{ChatService, EchoModel, ServiceConfig, SystemClock};
//! use colloquy_sqlite::SqliteStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = Arc::new(SystemClock);
//! # let path = std::env::temp_dir().join(format!("colloquy-doc-{}.db", uuid::Uuid::new_v4()));
//! // let path = "colloquy.db";
//! let store = Arc::new(SqliteStore::open(&path, clock.clone()).await?);
//! let service = ChatService::builder(store, clock)
//!     .model(Arc::new(EchoModel::new()))
//!     .config(ServiceConfig::default())
//!     .build();
//! // Expired sessions stay stored (invisible) until a purge; run it now and then.
//! service.purge_expired().await?;
//! # drop(service);
//! # for f in colloquy_sqlite::database_files(&path) { let _ = std::fs::remove_file(f); }
//! # Ok(()) }
//! ```
//!
//! ## Durability: WAL with `synchronous = FULL`
//!
//! The database runs in write-ahead-log mode: a commit appends to the `-wal` file and
//! readers keep reading the last committed state meanwhile. With `synchronous = FULL`
//! SQLite fsyncs the WAL at **every** commit, before the commit returns; the store
//! answers a write only after that commit, so every acknowledged write survives a
//! process kill, an OS crash and a power cut (on storage that honours fsync).
//!
//! `synchronous = NORMAL`, the usual WAL advice, is not enough for that promise: it
//! skips the fsync at commit and syncs only at checkpoints. The database stays
//! consistent, but after an OS crash or power cut the last transactions — writes the
//! server already answered 201 for — can be rolled back. (A mere `kill -9` does not
//! lose them even with NORMAL, since the OS still holds the written pages; FULL is
//! about the machine going down.) The cost of FULL is one fsync per commit, which
//! the writer amortizes by group commit (below).
//!
//! ## Concurrency
//!
//! No SQLite call runs on the async runtime. One **writer thread** owns the only
//! read-write connection and takes every write in order from a bounded channel, so
//! writes never wait on locks, and each store method that writes is **one job**: one
//! savepoint in which it resolves the session reference, checks and writes. That
//! makes "check the session, then append" and "no live session has this
//! `session_id`, then insert" atomic, and a chat turn's append plus its context reads
//! ([`ChatStore::begin_turn`](colloquy_core::ports::ChatStore::begin_turn)) one
//! transaction. Queued jobs are committed together in one transaction (each in its
//! own savepoint, so one failing job rolls back alone), and all of them are answered
//! after the single fsync: group commit. A small pool of **reader threads** (two by
//! default, [`SqliteConfig::readers`]) serves each read method as one job on a
//! read-only connection, in one snapshot, in parallel with the writer. The calling
//! task only awaits a `oneshot` answer; when a queue is full it waits for room.
//!
//! ## Lifecycle
//!
//! [`SqliteStore::open`] creates or opens the file and migrates it;
//! [`SqliteStore::open_in_memory`] gives a private database for tests and demos.
//! Dropping the last handle lets the connection threads finish the queued work and
//! close, the read-write connection last, which checkpoints the WAL into the main
//! file and removes it; [`SqliteStore::close`] (sole owner) or
//! [`SqliteStore::closed`] (shared store) waits for that. A process killed before
//! that loses nothing acknowledged: the next open recovers from the WAL.
//!
//! ## Schema and migrations
//!
//! Sessions and messages are two tables; deleting a session deletes its messages by
//! `ON DELETE CASCADE` (`foreign_keys = ON`). Times are integer microseconds since
//! the epoch (exact round trips, numeric order), UUIDs their 16 bytes, metadata JSON
//! text. Each message has a per-session write position; lists follow it. Indexes
//! serve every query of the HTTP API: session by id, by `(session_id, expires_at)`
//! (the live holder of a `session_id`), the newest-first list (`created_at, id`), the
//! `external_user_id` filter, messages by `(session, position)` (the append, the
//! cascade), by `(session, is_deleted, position)` (pages in either order, from either
//! cursor, and a turn's recent messages), by `(session, role, is_deleted, position)`
//! (a turn's system messages, pages filtered by role), message by id, and expiry (the
//! purge). A page costs O(offset + limit) index steps and a chat turn O(window),
//! however long the session or the table; a test checks every statement's query
//! plan for an index and no sort. The `search` filters scan the list order with a
//! case-insensitive substring test (no index can serve a substring).
//!
//! A third table keeps `Idempotency-Key` results ([`SqliteStore::idempotency`]), so
//! a retry after a restart gets the first result; its expired rows go with the
//! purge.
//!
//! Two more keep the dashboard's counters (`stats_hours`, one row per hour, and
//! `stats_questions`, each hour's ungrounded questions): the job that creates a
//! session, appends a message or records feedback upserts them in the same
//! transaction, so reading a range costs O(hours), whatever the history's size.
//! Erasing a visitor (`erase_user`) deletes with `PRAGMA secure_delete` on, so the
//! text does not linger in free pages (older page images may stay in the WAL until
//! the next checkpoint).
//!
//! `PRAGMA user_version` records the schema version ([`SCHEMA_VERSION`]); opening a
//! database applies the missing migrations in one transaction, and refuses a file
//! from a newer build.
//!
//! ## Filters
//!
//! `search` uses Rust's own `str::to_lowercase` through a registered SQL function, not
//! SQLite's `LIKE`/`lower()` (ASCII-only, with `%` and `_` wildcards), so results
//! agree with [`SessionFilter::matches`](colloquy_core::SessionFilter::matches) and
//! [`MessageFilter::matches`](colloquy_core::MessageFilter::matches) for all of
//! Unicode, e.g. `"ÄRGER"` finds `"ärger"` and `"50%"` matches only a literal `50%`.
//!
//! ## Expiry
//!
//! Every query hides sessions whose `expires_at` is not after the store clock's now,
//! and their messages. Expired rows stay in the file until
//! [`ChatStore::purge_expired`](colloquy_core::ports::ChatStore::purge_expired)
//! removes those expired at or before its cutoff (`ChatService::purge_expired`
//! passes now minus the retention), in transactions of a few hundred sessions. A new
//! session may take the `session_id` of an expired session still stored; the two
//! are separate rows, and a purge removes only the old one.

mod console;
mod error;
mod idempotency;
mod inbox;
mod messages;
mod rows;
mod schema;
mod sessions;
mod store;
mod worker;

#[cfg(test)]
mod query_plans;

pub use idempotency::SqliteIdempotency;
pub use schema::SCHEMA_VERSION;
pub use store::{database_files, Closed, SqliteConfig, SqliteStore};
