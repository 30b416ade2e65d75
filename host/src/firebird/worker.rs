//! A dedicated thread per unit owns that unit's Firebird connection (the native client is
//! synchronous and not Sync). Jobs run there one at a time; the async side waits under a timeout,
//! and a worker that overran is abandoned and replaced, so a hung server cannot stall the unit.

use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::{classify, connect, FbConn, FbFailure, FbFailureKind};
use crate::config::FirebirdConfig;

/// The connection state a job sees.
pub struct FbSession {
    database: String,
    config: FirebirdConfig,
    conn: Option<FbConn>,
}

impl FbSession {
    /// The connection, opened on first use or after [`FbSession::reset`].
    pub fn conn(&mut self) -> Result<&mut FbConn, FbFailure> {
        if self.conn.is_none() {
            let conn = connect(&self.database, &self.config).map_err(|e| classify(&e))?;
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or_else(|| FbFailure {
            kind: FbFailureKind::Connection,
            message: "no connection".into(),
        })
    }

    /// Drops the connection so the next job reconnects.
    pub fn reset(&mut self) {
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
}

impl FbWorker {
    /// Starts the thread (it exits when the handle is dropped and its queue drains).
    pub fn spawn(unit: i32, database: String, config: FirebirdConfig) -> std::io::Result<FbWorker> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("fb-unit-{unit}"))
            .spawn(move || {
                let mut session = FbSession {
                    database,
                    config,
                    conn: None,
                };
                while let Ok(job) = queue.recv() {
                    job(&mut session);
                }
                session.reset();
            })?;
        Ok(FbWorker { jobs })
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
