//! Age-based pruning of the upstream inbox and row guard.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// How often the inbox and the row guard are pruned by age.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Deletes inbox and row-guard entries past the retention (a redelivery that old is not
/// expected; the broker's delivery limit ends far sooner), every [`PRUNE_EVERY`].
pub(super) async fn prune(pool: PgPool, config: Arc<Config>, shutdown: CancellationToken) {
    let days = f64::from(config.upstream.inbox_retention_days);
    loop {
        for sql in [
            "DELETE FROM ponte_inbox WHERE applied_at < now() - make_interval(days => \
             $1::float8::int)",
            "DELETE FROM ponte_upstream_row WHERE updated_at < now() - make_interval(days => \
             $1::float8::int)",
        ] {
            match sqlx::query(sql).bind(days).execute(&pool).await {
                Ok(done) if done.rows_affected() > 0 => {
                    tracing::info!(rows = done.rows_affected(), "Upstream ledger pruned.")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Upstream ledger prune failed; will retry."),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}
