//! A dedicated thread per unit owns that unit's Firebird connection (the native client is
//! synchronous and not Sync). Jobs run there one at a time; the async side waits under a timeout,
//! and a worker that overran is abandoned and replaced, so a hung server cannot stall the unit.
//! A job in flight can be cancelled from outside: [`FbWorker::cancel`] ends the worker's
//! attachment at the server (Firebird 2.5 `DELETE FROM MON$ATTACHMENTS`), which rolls its
//! transaction back and makes the running statement fail at once, even while it waits for a lock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rsfbclient::prelude::*;

use tokio::sync::oneshot;

use super::{classify, connect, FbConn, FbFailure, FbFailureKind, TextColumns};
use crate::config::FirebirdConfig;

/// The connection state a job sees.
pub struct FbSession {
    database: String,
    config: FirebirdConfig,
    conn: Option<FbConn>,
    /// The unit's narrow text columns, read by the apply transactions of this connection.
    columns: TextColumns,
    /// The server's id of the open attachment (0: none), for [`FbWorker::cancel`].
    attachment: Arc<AtomicI64>,
}

impl FbSession {
    /// The connection, opened on first use or after [`FbSession::reset`].
    pub fn conn(&mut self) -> Result<&mut FbConn, FbFailure> {
        if self.conn.is_none() {
            let mut conn = connect(&self.database, &self.config).map_err(|e| classify(&e))?;
            let id: Option<(i64,)> = conn
                .query_first("SELECT CURRENT_CONNECTION FROM RDB$DATABASE", ())
                .map_err(|e| classify(&e))?;
            self.attachment
                .store(id.map(|(id,)| id).unwrap_or(0), Ordering::SeqCst);
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or_else(|| FbFailure {
            kind: FbFailureKind::Connection,
            message: "no connection".into(),
        })
    }

    /// The connection and the text-column charsets cached for it.
    pub fn conn_and_columns(&mut self) -> Result<(&mut FbConn, &mut TextColumns), FbFailure> {
        self.conn()?;
        match self.conn.as_mut() {
            Some(conn) => Ok((conn, &mut self.columns)),
            None => Err(FbFailure {
                kind: FbFailureKind::Connection,
                message: "no connection".into(),
            }),
        }
    }

    /// Drops the connection so the next job reconnects.
    pub fn reset(&mut self) {
        self.columns.forget();
        self.attachment.store(0, Ordering::SeqCst);
        if let Some(conn) = self.conn.take() {
            let _ = conn.close();
        }
    }
}

type Job = Box<dyn FnOnce(&mut FbSession) + Send>;

/// Why a job did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The job overran its timeout; the worker must be replaced.
    #[error("Firebird call timed out after {0:?}")]
    Timeout(Duration),
    /// The worker thread is gone.
    #[error("Firebird worker thread stopped")]
    Gone,
}

/// Handle to one unit's Firebird thread.
pub struct FbWorker {
    jobs: mpsc::Sender<Job>,
    database: String,
    config: FirebirdConfig,
    attachment: Arc<AtomicI64>,
}

impl FbWorker {
    /// Starts the thread (it exits when the handle is dropped and its queue drains).
    pub fn spawn(unit: i32, database: String, config: FirebirdConfig) -> std::io::Result<FbWorker> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let attachment = Arc::new(AtomicI64::new(0));
        let worker = FbWorker {
            jobs,
            database: database.clone(),
            config: config.clone(),
            attachment: attachment.clone(),
        };
        std::thread::Builder::new()
            .name(format!("fb-unit-{unit}"))
            .spawn(move || {
                let mut session = FbSession {
                    database,
                    columns: TextColumns::new(&config.charset),
                    config,
                    conn: None,
                    attachment,
                };
                while let Ok(job) = queue.recv() {
                    job(&mut session);
                }
                session.reset();
            })?;
        Ok(worker)
    }

    /// Ends the worker's attachment at the server, from a connection of its own: the job in
    /// flight fails at once and its transaction is rolled back. Bounded by the Firebird timeout;
    /// does nothing when no attachment is open.
    pub async fn cancel(&self) {
        let id = self.attachment.load(Ordering::SeqCst);
        if id == 0 {
            return;
        }
        let (database, config) = (self.database.clone(), self.config.clone());
        let limit = Duration::from_millis(config.timeout_ms.min(3_000));
        let job = tokio::task::spawn_blocking(move || -> Result<(), FbFailure> {
            let mut conn = connect(&database, &config).map_err(|e| classify(&e))?;
            conn.execute(
                "DELETE FROM MON$ATTACHMENTS WHERE MON$ATTACHMENT_ID = ?",
                (id,),
            )
            .map_err(|e| classify(&e))?;
            let _ = conn.close();
            Ok(())
        });
        match tokio::time::timeout(limit, job).await {
            Ok(Ok(Ok(()))) => tracing::info!(
                database = %self.database,
                attachment = id,
                "Firebird work in flight cancelled (attachment ended; its transaction rolls back)."
            ),
            Ok(Ok(Err(e))) => {
                tracing::warn!(database = %self.database, error = %e, "Could not cancel the Firebird work in flight.")
            }
            _ => {
                tracing::warn!(database = %self.database, "Cancelling the Firebird work in flight did not finish in time.")
            }
        }
    }

    /// Runs `job` on the unit's thread and waits up to `timeout` for its result.
    pub async fn run<T, F>(&self, timeout: Duration, job: F) -> Result<T, WorkerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut FbSession) -> T + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move |session| {
            let _ = reply.send(job(session));
        });
        self.jobs.send(job).map_err(|_| WorkerError::Gone)?;
        match tokio::time::timeout(timeout, result).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(WorkerError::Gone),
            Err(_) => Err(WorkerError::Timeout(timeout)),
        }
    }
}
