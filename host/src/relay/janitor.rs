//! The janitor: rescues rows stuck in `processing` (a relay that died mid-batch) and samples the
//! backlog gauges.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::outbox::{backlog, rescue_stuck};
use crate::config::Config;
use crate::telemetry::Metrics;

/// The janitor and the backlog sampler, until `shutdown`.
pub async fn janitor(
    pool: PgPool,
    config: Arc<Config>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let every = Duration::from_secs(config.relay.janitor_interval_secs.max(1));
    let served: Vec<i32> = config.units().iter().map(|u| u.id).collect();
    let mut unserved = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match rescue_stuck(&pool, config.relay.processing_timeout_secs as f64).await {
            Ok(n) => metrics.relay_rescued(n),
            Err(e) => tracing::warn!(error = %e, "Janitor query failed."),
        }
        if let Ok(rows) = backlog(&pool).await {
            metrics.outbox_backlog_sampled(&served, &rows);
            unserved = warn_unserved(&served, &rows, unserved);
        }
    }
}

/// Pending rows for a unit missing from `[units]` wait (another instance may serve it, or the
/// unit is about to be added): they are neither lost nor refused, but an operator must see them.
/// Warns when that backlog changes; returns it for the next round.
fn warn_unserved(
    served: &[i32],
    rows: &[(i32, String, i64)],
    before: Vec<(i32, i64)>,
) -> Vec<(i32, i64)> {
    let now: Vec<(i32, i64)> = rows
        .iter()
        .filter(|(unit, status, _)| status == "pending" && !served.contains(unit))
        .map(|(unit, _, n)| (*unit, *n))
        .collect();
    if !now.is_empty() && now != before {
        tracing::warn!(
            units = ?now,
            "Outbox rows are pending for units this instance does not serve (not in [units]); \
             they wait for a relay configured with those units."
        );
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_rows_of_unserved_units_are_reported() {
        let rows = vec![
            (1, "pending".to_string(), 5),
            (9, "pending".to_string(), 3),
            (9, "dead".to_string(), 1),
        ];
        assert_eq!(warn_unserved(&[1, 2], &rows, Vec::new()), vec![(9, 3)]);
        assert_eq!(
            warn_unserved(&[1, 2], &rows[..1], vec![(9, 3)]),
            Vec::<(i32, i64)>::new()
        );
    }
}
