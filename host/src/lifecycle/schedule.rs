//! `[verify] every` inside `run`: verifies every served unit's tables on a schedule; results go
//! to the host's `/metrics` (`ponte_verify_*`), the logs and `ponte_verify_result`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::verify::{verify_units, Tools};
use crate::config::{Config, Unit};
use crate::progress::Progress;
use crate::telemetry::LifecycleMetrics;

/// Runs until `shutdown`: waits `every`, verifies `units`, again.
pub async fn run(
    pool: PgPool,
    config: Arc<Config>,
    units: Vec<Unit>,
    every: Duration,
    registry: prometheus::Registry,
    shutdown: CancellationToken,
) {
    let metrics = match LifecycleMetrics::register(&registry) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "Verify schedule disabled: metrics not registered.");
            return;
        }
    };
    let tools = tokio::select! {
        _ = shutdown.cancelled() => return,
        tools = Tools::open(&config, metrics) => match tools {
            Ok(t) => t,
            Err(e) => {
                let error = format!("{e:#}");
                tracing::error!(%error, "Verify schedule disabled: transforms did not load.");
                return;
            }
        },
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        tracing::info!(units = units.len(), "Scheduled verify starting.");
        let progress = Progress::lines();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            done = verify_units(&pool, &config, &tools, &units, &[], &progress) => match done {
                Ok(reports) => {
                    let differing = reports.iter().filter(|r| !r.is_clean()).count();
                    tracing::info!(units = reports.len(), differing, "Scheduled verify done.");
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "Scheduled verify failed."),
            },
        }
    }
}
