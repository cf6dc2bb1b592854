//! # colloquy-postgres
//!
//! A [`ChatStore`](colloquy_core::ports::ChatStore) on PostgreSQL: pooled
//! connections, one prepared statement — one network round trip — per API
//! operation, embedded versioned migrations, TLS with rustls. For deployments that
//! already run PostgreSQL, or run several Colloquy instances on one database.
//!
//! ```no_run
//! use std::sync::Arc;
//! use colloquy_core::{ChatService, EchoModel, ServiceConfig, SystemClock};
//! use colloquy_postgres::{PostgresConfig, PostgresStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), colloquy_postgres::ConnectError> {
//! let clock = Arc::new(SystemClock);
//! let config = PostgresConfig {
//!     pool_size: 32,
//!     ..PostgresConfig::new("postgres://colloquy:secret@db.internal/colloquy?sslmode=require")
//! };
//! let store = Arc::new(PostgresStore::connect(config, clock.clone()).await?);
//! let service = ChatService::builder(store, clock)
//!     .model(Arc::new(EchoModel::new()))
//!     .config(ServiceConfig::default())
//!     .build();
//! # drop(service);
//! # Ok(()) }
//! ```
//!
//! Requires PostgreSQL 12 or newer built with ICU (Debian's, the official images and
//! the managed services are); tested on 15.
//!
//! ## Round trips
//!
//! Every [`ChatStore`](colloquy_core::ports::ChatStore) method is one statement on
//! one pooled connection, sent as one Bind/Execute/Sync flight: one round trip. The
//! statements are prepared on each connection when the pool opens it, so no call
//! pays for parsing or planning text, and the session reference the client gave is
//! resolved *inside* the statement (UUID first, then the live holder of the
//! `session_id`), never by a separate lookup.
//!
//! | operation | statement |
//! | --- | --- |
//! | `create_session` | a CTE releases the `session_id` from an expired holder, then `INSERT` |
//! | `session`, `list_sessions`, `message` | one `SELECT` |
//! | `update_session`, `delete_session`, `delete_message` | `UPDATE`/`DELETE ... RETURNING` with the reference resolved in a CTE |
//! | `append` | one CTE: resolve, lock the session row, take the next position, raise the timestamp, `INSERT ... RETURNING` |
//! | `list_messages` | one `UNION ALL`: the session row, then the page from a `LATERAL` index range scan |
//! | `begin_turn` | one call of the `colloquy_begin_turn` function (below) |
//! | `purge_expired` | batches of 100 sessions per statement (a background job, not an API call) |
//!
//! `begin_turn` is a PL/pgSQL function rather than one statement because of
//! snapshots: a statement reads from a snapshot taken when it starts, *before* it
//! waits for the session's row lock, so a single-statement turn racing other turns
//! misses the messages they commit meanwhile (in a test, 142 of 160 contended turns
//! did). Inside the function each statement takes a fresh snapshot after the lock,
//! so the context is exactly the write order up to the new message.
//!
//! The `postgres_roundtrips` example counts the round trips with a TCP proxy (one
//! for every operation) and times the hot path; see its output in the README.
//!
//! ## Schema
//!
//! Two tables, `colloquy_sessions` and `colloquy_messages` (`ON DELETE CASCADE`),
//! in the configured [`PostgresConfig::schema`] or the connection's default. Times are
//! `timestamptz` (microseconds, like the API), metadata is `json` (kept verbatim,
//! so it round trips exactly), ids are `uuid`. Indexes serve every query:
//!
//! - sessions: primary key `id`; `session_id` unique **where the session holds it**
//!   (see below); `(created_at DESC, id DESC)` for the list;
//!   `(external_user_id, created_at DESC, id DESC)` for its filter; `expires_at` for
//!   the purge;
//! - messages: primary key `(session, seq)` (write order; the cascade); `id` unique;
//!   `(session, seq) WHERE NOT is_deleted` for lists, pages and recent messages in
//!   either direction, from any cursor; `(session, seq) WHERE role = 'system' AND NOT
//!   is_deleted` so a turn finds the system messages without scanning the session.
//!
//! A third table, `colloquy_idempotency`, keeps `Idempotency-Key` results
//! ([`PostgresStore::idempotency`]): primary key `key` (a claim is one `INSERT ... ON
//! CONFLICT`), `expires_at` for the purge; expiry there is by the database's clock.
//!
//! A page costs O(offset + limit) index steps however long the session; a turn
//! O(window). The store's connections run with `enable_sort = off` (and `jit = off`,
//! which its cost penalty would otherwise trigger): a cached plan
//! estimates a session's length from the average, and for many short sessions a
//! bitmap scan plus a sort of the whole session looks as cheap as walking the index
//! (a test caught PostgreSQL choosing it). A unit test checks that the generic plan of
//! every statement uses these indexes, with no sequential scan and no sort.
//!
//! ## Concurrency
//!
//! Per-session order is decided in the database: an append locks its session row
//! (`FOR NO KEY UPDATE`), which holds the last position and timestamp, so racing
//! appends queue on that row and each takes the next position, its timestamp
//! raised to the previous message's. A delete racing appends waits for the same row:
//! an append either fails with `NotFound` or is deleted with the session.
//!
//! "One live session per `session_id`" cannot be a plain unique index, since
//! liveness depends on the store clock's now, nor a `pg_advisory_xact_lock` inside
//! the statement (the statement's snapshot predates the lock, so it would not see the
//! winner's row). Instead each session has `owns_session_id`, and a unique index on
//! `session_id WHERE owns_session_id`: creating a session first releases the
//! `session_id` from an *expired* holder (an `UPDATE` that locks it and re-checks it
//! on the newest row version), then inserts; a live holder, or a racing creator that
//! got there first, makes the insert hit the index — `Conflict(Session)`. Purging the
//! expired holder later leaves the new session alone.
//!
//! ## Expiry
//!
//! Every statement receives the store clock's now as a parameter and sees only
//! sessions with `expires_at > now`, and their messages: an expired session is
//! invisible at once, whatever the database server's clock says. Expired rows stay
//! until [`purge_expired`](colloquy_core::ports::ChatStore::purge_expired) deletes
//! the sessions with `expires_at <= cutoff` and, by cascade, their messages.
//!
//! ## Search and text
//!
//! The `search` filters compare with `strpos` — `%` and `_` are literal — between
//! the needle lowercased by Rust and the stored text lowercased by
//! `lower(... COLLATE "und-x-icu")`, ICU's full Unicode case mapping (final sigma,
//! `İ` → `i̇`, ...), independent of the database's locale. A test compares the
//! server's lowercasing with Rust's for every code point; they agree except for the
//! 55 characters whose case mapping is newer than the server's ICU (Unicode 16 and
//! 17 additions, such as the Garay script, against Debian 12's ICU 72): those match
//! only case-sensitively there.
//!
//! PostgreSQL's `text` cannot hold U+0000, which a message may contain, so stored
//! text escapes it with two Unicode noncharacters (U+10FFFF, U+10FFFE). Everything
//! round trips exactly; a search needle containing U+0000, U+10FFFE or U+10FFFF may
//! match differently from [`MessageFilter::matches`](colloquy_core::MessageFilter::matches).
//!
//! ## Durability and failures
//!
//! Each statement commits on its own before the store answers, so an acknowledged
//! write has been flushed to the write-ahead log (with the server's default
//! `synchronous_commit = on`) and survives a server crash; a test restarts a
//! throwaway cluster under load (`-m fast` and `-m immediate`) and finds every
//! acknowledged write. While the server is down, calls fail at once with
//! [`StoreError::Unavailable`](colloquy_core::StoreError::Unavailable) (the HTTP
//! layer answers 503 with `Retry-After`), and the first call after it is back opens
//! a fresh connection. A write whose connection broke mid-commit fails with
//! `Unavailable` although it may have committed.
//!
//! | failure | `StoreError` |
//! | --- | --- |
//! | connect refused or timed out, pool wait timed out, connection lost | `Unavailable` |
//! | SQLSTATE class `08`, `53`, `57` (`57014` statement timeout, shutdowns), `40`, and `55P03` | `Unavailable` |
//! | `23505` on the session id or live `session_id` index | `Conflict(Session)` |
//! | `23505` on the message id index | `Conflict(Message)` |
//! | anything else | `Backend` |
//!
//! ## The pool
//!
//! [`deadpool-postgres`](deadpool_postgres): the maintained async pool built for
//! `tokio-postgres` — it recycles a connection by checking that it is still open
//! (no query per checkout), bounds the wait for a connection and the time to open
//! one, and keeps each connection's prepared statements. `bb8` would need its own
//! statement cache; `sqlx` would replace the driver and its explicit prepared
//! statements. [`PostgresConfig`] documents the defaults: 16 connections, a 5 s
//! statement timeout (PostgreSQL's `statement_timeout`, set per connection) and a
//! 5 s connect/pool-wait timeout.
//!
//! ## TLS
//!
//! `sslmode=require` in the connection string selects TLS by
//! [`tokio-postgres-rustls`](tokio_postgres_rustls) with rustls' aws-lc-rs provider
//! (the one the workspace already uses), trusting the operating system's roots
//! ([`rustls-native-certs`](rustls_native_certs), so a private CA installed on the
//! host works) plus [`PostgresConfig::root_cert`]. Unlike libpq's `require`, the
//! certificate chain **and** host name are verified, like `verify-full`. `prefer`
//! and `disable` connect in plain text. The password never appears in `Debug`
//! output or in an error.
//!
//! ## Migrations
//!
//! [`PostgresStore::connect`] applies the missing migrations in one transaction
//! holding an advisory lock keyed by the schema, so instances starting together do
//! not race, and records them in `colloquy_schema_migrations` (this build writes
//! version [`SCHEMA_VERSION`]). A database migrated by a newer build is refused.
//! With [`PostgresConfig::no_migrate`] the store only checks the version, for roles
//! that may not run DDL.

mod config;
mod console;
mod error;
mod events;
mod idempotency;
mod inbox;
mod rows;
mod schema;
mod sql;
mod store;
mod text;
mod tls;

#[cfg(test)]
mod query_plans;

pub use config::PostgresConfig;
pub use error::ConnectError;
pub use events::PostgresSessionEvents;
pub use idempotency::PostgresIdempotency;
pub use schema::SCHEMA_VERSION;
pub use store::PostgresStore;
