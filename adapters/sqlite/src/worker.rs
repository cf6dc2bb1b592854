//! The connection threads: one writer with group commit, and a small pool of readers.
//!
//! SQLite calls block, so none runs on the async runtime. Each connection lives on its
//! own OS thread and takes jobs (closures) from a bounded channel; the caller awaits
//! room in the queue, then a `oneshot` answer.
//!
//! - **One writer.** SQLite allows one writer at a time anyway; a single thread makes
//!   every write serial without lock waits, which is also what makes "check the
//!   session, then append" atomic. The writer drains whatever jobs are queued (up to
//!   [`MAX_BATCH`]) into **one** transaction, each job inside its own `SAVEPOINT` so a
//!   failing job rolls back alone, then commits once and only then answers every job
//!   of the batch. Under load one fsync covers many writes (group commit); alone, a
//!   write is its own batch. No job is acknowledged before its commit is durable.
//! - **Readers.** `readers` read-only connections share one job queue; in WAL mode
//!   they read a committed snapshot while the writer writes. Every read job runs in
//!   one read transaction, so it sees a single snapshot. A write acknowledged before a
//!   read is sent is always visible to that read.
//! - With no readers (the in-memory database, which a second connection cannot see),
//!   reads run on the writer thread too.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};

use colloquy_core::Clock;
use rusqlite::Connection;
use tokio::sync::mpsc::{channel, Receiver, Sender};
use tokio::sync::{oneshot, watch};

use crate::error::SqliteError;

/// The most jobs one write transaction takes.
pub(crate) const MAX_BATCH: usize = 256;

/// Jobs waiting per queue. When a queue is full, callers wait (asynchronously) for
/// room: under overload, memory stays bounded and latency grows instead.
const QUEUE: usize = 4 * MAX_BATCH;

/// A unit of work on a connection: it gets the connection and the store clock's
/// "now" in microseconds, read when the job starts.
type Work<T> = Box<dyn FnOnce(&Connection, i64) -> Result<T, SqliteError> + Send>;

/// A write job as the writer thread sees it.
trait WriteJob: Send {
    /// Runs the work inside the open savepoint; `true` when it succeeded.
    fn run(&mut self, conn: &Connection, now: i64) -> bool;
    /// Answers the caller once the batch's fate is known.
    fn finish(self: Box<Self>, batch: Result<(), Arc<SqliteError>>);
}

struct Job<T> {
    work: Option<Work<T>>,
    result: Option<Result<T, SqliteError>>,
    reply: oneshot::Sender<Result<T, SqliteError>>,
}

impl<T: Send> WriteJob for Job<T> {
    fn run(&mut self, conn: &Connection, now: i64) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = catch_unwind(AssertUnwindSafe(|| work(conn, now)))
            .unwrap_or(Err(SqliteError::JobPanicked));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, batch: Result<(), Arc<SqliteError>>) {
        let answer = match (self.result, batch) {
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(batch)) => Err(SqliteError::Batch(batch)),
            (None, Ok(())) => Err(SqliteError::TransactionAborted),
        };
        // The caller may have stopped waiting (a dropped request); the write stands.
        let _ = self.reply.send(answer);
    }
}

type ReadJob = Box<dyn FnOnce(&Connection, i64) + Send>;

/// Handles to the connection threads. Dropping it lets the threads finish the queued
/// jobs, close their connections and exit.
pub(crate) struct Workers {
    writer: Sender<Box<dyn WriteJob>>,
    readers: Option<Sender<ReadJob>>,
}

impl Workers {
    /// Starts the writer on `writer` and one reader thread per connection in `readers`
    /// (none: reads go to the writer). Returns the handles and a flag the writer sets
    /// when it has exited: last, after the readers, once the handles are dropped.
    pub(crate) fn start(
        writer: Connection,
        readers: Vec<Connection>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, watch::Receiver<bool>), SqliteError> {
        let mut reader_threads = Vec::with_capacity(readers.len());
        let read_tx = if readers.is_empty() {
            None
        } else {
            let (read_tx, read_rx) = channel::<ReadJob>(QUEUE);
            let read_rx = Arc::new(Mutex::new(read_rx));
            for (i, conn) in readers.into_iter().enumerate() {
                let rx = read_rx.clone();
                let clock = clock.clone();
                reader_threads.push(
                    std::thread::Builder::new()
                        .name(format!("colloquy-sqlite-reader-{i}"))
                        .spawn(move || reader_loop(&conn, &*clock, &rx))
                        .map_err(SqliteError::Thread)?,
                );
            }
            Some(read_tx)
        };
        let (write_tx, mut write_rx) = channel::<Box<dyn WriteJob>>(QUEUE);
        let (closed_tx, closed_rx) = watch::channel(false);
        std::thread::Builder::new()
            .name("colloquy-sqlite-writer".into())
            .spawn(move || {
                writer_loop(&writer, &*clock, &mut write_rx);
                // The store is gone (both channels closed together). Let the readers
                // finish first: the read-write connection must close last, so that
                // its close checkpoints the WAL into the database and removes it.
                for reader in reader_threads {
                    if reader.join().is_err() {
                        tracing::error!("a SQLite reader thread panicked");
                    }
                }
                if let Err((_, e)) = writer.close() {
                    tracing::error!(error = %e, "closing the SQLite database failed");
                }
                closed_tx.send_replace(true);
            })
            .map_err(SqliteError::Thread)?;
        Ok((
            Self {
                writer: write_tx,
                readers: read_tx,
            },
            closed_rx,
        ))
    }

    /// Runs `work` in the write transaction; answers after it is durably committed.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> Result<T, SqliteError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            work: Some(Box::new(work) as Work<T>),
            result: None,
            reply,
        };
        self.writer
            .send(Box::new(job))
            .await
            .map_err(|_| SqliteError::Closed)?;
        answer.await.map_err(|_| SqliteError::Closed)?
    }

    /// Runs `work` in a read transaction on a reader connection.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> Result<T, SqliteError> + Send + 'static,
    {
        let Some(readers) = &self.readers else {
            return self.write(work).await;
        };
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn, now| {
            let result = catch_unwind(AssertUnwindSafe(|| in_read_transaction(conn, now, work)))
                .unwrap_or(Err(SqliteError::JobPanicked));
            end_read_transaction(conn);
            let _ = reply.send(result);
        });
        readers.send(job).await.map_err(|_| SqliteError::Closed)?;
        answer.await.map_err(|_| SqliteError::Closed)?
    }
}

/// Runs a transaction-control statement, prepared once per connection.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn now_micros(clock: &dyn Clock) -> i64 {
    clock.now().timestamp_micros()
}

/// Runs `work` in a read transaction (one snapshot); [`end_read_transaction`] ends
/// it, also after a panic.
fn in_read_transaction<T>(
    conn: &Connection,
    now: i64,
    work: impl FnOnce(&Connection, i64) -> Result<T, SqliteError>,
) -> Result<T, SqliteError> {
    exec(conn, "BEGIN DEFERRED")?;
    work(conn, now)
}

/// Ends the read transaction left open on `conn`, if any, so the next job starts
/// clean. Read-only: nothing to keep, and ending it never loses anything.
fn end_read_transaction(conn: &Connection) {
    if !conn.is_autocommit() {
        if let Err(e) = exec(conn, "ROLLBACK") {
            tracing::warn!(error = %e, "ending a SQLite read transaction failed");
        }
    }
}

fn reader_loop(conn: &Connection, clock: &dyn Clock, jobs: &Mutex<Receiver<ReadJob>>) {
    loop {
        let job = {
            let mut rx = jobs.lock().unwrap_or_else(PoisonError::into_inner);
            rx.blocking_recv()
        };
        match job {
            Some(job) => job(conn, now_micros(clock)),
            None => break, // every sender dropped: the store is gone
        }
    }
}

fn writer_loop(conn: &Connection, clock: &dyn Clock, jobs: &mut Receiver<Box<dyn WriteJob>>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(conn, clock, batch);
    }
}

/// Runs `batch` in one transaction, each job in its own savepoint, then commits and
/// answers every job.
fn run_batch(conn: &Connection, clock: &dyn Clock, batch: Vec<Box<dyn WriteJob>>) {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        let e = Arc::new(SqliteError::from(e));
        for job in batch {
            job.finish(Err(e.clone()));
        }
        return;
    }
    let mut ran: Vec<Box<dyn WriteJob>> = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    while let Some(mut job) = jobs.next() {
        let step = exec(conn, "SAVEPOINT job")
            .map_err(SqliteError::from)
            .and_then(|()| {
                let ok = job.run(conn, now_micros(clock));
                if conn.is_autocommit() {
                    // SQLite rolled the whole transaction back (e.g. disk full):
                    // the jobs before this one are lost too.
                    return Err(SqliteError::TransactionAborted);
                }
                if !ok {
                    exec(conn, "ROLLBACK TO job")?;
                }
                Ok(exec(conn, "RELEASE job")?)
            });
        ran.push(job);
        if let Err(e) = step {
            abort(conn, ran.into_iter().chain(jobs), e);
            return;
        }
    }
    match exec(conn, "COMMIT") {
        Ok(()) => {
            for job in ran {
                job.finish(Ok(()));
            }
        }
        Err(e) => abort(conn, ran.into_iter(), SqliteError::from(e)),
    }
}

fn abort(conn: &Connection, jobs: impl Iterator<Item = Box<dyn WriteJob>>, e: SqliteError) {
    tracing::error!(error = %e, "SQLite write transaction failed; rolling back its batch");
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "rolling back the failed batch failed");
        }
    }
    let e = Arc::new(e);
    for job in jobs {
        job.finish(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colloquy_core::ManualClock;

    fn workers() -> Workers {
        let conn = Connection::open_in_memory().expect("memory database");
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .expect("table");
        let (workers, _closed) =
            Workers::start(conn, Vec::new(), Arc::new(ManualClock::new())).expect("start");
        workers
    }

    async fn insert(w: &Workers, n: i64, then_fail: bool) -> Result<(), SqliteError> {
        w.write(move |conn, _| {
            conn.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
            if then_fail {
                return Err(SqliteError::Corrupt("failing on purpose"));
            }
            Ok(())
        })
        .await
    }

    async fn rows(w: &Workers) -> Vec<i64> {
        w.read(|conn, _| {
            let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n")?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            Ok(rows.collect::<Result<Vec<i64>, _>>()?)
        })
        .await
        .expect("read")
    }

    #[tokio::test]
    async fn a_failing_write_rolls_back_alone() {
        let w = workers();
        // Sent together, so they usually share one transaction; correct either way.
        let (a, b, c) = tokio::join!(
            insert(&w, 1, false),
            insert(&w, 2, true),
            insert(&w, 3, false)
        );
        assert!(a.is_ok() && c.is_ok());
        assert!(matches!(b, Err(SqliteError::Corrupt(_))));
        assert_eq!(rows(&w).await, vec![1, 3]);
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_worker_lives_on() {
        let w = workers();
        let panicked = w
            .write(|conn, _| -> Result<(), SqliteError> {
                conn.execute("INSERT INTO t (n) VALUES (7)", [])?;
                panic!("a bug in a job");
            })
            .await;
        assert!(matches!(panicked, Err(SqliteError::JobPanicked)));
        insert(&w, 8, false).await.expect("the writer still works");
        assert_eq!(
            rows(&w).await,
            vec![8],
            "the panicking job's insert was rolled back"
        );
    }

    #[tokio::test]
    async fn jobs_see_the_store_clock() {
        let clock = Arc::new(ManualClock::new());
        let conn = Connection::open_in_memory().expect("memory database");
        let (w, _closed) = Workers::start(conn, Vec::new(), clock.clone()).expect("start");
        let now = w.write(|_, now| Ok(now)).await.expect("write");
        assert_eq!(now, clock.now().timestamp_micros());
        clock.advance(chrono::Duration::seconds(5));
        let later = w.read(|_, now| Ok(now)).await.expect("read");
        assert_eq!(later - now, 5_000_000);
    }
}
