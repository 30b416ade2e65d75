//! What the running host keeps checking and telling others: whether PostgreSQL answers (for
//! `/readyz`), and what its consumers hold back (written to `ponte_consumer_state` every few
//! seconds, so `ponte status`, a separate process, can say which unit is stalled and why).

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::telemetry::{Board, Flow, Readiness};

/// How often PostgreSQL is probed.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// How often the held state is written.
const PUBLISH_EVERY: Duration = Duration::from_secs(3);

/// Probes PostgreSQL (`SELECT 1` on a pooled connection, under the pool's timeouts) until
/// `shutdown`, recording the result for `/readyz`.
pub(super) async fn probe_postgres(
    pool: PgPool,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    loop {
        let probe = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool);
        let ok = matches!(
            tokio::time::timeout(PROBE_EVERY * 2, probe).await,
            Ok(Ok(1))
        );
        readiness.set_postgres(ok);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PROBE_EVERY) => {}
        }
    }
}

/// Writes every unit's held state to `ponte_consumer_state` until `shutdown` (then once more,
/// with nothing held: a stopped host holds nothing). Failures are retried on the next round.
pub(super) async fn publish_held(pool: PgPool, board: Board, shutdown: CancellationToken) {
    let host = format!(
        "{}:{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()),
        std::process::id()
    );
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(PUBLISH_EVERY) => false,
        };
        let rows = board.held_all();
        let (mut units, mut flows, mut held, mut prefetch, mut reasons, mut since) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for ((unit, flow), state) in rows {
            units.push(unit);
            flows.push(flow.as_str().to_string());
            held.push(if stopping { 0 } else { state.held as i32 });
            prefetch.push(state.prefetch as i32);
            reasons.push(if stopping {
                String::new()
            } else {
                state.reason
            });
            since.push(state.since.filter(|_| !stopping));
        }
        let write = sqlx::query(
            "INSERT INTO ponte_consumer_state (unit_id, flow, host, held, prefetch, reason, since) \
             SELECT u, f, $7, h, p, r, s \
             FROM unnest($1::int[], $2::text[], $3::int[], $4::int[], $5::text[], \
                         $6::timestamptz[]) AS x(u, f, h, p, r, s) \
             ON CONFLICT (unit_id, flow, host) DO UPDATE SET held = EXCLUDED.held, \
                 prefetch = EXCLUDED.prefetch, reason = EXCLUDED.reason, since = EXCLUDED.since, \
                 updated_at = now()",
        )
        .bind(&units)
        .bind(&flows)
        .bind(&held)
        .bind(&prefetch)
        .bind(&reasons)
        .bind(&since)
        .bind(&host)
        .execute(&pool)
        .await;
        if let Err(e) = write {
            tracing::debug!(error = %e, "Consumer state not written; retrying next round.");
        }
        if stopping {
            return;
        }
    }
}

impl Flow {
    /// Parses `downstream` / `upstream`.
    pub fn parse(text: &str) -> Option<Flow> {
        match text {
            "downstream" => Some(Flow::Downstream),
            "upstream" => Some(Flow::Upstream),
            _ => None,
        }
    }
}
