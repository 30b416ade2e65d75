//! Capture at the units (Firebird -> broker): `ponte capture install|remove` generates the
//! SYNC_LOG triggers of the configured tables, and one [`CapturePublisher`] per unit drains the
//! log to the broker. The host's own writes carry a transaction context flag that the triggers
//! skip, so nothing ponte applies is captured again (no echo). Design: docs/upstream.md.

mod install;
mod log;
pub mod periodic;
mod publisher;
mod shape;

use std::time::Duration;

use anyhow::Context;

pub use install::{install_unit, remove_unit, trigger_sql, InstallReport, TRIGGER_PREFIX};
pub use publisher::CapturePublisher;
pub use shape::{split_key, TableShape};

use crate::amqp::{AmqpError, PublishFailure};
use crate::config::{Config, Unit};
use crate::firebird::WorkerError;
use crate::firebird::{classify, FbFailure};

/// Why a capture round failed. Every kind is retried with backoff; nothing is deleted from the
/// log that was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Reading or pruning the log failed.
    #[error("unit Firebird: {0}")]
    Firebird(#[from] FbFailure),
    /// The unit's Firebird thread timed out or stopped.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// The broker could not be reached or the queue declared.
    #[error(transparent)]
    Broker(#[from] AmqpError),
    /// The broker did not confirm a message (returned, nacked, timed out).
    #[error("publish failed: {0}")]
    Publish(PublishFailure),
    /// A message could not be encoded.
    #[error("cannot encode a message: {0}")]
    Encode(String),
    /// The Firebird thread could not be started.
    #[error("cannot start the Firebird thread: {0}")]
    Thread(String),
}

impl CaptureError {
    /// Whether retrying may succeed without an operator (a missing install or table will not).
    pub fn is_retriable(&self) -> bool {
        match self {
            CaptureError::Firebird(f) => f.is_retriable(),
            CaptureError::Encode(_) | CaptureError::Thread(_) => false,
            _ => true,
        }
    }
}

/// `ponte capture install|remove` on `units`, one after the other; prints what was done.
pub async fn run_command(config: &Config, units: &[Unit], install: bool) -> anyhow::Result<()> {
    for unit in units {
        let (u, cfg, id) = (unit.clone(), config.clone(), unit.id);
        let timeout = Duration::from_millis(config.firebird.timeout_ms.saturating_mul(4));
        let job = tokio::task::spawn_blocking(move || -> Result<String, FbFailure> {
            let mut conn =
                crate::firebird::connect(&u.database, &cfg.firebird).map_err(|e| classify(&e))?;
            let text = if install {
                let r = install_unit(&mut conn, &cfg, id).map_err(|e| classify(&e))?;
                format!(
                    "triggers on {:?}; periodic (baseline taken now) {:?}; dropped {:?}; \
                     INDICE raised {:?}; generators raised {:?}; unit triggers guarded {:?}",
                    r.tables, r.periodic, r.dropped, r.indice, r.generators, r.guarded
                )
            } else {
                let dropped = remove_unit(&mut conn).map_err(|e| classify(&e))?;
                format!("dropped {dropped:?}")
            };
            let _ = conn.close();
            Ok(text)
        });
        let text = tokio::time::timeout(timeout, job)
            .await
            .with_context(|| format!("unit {id}: timed out after {timeout:?}"))?
            .with_context(|| format!("unit {id}: the task failed"))?
            .with_context(|| format!("unit {id} ({})", unit.database))?;
        println!("unit {id}: {text}");
    }
    Ok(())
}
