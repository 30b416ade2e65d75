//! `ponte migrate`: PostgreSQL first, then every unit's Firebird, each unit on its own thread
//! under a timeout; one unit failing is reported and does not stop the others.

use std::time::Duration;

use anyhow::{bail, Context};

use crate::config::Config;
use crate::firebird::{connect, migrate_unit};

/// Applies both sides' migrations. `units`: only these (None = all).
pub async fn migrate(config: &Config, postgres: bool, firebird: bool) -> anyhow::Result<()> {
    if postgres {
        let pool = crate::pg::connect(&config.postgres)
            .await
            .context("connecting to PostgreSQL")?;
        crate::pg::migrate(&pool)
            .await
            .context("applying migrations/postgres")?;
        tracing::info!("PostgreSQL migrations applied.");
    }
    if !firebird {
        return Ok(());
    }
    let timeout = Duration::from_millis(config.firebird.timeout_ms.max(60_000));
    let mut failed = Vec::new();
    let mut jobs = Vec::new();
    for unit in config.units() {
        let fb = config.firebird.clone();
        let db = unit.database.clone();
        jobs.push((
            unit.id,
            tokio::task::spawn_blocking(move || -> Result<Vec<i32>, String> {
                let mut conn = connect(&db, &fb).map_err(|e| format!("connect to {db}: {e}"))?;
                let applied = migrate_unit(&mut conn).map_err(|e| e.to_string());
                let _ = conn.close();
                applied
            }),
        ));
    }
    for (unit, job) in jobs {
        match tokio::time::timeout(timeout, job).await {
            Ok(Ok(Ok(applied))) => {
                tracing::info!(unit, applied = ?applied, "Firebird migrations applied.")
            }
            Ok(Ok(Err(e))) => {
                tracing::error!(unit, error = %e, "Firebird migration failed.");
                failed.push(unit);
            }
            _ => {
                tracing::error!(unit, "Firebird migration timed out or crashed.");
                failed.push(unit);
            }
        }
    }
    if !failed.is_empty() {
        bail!("Firebird migrations failed for units {failed:?}; see the errors above, fix and re-run (it is idempotent)");
    }
    Ok(())
}
