//! `ponte migrate`: PostgreSQL first, then every unit's Firebird, each unit on its own thread
//! under a timeout; one unit failing is reported and does not stop the others.

use std::time::Duration;

use anyhow::{bail, Context};

use crate::config::Config;
use crate::firebird::{connect, migrate_unit};
use crate::progress::Progress;

/// Applies both sides' migrations (`postgres`, `firebird`: which sides).
pub async fn migrate(config: &Config, postgres: bool, firebird: bool) -> anyhow::Result<()> {
    migrate_with(config, postgres, firebird, None).await
}

/// [`migrate`], counting the units done on `progress` (`ponte migrate` over 50 units).
pub async fn migrate_with(
    config: &Config,
    postgres: bool,
    firebird: bool,
    progress: Option<&Progress>,
) -> anyhow::Result<()> {
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
        let cfg = config.clone();
        let db = unit.database.clone();
        jobs.push((
            unit.id,
            tokio::task::spawn_blocking(move || -> Result<Vec<i32>, String> {
                let mut conn = connect(&db, &fb).map_err(|e| format!("connect to {db}: {e}"))?;
                let applied = migrate_unit(&mut conn).map_err(|e| e.to_string());
                // `unit_triggers = "guard"`: after the schema (PONTE_TRIGGER_SOURCE) exists.
                let guarded = applied.as_ref().map_err(Clone::clone).and_then(|_| {
                    crate::legacy::apply_policy(&mut conn, &cfg).map_err(|e| e.to_string())
                });
                let _ = conn.close();
                for (trigger, outcome) in guarded? {
                    tracing::info!(trigger, %outcome, "Unit trigger guard policy applied.");
                }
                applied
            }),
        ));
    }
    let task = progress.map(|p| p.task("firebird migrations", "units", Some(jobs.len() as u64)));
    for (unit, job) in jobs {
        let outcome = tokio::time::timeout(timeout, job).await;
        if let Some(task) = &task {
            task.inc(1);
        }
        match outcome {
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
    if let Some(task) = &task {
        task.finish(&format!("{} failed", failed.len()));
    }
    if !failed.is_empty() {
        bail!(
            "Firebird migrations failed for units {failed:?}; see the errors above, fix and \
             re-run (it is idempotent)"
        );
    }
    Ok(())
}
