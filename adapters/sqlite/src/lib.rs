//! # colloquy-sqlite
//!
//! A durable embedded store implementing both Colloquy store ports,
//! [`SessionStore`](colloquy_core::ports::SessionStore) and
//! [`MessageStore`](colloquy_core::ports::MessageStore), in one SQLite database file
//! (SQLite is compiled in: nothing to install or run). It is the reference server's
//! default store.
//!
//! ```
//! use std::sync::Arc;
//! use colloquy_core::{ChatService, EchoModel, ServiceConfig, SystemClock};
//! use colloquy_sqlite::SqliteStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), colloquy_core::StoreError> {
//! let clock = Arc::new(SystemClock);
//! # let path = std::env::temp_dir().join(format!("colloquy-doc-{}.db", uuid::Uuid::new_v4()));
//! // let path = "colloquy.db";
//! let store = Arc::new(SqliteStore::open(&path, clock.clone()).await?);
//! let _purger = store.spawn_purger(std::time::Duration::from_secs(600));
//! let service = ChatService::new(
//!     store.clone(),
//!     store,
//!     Arc::new(EchoModel::new()),
//!     clock,
//!     ServiceConfig::default(),
//! );
//! # drop((service, _purger));
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
//! read-write connection and takes every write in order from a channel, so writes
//! never wait on locks, and each append checks the session, assigns the next write
//! position and inserts in one transaction. Queued writes are committed together in one
//! transaction (each in its own savepoint, so one failing write rolls back alone), and
//! all of them are answered after the single fsync: group commit. A small pool of
//! **reader threads** (two by default, [`SqliteConfig::readers`]) serves reads from
//! read-only connections in parallel with the writer, each read in one snapshot. The
//! calling task only awaits a `oneshot` answer.
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
//! serve every query of the HTTP API: session by id, by `session_id` (unique), the
//! newest-first list (`created_at, id`), the `external_user_id` filter, messages by
//! `(session, position)` (list, recent, append, cascade), message by id, and expiry
//! (the purge). A page costs O(offset + limit) index steps, however long the session
//! or the table. The `search` filters scan the list order with a case-insensitive
//! substring test (no index can serve a substring).
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
//! and their messages. Expired rows stay in the file until purged:
//! [`SqliteStore::purge_expired`] on demand, or [`SqliteStore::spawn_purger`] in the
//! background. Creating a session whose `session_id` an expired session still holds
//! removes that expired session first.

mod error;
mod messages;
mod rows;
mod schema;
mod sessions;
mod store;
mod worker;

#[cfg(test)]
mod query_plans;

pub use schema::SCHEMA_VERSION;
pub use store::{database_files, Closed, Purger, SqliteConfig, SqliteStore};
