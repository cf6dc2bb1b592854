//! [`PostgresStore`]: connecting, the pool, and the [`ChatStore`] port.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use colloquy_core::ports::{ChatStore, Erased, Turn};
use colloquy_core::stats::{self, HourStats, StatCounts};
use colloquy_core::{
    ChatMessage, Clock, Entity, Feedback, MessageDraft, MessageQuery, Page, Responder, Session,
    SessionFilter, SessionPatch, SessionRef, StoreError,
};
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{NoTls, Row, Socket};
use uuid::Uuid;

use crate::config::PostgresConfig;
use crate::error::{pool_error, query_error, ConnectError, Corrupt};
use crate::rows::{self, sql_count};
use crate::{console, schema, sql, text};

const NO_SESSION: StoreError = StoreError::NotFound(Entity::Session);
const NO_MESSAGE: StoreError = StoreError::NotFound(Entity::Message);

/// How many expired sessions one purge statement deletes, so a large purge is many
/// short statements (each well inside the statement timeout), not one long one.
const PURGE_BATCH: usize = 100;

/// A [`ChatStore`] on PostgreSQL; see the [crate documentation](crate).
///
/// Cheap to share behind an `Arc`; every method takes one pooled connection for one
/// statement.
pub struct PostgresStore {
    pub(crate) pool: Pool,
    clock: Arc<dyn Clock>,
    /// Client-side bound on one statement: the statement timeout plus a margin, so a
    /// connection that stops answering fails the call instead of hanging it.
    pub(crate) deadline: Option<Duration>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("pool_size", &status.max_size)
            .field("connections", &status.size)
            .field("idle", &status.available)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database `config` names, applies the missing schema migrations
    /// (unless [`PostgresConfig::no_migrate`]), and opens the pool; the store judges
    /// expiry by `clock`.
    ///
    /// # Errors
    /// [`ConnectError::Unavailable`] when PostgreSQL cannot be reached within
    /// [`PostgresConfig::connect_timeout`]; [`ConnectError::Config`] for a bad
    /// connection string or setting; the schema variants when the database's schema
    /// does not fit this build.
    pub async fn connect(
        config: PostgresConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConnectError> {
        config.validate()?;
        let mut pg = pg_config(&config)?;
        let pool = if pg.get_ssl_mode() == SslMode::Require {
            let tls = crate::tls::connector(config.root_cert.as_deref())?;
            open_pool(&config, pg, tls).await?
        } else {
            // `prefer` would try TLS with a certificate we could not verify; TLS is
            // used when required, and then verified.
            pg.ssl_mode(SslMode::Disable);
            open_pool(&config, pg, NoTls).await?
        };
        let deadline = (!config.statement_timeout.is_zero())
            .then(|| config.statement_timeout + Duration::from_secs(1));
        tracing::info!(
            url = %config.redacted_url(),
            pool_size = config.pool_size,
            "opened PostgreSQL store"
        );
        Ok(Self {
            pool,
            clock,
            deadline,
        })
    }

    /// Closes the pool: idle connections close now, busy ones when returned, and
    /// every later call fails with [`StoreError::Unavailable`].
    pub fn close(&self) {
        self.pool.close();
    }

    /// Runs one prepared statement on one pooled connection: one round trip.
    async fn query(
        &self,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        query(&self.pool, self.deadline, statement, params).await
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Runs a statement answering one count (of a purge batch).
    async fn count(
        &self,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<i64, StoreError> {
        self.query(statement, params)
            .await?
            .first()
            .ok_or_else(|| StoreError::backend(Corrupt("purge returned no count")))?
            .try_get(0)
            .map_err(StoreError::backend)
    }
}

/// Runs one prepared statement on one connection of `pool`, failing as unavailable
/// after `deadline`: one round trip.
pub(crate) async fn query(
    pool: &Pool,
    deadline: Option<Duration>,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let run = async {
        let client = pool.get().await.map_err(pool_error)?;
        // Prepared when the connection opened: a cache hit, no round trip.
        let prepared = client
            .prepare_cached(statement)
            .await
            .map_err(query_error)?;
        client.query(&prepared, params).await.map_err(query_error)
    };
    match deadline {
        Some(deadline) => tokio::time::timeout(deadline, run)
            .await
            .map_err(StoreError::unavailable)?,
        None => run.await,
    }
}

/// The driver configuration: the connection string plus our timeouts and schema.
pub(crate) fn pg_config(config: &PostgresConfig) -> Result<tokio_postgres::Config, ConnectError> {
    let mut pg: tokio_postgres::Config = config
        .url
        .parse()
        .map_err(|e: tokio_postgres::Error| ConnectError::Config(error_chain(&e)))?;
    pg.connect_timeout(config.connect_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name("colloquy");
    }
    let mut options = pg.get_options().unwrap_or_default().to_owned();
    options.push(' ');
    options.push_str(sql::PLANNER_SETTINGS);
    options.push_str(&format!(
        " -c statement_timeout={}",
        config.statement_timeout.as_millis()
    ));
    if let Some(schema) = &config.schema {
        options.push_str(&format!(" -c search_path={schema}"));
    }
    pg.options(options.trim_start());
    Ok(pg)
}

/// `e` and its causes on one line (none of which contains the connection string).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Migrates (or checks the schema) on one direct connection, then builds the pool,
/// whose connections prepare every statement when they open.
async fn open_pool<T>(
    config: &PostgresConfig,
    pg: tokio_postgres::Config,
    tls: T,
) -> Result<Pool, ConnectError>
where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let connecting = pg.connect(tls.clone());
    let (mut client, connection) = tokio::time::timeout(config.connect_timeout, connecting)
        .await
        .map_err(|e| ConnectError::Unavailable(e.into()))?
        .map_err(|e| ConnectError::Unavailable(e.into()))?;
    let connection = tokio::spawn(connection);
    let checked = if config.no_migrate {
        schema::check_version(&client).await
    } else {
        schema::migrate(&mut client, config.schema.as_deref()).await
    };
    drop(client);
    // The connection task ends once the client is gone; its result is not needed.
    let _ = connection.await;
    checked?;

    let manager = Manager::from_config(
        pg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(config.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(config.connect_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.connect_timeout))
        .post_create(Hook::async_fn(|client, _| {
            Box::pin(async move {
                let prepared = sql::all().map(|statement| client.prepare_cached(statement));
                futures::future::try_join_all(prepared)
                    .await
                    .map_err(HookError::Backend)?;
                Ok(())
            })
        }))
        .build()
        .map_err(|e| ConnectError::Config(e.to_string()))?;
    // One connection now proves the statements prepare against the schema.
    let first = pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::PostCreateHook(HookError::Backend(e)) => {
            ConnectError::from_pg(e)
        }
        e => ConnectError::Unavailable(e.into()),
    })?;
    drop(first);
    Ok(pool)
}

/// A reference as statement parameters: its UUID (or NULL) and its stored text.
fn reference(r: &SessionRef) -> (Option<Uuid>, Cow<'_, str>) {
    (r.uuid(), text::encode(r.as_str()))
}

/// A search needle as the statements compare it: lowercased by Rust, then escaped.
fn needle(search: Option<&String>) -> Option<String> {
    search.map(|s| text::encode_owned(s.to_lowercase()))
}

#[async_trait]
impl ChatStore for PostgresStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let sid = text::encode(&session.session_id);
        let external = session.external_user_id.as_deref().map(text::encode);
        let metadata = Json(&session.metadata);
        let now = self.now();
        let rows = self
            .query(
                sql::CREATE_SESSION,
                &[
                    &session.id,
                    &sid,
                    &external,
                    &session.created_at,
                    &session.expires_at,
                    &session.is_active,
                    &metadata,
                    &now,
                    &stats::hour_of(session.created_at),
                    &session.responder.as_str(),
                    &session.handoff_requested_at,
                ],
            )
            .await?;
        if rows.len() == 1 {
            Ok(())
        } else {
            Err(StoreError::backend(Corrupt("create inserted no row")))
        }
    }

    async fn session(&self, r: &SessionRef) -> Result<Option<Session>, StoreError> {
        let (uuid, raw) = reference(r);
        let now = self.now();
        let rows = self.query(sql::GET_SESSION, &[&uuid, &raw, &now]).await?;
        rows.first().map(|row| rows::session(row, 0)).transpose()
    }

    async fn update_session(
        &self,
        r: &SessionRef,
        patch: &SessionPatch,
    ) -> Result<Session, StoreError> {
        let (uuid, raw) = reference(r);
        let now = self.now();
        let metadata = patch.metadata.as_ref().map(Json);
        let set_external = patch.external_user_id.is_some();
        let external = patch
            .external_user_id
            .as_ref()
            .and_then(Option::as_deref)
            .map(text::encode);
        let rows = self
            .query(
                sql::UPDATE_SESSION,
                &[
                    &uuid,
                    &raw,
                    &now,
                    &patch.is_active,
                    &metadata,
                    &set_external,
                    &external,
                    &patch.expires_at,
                    &patch.responder.map(Responder::as_str),
                    &patch.handoff_requested_at.is_some(),
                    &patch.handoff_requested_at.flatten(),
                ],
            )
            .await?;
        let row = rows.first().ok_or(NO_SESSION)?;
        rows::session(row, 0)
    }

    async fn delete_session(&self, r: &SessionRef) -> Result<(), StoreError> {
        let (uuid, raw) = reference(r);
        let now = self.now();
        let rows = self
            .query(sql::DELETE_SESSION, &[&uuid, &raw, &now])
            .await?;
        if rows.is_empty() {
            Err(NO_SESSION)
        } else {
            Ok(())
        }
    }

    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: Page,
    ) -> Result<Vec<Session>, StoreError> {
        let now = self.now();
        let search = needle(filter.search.as_ref());
        let offset = sql_count(page.offset);
        let limit = sql_count(page.limit);
        let rows = match &filter.external_user_id {
            None => {
                self.query(
                    &sql::LIST_SESSIONS[0],
                    &[&now, &filter.is_active, &search, &offset, &limit],
                )
                .await?
            }
            Some(external) => {
                let external = text::encode(external);
                self.query(
                    &sql::LIST_SESSIONS[1],
                    &[&now, &filter.is_active, &search, &offset, &limit, &external],
                )
                .await?
            }
        };
        rows.iter().map(|row| rows::session(row, 0)).collect()
    }

    async fn append(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
    ) -> Result<(Session, ChatMessage), StoreError> {
        let (uuid, raw) = reference(to);
        let now = self.now();
        let body = text::encode(&draft.message);
        let metadata = Json(&draft.metadata);
        let counts = StatCounts::of_message(draft.role, &draft.metadata);
        let [c1, c2, c3, c4, c5, c6, c7, c8, c9] = counts.values();
        let question = (counts.ungrounded > 0)
            .then(|| stats::in_reply_to(&draft.metadata))
            .flatten();
        let max_questions = sql_count(stats::MAX_QUESTIONS_PER_HOUR);
        let rows = self
            .query(
                sql::APPEND,
                &[
                    &uuid,
                    &raw,
                    &now,
                    &draft.id,
                    &draft.role.as_str(),
                    &body,
                    &metadata,
                    &draft.timestamp,
                    &c1,
                    &c2,
                    &c3,
                    &c4,
                    &c5,
                    &c6,
                    &c7,
                    &c8,
                    &c9,
                    &question,
                    &max_questions,
                    &i64::from(colloquy_core::inbox::is_rated_down(&draft.metadata)),
                ],
            )
            .await?;
        let row = rows.first().ok_or(NO_SESSION)?;
        let session = rows::session(row, 0)?;
        let seq: Option<i64> = row
            .try_get(rows::SESSION_COLUMNS)
            .map_err(StoreError::backend)?;
        if seq.is_none() {
            return Err(StoreError::SessionInactive);
        }
        let written_at: DateTime<Utc> = row
            .try_get(rows::SESSION_COLUMNS + 1)
            .map_err(StoreError::backend)?;
        let mut message = draft.into_message(session.id);
        message.timestamp = written_at;
        Ok((session, message))
    }

    async fn message(&self, id: Uuid) -> Result<Option<(ChatMessage, Session)>, StoreError> {
        let now = self.now();
        let rows = self.query(sql::GET_MESSAGE, &[&id, &now]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let session = rows::session(row, 5)?;
        let message = rows::message(row, 0, session.id)?;
        Ok(Some((message, session)))
    }

    async fn list_messages(
        &self,
        of: &SessionRef,
        query: &MessageQuery,
    ) -> Result<(Session, Vec<ChatMessage>), StoreError> {
        let (uuid, raw) = reference(of);
        let now = self.now();
        let role = query.filter.role.map(|r| r.as_str());
        let search = needle(query.filter.search.as_ref());
        let offset = sql_count(query.page.offset);
        let limit = sql_count(query.page.limit);
        let statement = &sql::LIST_MESSAGES[sql::list_messages_index(query.order, query.cursor)];
        let rows = match query.cursor {
            None => {
                self.query(
                    statement,
                    &[&uuid, &raw, &now, &role, &search, &offset, &limit],
                )
                .await?
            }
            Some(cursor) => {
                let at = cursor.message();
                self.query(
                    statement,
                    &[&uuid, &raw, &now, &role, &search, &offset, &limit, &at],
                )
                .await?
            }
        };
        let wide = rows::wide(&rows)?.ok_or(NO_SESSION)?;
        if !wide.cursor_ok {
            return Err(NO_MESSAGE);
        }
        let mut page = wide.messages;
        if query.order.is_newest_first() {
            page.sort_unstable_by_key(|(_, seq, _)| std::cmp::Reverse(*seq));
        } else {
            page.sort_unstable_by_key(|(_, seq, _)| *seq);
        }
        Ok((wide.session, page.into_iter().map(|(_, _, m)| m).collect()))
    }

    async fn delete_message(&self, id: Uuid) -> Result<(), StoreError> {
        let now = self.now();
        let rows = self.query(sql::DELETE_MESSAGE, &[&id, &now]).await?;
        if rows.is_empty() {
            Err(NO_MESSAGE)
        } else {
            Ok(())
        }
    }

    /// Then deletes the `Idempotency-Key` rows expired by the database's clock, in
    /// batches of the same size.
    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let batch = sql_count(PURGE_BATCH);
        let mut purged = 0;
        loop {
            let gone = self.count(sql::PURGE_BATCH, &[&cutoff, &batch]).await?;
            purged += u64::try_from(gone).unwrap_or(0);
            if gone < batch {
                break;
            }
        }
        while self.count(sql::PURGE_IDEMPOTENCY, &[&batch]).await? == batch {}
        Ok(purged)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.query(sql::PING, &[]).await.map(drop)
    }

    async fn begin_turn(
        &self,
        to: &SessionRef,
        draft: MessageDraft,
        window: usize,
    ) -> Result<Turn, StoreError> {
        let (uuid, raw) = reference(to);
        let now = self.now();
        let body = text::encode(&draft.message);
        let metadata = Json(&draft.metadata);
        let window = sql_count(window);
        let [c1, c2, c3, c4, c5, c6, c7, c8, c9] =
            StatCounts::of_message(draft.role, &draft.metadata).values();
        let rows = self
            .query(
                sql::BEGIN_TURN,
                &[
                    &uuid,
                    &raw,
                    &now,
                    &draft.id,
                    &draft.role.as_str(),
                    &body,
                    &metadata,
                    &draft.timestamp,
                    &c1,
                    &c2,
                    &c3,
                    &c4,
                    &c5,
                    &c6,
                    &c7,
                    &c8,
                    &c9,
                    &window,
                ],
            )
            .await?;
        let wide = rows::wide(&rows)?.ok_or(NO_SESSION)?;
        let mut message = None;
        let mut system = Vec::new();
        let mut recent = Vec::new();
        for (k, seq, m) in wide.messages {
            match k {
                1 => message = Some(m),
                2 => system.push((seq, m)),
                _ => recent.push((seq, m)),
            }
        }
        let message = message.ok_or(StoreError::SessionInactive)?;
        system.sort_unstable_by_key(|(seq, _)| *seq);
        recent.sort_unstable_by_key(|(seq, _)| *seq);
        Ok(Turn {
            session: wide.session,
            message,
            system: system.into_iter().map(|(_, m)| m).collect(),
            recent: recent.into_iter().map(|(_, m)| m).collect(),
        })
    }

    /// Two statements: a read, then a write that applies only if the metadata is
    /// still what was read (retried a few times when another write came between).
    async fn set_feedback(
        &self,
        id: Uuid,
        feedback: &Feedback,
    ) -> Result<(ChatMessage, Session), StoreError> {
        console::set_feedback(&self.pool, self.deadline, self.now(), id, feedback).await
    }

    /// One statement. PostgreSQL keeps the deleted rows' old versions until VACUUM
    /// (autovacuum) reclaims them; they are invisible to every query.
    async fn erase_user(&self, external_user_id: &str) -> Result<Erased, StoreError> {
        console::erase_user(&self.pool, self.deadline, external_user_id).await
    }

    /// One statement on the full-text (GIN) index.
    async fn search_messages(
        &self,
        query: &str,
        page: Page,
    ) -> Result<Vec<(ChatMessage, Session)>, StoreError> {
        console::search(&self.pool, self.deadline, self.now(), query, page).await
    }

    /// One statement walking one inbox index from the cursor, with two index
    /// lookups per row (first question, last message).
    async fn inbox(
        &self,
        query: &colloquy_core::inbox::InboxQuery,
    ) -> Result<Vec<colloquy_core::inbox::InboxEntry>, StoreError> {
        crate::inbox::page(&self.pool, self.deadline, self.now(), query).await
    }

    /// One statement over the two counter tables: O(hours in the range).
    async fn hourly_stats(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HourStats>, StoreError> {
        console::hours(&self.pool, self.deadline, from, to).await
    }

    async fn add_stats(&self, at: DateTime<Utc>, counts: &StatCounts) -> Result<(), StoreError> {
        console::count(&self.pool, self.deadline, at, counts).await
    }
}
