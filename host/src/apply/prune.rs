//! Pruning a unit's ledger by age (`[apply] ledger_retention_days`): at start and then every
//! hour, SYNC_CONTROL rows older than the retention are deleted in bounded chunks, each in its own
//! short transaction, on a connection of its own (never inside an apply transaction). A redelivery
//! older than the retention cannot happen (the broker's delivery limit ends far sooner), and the
//! row-version guard, which is never pruned, still skips a stale change.

use std::sync::Arc;
use std::time::Duration;

use rsfbclient::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Unit};
use crate::firebird::{classify, connect, FbFailure};

/// How often the ledger is pruned.
const EVERY: Duration = Duration::from_secs(3_600);
/// Ledger rows deleted per transaction.
const CHUNK: i64 = 10_000;

/// Prunes until `shutdown`.
pub(super) async fn run(unit: Unit, config: Arc<Config>, shutdown: CancellationToken) {
    loop {
        let (u, c) = (unit.clone(), config.clone());
        let job = tokio::task::spawn_blocking(move || prune(&u, &c));
        let limit = Duration::from_millis(config.firebird.timeout_ms.saturating_mul(4));
        match tokio::time::timeout(limit, job).await {
            Ok(Ok(Ok(0))) => {}
            Ok(Ok(Ok(n))) => {
                tracing::info!(
                    unit = unit.id,
                    rows = n,
                    days = config.apply.ledger_retention_days,
                    "Ledger pruned."
                );
            }
            Ok(Ok(Err(e))) => {
                tracing::warn!(unit = unit.id, error = %e, "Ledger prune failed; will retry.");
            }
            _ => tracing::warn!(
                unit = unit.id,
                "Ledger prune did not finish in time; will retry."
            ),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Deletes the expired rows; returns how many.
fn prune(unit: &Unit, config: &Config) -> Result<u64, FbFailure> {
    let mut conn = connect(&unit.database, &config.firebird).map_err(|e| classify(&e))?;
    let days = i64::from(config.apply.ledger_retention_days);
    let mut total = 0u64;
    loop {
        let sql = format!(
            "DELETE FROM SYNC_CONTROL WHERE APPLIED_AT < DATEADD(-{days} DAY TO CURRENT_TIMESTAMP) \
             ROWS {CHUNK}"
        );
        let deleted = conn.execute(&sql, ()).map_err(|e| classify(&e))?;
        conn.commit().map_err(|e| classify(&e))?;
        total += deleted as u64;
        if (deleted as i64) < CHUNK {
            break;
        }
    }
    let _ = conn.close();
    Ok(total)
}
