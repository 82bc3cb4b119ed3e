//! The one connection that does all of the SQLite store's work, on a thread of its own, with
//! group commit.
//!
//! Why not a pool of async connections: SQLite has one writer, so every write waits for the one
//! before it, and an async driver pays two thread hand-offs per *statement* while it holds that
//! turn (the benchmark's profile showed sends spending their time in thread wake-ups, not in
//! SQLite). Here an operation is a closure that runs start to finish on this thread, statements
//! prepared once and cached; a caller pays one hand-off per *operation*.
//!
//! Group commit: the thread takes every operation that is waiting when it wakes (up to
//! `MAX_BATCH`), runs them one after another inside one `BEGIN IMMEDIATE` transaction, each in
//! a savepoint of its own, and commits once. An operation that fails rolls back only its own
//! savepoint. Nobody hears back before the `COMMIT` did, so an answered write is a written write;
//! if the `COMMIT` fails, every operation of the batch gets that error. Under light load a batch
//! is one operation and this is an ordinary transaction.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Duration;

use otpgate_core::StoreError;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{mpsc, oneshot};

/// Operations per transaction at most: bounds how long one commit keeps the others waiting.
const MAX_BATCH: usize = 256;
/// Operations waiting for the thread at most; senders wait (asynchronously) beyond it.
const QUEUE: usize = 4096;
/// How often the checkpointer copies committed WAL pages back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// WAL pages (4 KiB) at which the working connection checkpoints itself (SQLite's default).
/// By then the checkpointer has copied nearly all of them, so it copies the rest (or finds the
/// checkpointer busy and returns at once), and the WAL file starts over: only a connection that
/// checkpoints between its own writes can see the log fully copied while writes keep coming.
const WRITER_CHECKPOINT_PAGES: i64 = 1000;

/// A handle on the connection thread; cloning shares the thread.
#[derive(Clone, Debug)]
pub(crate) struct Conn {
    jobs: mpsc::Sender<Job>,
}

enum Job {
    /// Runs inside the batch's transaction.
    Write(Box<dyn Op>),
    /// Runs on its own, outside any transaction (a checkpoint cannot run inside one).
    Alone(Box<dyn Op>),
    /// Ends the thread once everything queued before it is done; the connection closes with it.
    Close(oneshot::Sender<()>),
}

/// An operation waiting to run; type-erased so one queue carries every result type.
trait Op: Send {
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Reply>;
    fn fail(self: Box<Self>, error: StoreError);
}

/// An operation that ran and waits for its transaction's outcome before its caller hears.
trait Reply: Send {
    fn succeeded(&self) -> bool;
    fn send(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Pending<F, T> {
    op: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

struct Done<T> {
    result: Result<T, StoreError>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Op for Pending<F, T>
where
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Reply> {
        let Pending { op, reply } = *self;
        if reply.is_closed() {
            // The caller gave up waiting (the request deadline passed, the client hung up): it has
            // answered already, so writing now would store what nobody was told about.
            return Box::new(Done { result: Err(StoreError::Unavailable("the caller gave up".into())), reply });
        }
        // A panic is a bug in one operation; it must not take the store down for everyone.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| op(conn)))
            .unwrap_or_else(|_| Err(StoreError::Internal("a SQLite operation panicked".into())));
        Box::new(Done { result, reply })
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

impl<T: Send + 'static> Reply for Done<T> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn send(self: Box<Self>, commit: Result<(), StoreError>) {
        // The caller may have gone (timeout, client hung up): nobody to tell, the write stands.
        let _ = self.reply.send(commit.and(self.result));
    }
}

impl Conn {
    /// Opens `path` (which must exist with its schema in place) on a new thread.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = connect(path)?;
        configure(&conn)?;
        let checkpoints = connect(path)?;
        checkpoints.busy_timeout(Duration::from_secs(5)).map_err(classify)?;
        let (jobs, queue) = mpsc::channel(QUEUE);
        // The checkpointer stops when the working thread ends and drops `running`.
        let (running, stopped) = std::sync::mpsc::channel::<()>();
        let spawn_failed = |e: std::io::Error| StoreError::Unavailable(format!("cannot start a SQLite thread: {e}"));
        let checkpointer = std::thread::Builder::new()
            .name("otpgate-sqlite-ckpt".into())
            .spawn(move || checkpointer(checkpoints, stopped))
            .map_err(spawn_failed)?;
        std::thread::Builder::new()
            .name("otpgate-sqlite".into())
            .spawn(move || {
                let closers = serve(conn, queue);
                // Closed means every connection is closed (the last one folds the WAL into the
                // file): stop the checkpointer and wait for it before saying so.
                drop(running);
                let _ = checkpointer.join();
                for done in closers {
                    let _ = done.send(());
                }
            })
            .map_err(spawn_failed)?;
        Ok(Conn { jobs })
    }

    /// Runs `op` in a transaction (shared with whatever else is waiting) and answers once it is
    /// committed. `op` returning an error rolls back what `op` did, and only that.
    pub(crate) async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.submit(op, Job::Write).await
    }

    /// Runs `op` on its own, outside any transaction.
    pub(crate) async fn alone<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.submit(op, Job::Alone).await
    }

    async fn submit<T, F>(&self, op: F, kind: fn(Box<dyn Op>) -> Job) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(kind(Box::new(Pending { op, reply }))).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Finishes what is queued, then closes both connections (SQLite folds the WAL into the
    /// database file as its last connection closes). Later operations answer `Unavailable`.
    pub(crate) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Job::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    Connection::open_with_flags(path, flags).map_err(classify)
}

/// Copies committed WAL pages back into the database file every `CHECKPOINT_EVERY`, on a
/// connection of its own, so the working thread never stops for it. PASSIVE: it takes no lock
/// a writer needs and copies what no reader still needs; once it has copied everything, the next
/// write starts the WAL file over, so the file stays small.
fn checkpointer(conn: Connection, stopped: std::sync::mpsc::Receiver<()>) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "SQLite checkpoint failed; the next one retries");
        }
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the SQLite store is closed".into())
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    configure_pragmas(conn).map_err(classify)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(classify)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!("SQLite cannot use WAL here (journal_mode {mode})")));
    }
    Ok(())
}

fn configure_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    // Other processes on the same file (the `otpgate users` commands) wait for the lock this long.
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    // NORMAL in WAL mode: durable against a crash of the process, fsync at checkpoints.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Deleted rows are overwritten with zeros, not left in free space (erasure, retention).
    conn.pragma_update(None, "secure_delete", true)?;
    // Most checkpoint work is the checkpointer thread's (see `checkpointer`): done here alone, a
    // checkpoint stalled every queued operation for tens of milliseconds (the p99 of the
    // half-load benchmark).
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
    Ok(())
}

/// The thread: wait for work, take all that is waiting, run it, repeat until closed.
fn serve(conn: Connection, mut queue: mpsc::Receiver<Job>) -> Vec<oneshot::Sender<()>> {
    let mut batch: Vec<Box<dyn Op>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Write(op) => {
                    batch.push(op);
                    if batch.len() < MAX_BATCH {
                        next = queue.try_recv().ok();
                    }
                }
                Job::Alone(op) => {
                    commit_batch(&conn, &mut batch);
                    op.run(&conn).send(Ok(()));
                    next = queue.try_recv().ok();
                }
                Job::Close(done) => {
                    commit_batch(&conn, &mut batch);
                    drop(conn);
                    queue.close();
                    // Whatever raced in after the close hears that the store is closed.
                    let mut closers = vec![done];
                    while let Ok(job) = queue.try_recv() {
                        match job {
                            Job::Write(op) | Job::Alone(op) => op.fail(closed()),
                            Job::Close(done) => closers.push(done),
                        }
                    }
                    return closers;
                }
            }
        }
        commit_batch(&conn, &mut batch);
    }
    // Every handle is gone: nobody is waiting for the close.
    Vec::new()
}

/// Runs `batch` in one transaction and answers everyone once it committed. With more than one
/// operation each runs in a savepoint of its own, so a failing one rolls back only itself; a lone
/// operation that fails rolls back the transaction.
fn commit_batch(conn: &Connection, batch: &mut Vec<Box<dyn Op>>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = control(conn, "BEGIN IMMEDIATE") {
        let error = classify(e);
        for op in batch.drain(..) {
            op.fail(error.clone());
        }
        return;
    }
    if batch.len() == 1 {
        let reply = batch.pop().map(|op| op.run(conn));
        let Some(reply) = reply else { return };
        let end = if reply.succeeded() { control(conn, "COMMIT") } else { control(conn, "ROLLBACK") };
        let end = end.map_err(classify);
        if end.is_err() && !conn.is_autocommit() {
            let _ = control(conn, "ROLLBACK");
        }
        reply.send(end);
        return;
    }
    let mut replies: Vec<Box<dyn Reply>> = Vec::with_capacity(batch.len());
    for op in batch.drain(..) {
        if let Err(e) = control(conn, "SAVEPOINT op") {
            op.fail(classify(e));
            continue;
        }
        let reply = op.run(conn);
        let end = if reply.succeeded() {
            control(conn, "RELEASE op")
        } else {
            control(conn, "ROLLBACK TO op").and_then(|()| control(conn, "RELEASE op"))
        };
        if let Err(e) = end {
            // The savepoint is in an unknown state: the whole batch must not commit.
            let error = classify(e);
            let _ = control(conn, "ROLLBACK");
            reply.send(Err(error.clone()));
            for reply in replies {
                reply.send(Err(error.clone()));
            }
            return;
        }
        replies.push(reply);
    }
    let commit = control(conn, "COMMIT").map_err(classify);
    if commit.is_err() && !conn.is_autocommit() {
        let _ = control(conn, "ROLLBACK");
    }
    for reply in replies {
        reply.send(commit.clone());
    }
}

/// A transaction-control statement, prepared once (they run several times per batch).
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Trouble with the file or the lock is "unavailable" (503, retry later); anything else is a bug.
pub(crate) fn classify(e: rusqlite::Error) -> StoreError {
    let unavailable = match &e {
        rusqlite::Error::SqliteFailure(failure, _) => matches!(
            failure.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::OutOfMemory
        ),
        _ => false,
    };
    if unavailable { StoreError::Unavailable(e.to_string()) } else { StoreError::Internal(e.to_string()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, std::path::PathBuf, Conn) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (x INTEGER NOT NULL)").unwrap();
        let conn = Conn::open(&path).unwrap();
        (dir, path, conn)
    }

    fn rows(path: &Path) -> Vec<i64> {
        let other = Connection::open(path).unwrap();
        let mut s = other.prepare("SELECT x FROM t ORDER BY x").unwrap();
        s.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    /// Starts an operation that keeps the thread busy for `busy`, and returns once it runs, so
    /// whatever is submitted next queues behind it.
    async fn hold_the_thread(conn: &Conn, busy: Duration) -> tokio::task::JoinHandle<Result<(), StoreError>> {
        let (started, running) = oneshot::channel();
        let conn = conn.clone();
        let first = tokio::spawn(async move {
            conn.run(move |_| {
                started.send(()).unwrap();
                std::thread::sleep(busy);
                Ok(())
            })
            .await
        });
        running.await.unwrap();
        first
    }

    fn insert(conn: &Connection, x: i64) -> Result<(), StoreError> {
        conn.execute("INSERT INTO t (x) VALUES (?)", [x]).map(drop).map_err(classify)
    }

    #[tokio::test]
    async fn a_failing_operation_in_a_batch_rolls_back_only_itself() {
        let (_dir, path, conn) = store();
        // The first operation holds the thread so the others queue up and run as one batch.
        let first = hold_the_thread(&conn, Duration::from_millis(100)).await;
        let others: Vec<_> = (0..40)
            .map(|x| {
                let conn = conn.clone();
                tokio::spawn(async move {
                    conn.run(move |c| {
                        insert(c, x)?;
                        if x % 2 == 1 { Err(StoreError::Internal("odd".into())) } else { Ok(x) }
                    })
                    .await
                })
            })
            .collect();
        first.await.unwrap().unwrap();
        for (x, answer) in others.into_iter().enumerate() {
            let answer = answer.await.unwrap();
            assert_eq!(answer.is_ok(), x % 2 == 0, "operation {x}: {answer:?}");
        }
        assert_eq!(rows(&path), (0..40).step_by(2).collect::<Vec<i64>>());
    }

    #[tokio::test]
    async fn a_lone_failing_operation_writes_nothing_and_an_answered_one_is_on_disk() {
        let (_dir, path, conn) = store();
        let failed = conn.run(|c| insert(c, 1).and(Err::<(), _>(StoreError::Internal("no".into())))).await;
        assert!(failed.is_err());
        conn.run(|c| insert(c, 2)).await.unwrap();
        // Another connection (another process, in effect) sees the answered write at once.
        assert_eq!(rows(&path), vec![2]);
    }

    #[tokio::test]
    async fn a_panicking_operation_is_an_internal_error_and_the_store_carries_on() {
        let (_dir, path, conn) = store();
        let answer = conn.run(|_| -> Result<(), StoreError> { panic!("bug") }).await;
        assert!(matches!(answer, Err(StoreError::Internal(_))), "{answer:?}");
        conn.run(|c| insert(c, 7)).await.unwrap();
        assert_eq!(rows(&path), vec![7]);
    }

    #[tokio::test]
    async fn a_closed_store_answers_unavailable() {
        let (_dir, path, conn) = store();
        conn.run(|c| insert(c, 1)).await.unwrap();
        conn.close().await;
        let answer = conn.run(|c| insert(c, 2)).await;
        assert!(matches!(answer, Err(StoreError::Unavailable(_))), "{answer:?}");
        // Both connections are closed: the last one folded the WAL into the file and removed it.
        assert!(!path.with_extension("db-wal").exists(), "the WAL outlived the close");
        assert_eq!(rows(&path), vec![1]);
    }

    #[tokio::test]
    async fn the_checkpointer_copies_committed_pages_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE m (v TEXT NOT NULL)").unwrap();
        let conn = Conn::open(&path).unwrap();
        // Far below the working connection's own checkpoint threshold: only the checkpointer
        // thread can move this row out of the WAL while the store stays open.
        conn.run(|c| c.execute("INSERT INTO m (v) VALUES ('checkpoint-marker-8c1f')", []).map_err(classify))
            .await
            .unwrap();
        let in_file = || std::fs::read(&path).unwrap().windows(22).any(|w| w == b"checkpoint-marker-8c1f");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !in_file() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(in_file(), "the row never reached the database file");
    }

    #[tokio::test]
    async fn an_operation_whose_caller_gave_up_before_it_ran_does_not_run() {
        let (_dir, path, conn) = store();
        let first = hold_the_thread(&conn, Duration::from_millis(200)).await;
        // Queued behind the first, and abandoned (as a request deadline would) before it runs.
        let gave_up = tokio::time::timeout(Duration::from_millis(20), conn.run(|c| insert(c, 1))).await;
        assert!(gave_up.is_err(), "the deadline should have passed first");
        first.await.unwrap().unwrap();
        conn.run(|c| insert(c, 2)).await.unwrap();
        assert_eq!(rows(&path), vec![2]);
    }
}
