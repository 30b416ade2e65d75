//! Legacy sites as they are (docs/legacy.md): the unit's own triggers, generators and schema.
//!
//! # Layout
//! - `psql`: a tolerant reader of trigger sources (writes, generators, `NEW` stamps, the flag).
//! - `rewrite`: the guard rewrite of a trigger source, as pure text, and what it refuses.
//! - `catalog`: the unit's RDB$ facts (triggers, dependencies, generators, CHECKs, charsets).
//! - `pgcat`: PostgreSQL's catalog facts (columns, key, CHECKs).
//! - `targets`: which unit tables and columns the configuration writes.
//! - [`doctor`]: `ponte doctor --unit N`.
//! - `guard`: `ponte unit-triggers guard|unguard`, and `unit_triggers = "guard"` for `migrate`.
//! - `generators`: generators moved into a unit's id range by `capture install`.
//! - [`scaffold`]: `ponte tables scaffold`.

pub mod catalog;
pub mod doctor;
mod generators;
mod guard;
pub mod pgcat;
pub mod psql;
pub mod rewrite;
pub mod scaffold;
mod targets;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, Context};

pub use generators::{generators_into_range, GeneratorMove};
pub use guard::{apply_policy, guard_trigger, run_unit, unguard_trigger, GuardOutcome};
pub use targets::{generators, replicated, Replicated};

use crate::config::{Config, Unit};
use crate::firebird::{connect, FbConn};

/// The configured unit `id`.
pub fn unit(config: &Config, id: i32) -> anyhow::Result<Unit> {
    config
        .units()
        .into_iter()
        .find(|u| u.id == id)
        .ok_or_else(|| anyhow!("unit {id} is not configured in [units] ids"))
}

/// Runs `work` on a fresh connection to `unit` on a blocking thread, under a timeout.
pub async fn with_unit<T: Send + 'static>(
    config: &Config,
    unit: &Unit,
    work: impl FnOnce(&mut FbConn, &Config) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let (u, cfg) = (unit.clone(), config.clone());
    let timeout = Duration::from_millis(config.firebird.timeout_ms.saturating_mul(4));
    let job = tokio::task::spawn_blocking(move || -> anyhow::Result<T> {
        let mut conn = connect(&u.database, &cfg.firebird)
            .with_context(|| format!("cannot connect to unit {} ({})", u.id, u.database))?;
        let out = work(&mut conn, &cfg);
        let _ = conn.close();
        out
    });
    tokio::time::timeout(timeout, job)
        .await
        .map_err(|_| anyhow!("unit {}: timed out after {timeout:?}", unit.id))?
        .map_err(|e| anyhow!("unit {}: the task failed: {e}", unit.id))?
}

/// `ponte doctor --unit N`: the report (PostgreSQL facts read first, then the unit).
pub async fn doctor(config: &Config, unit_id: i32) -> anyhow::Result<doctor::Report> {
    let unit = unit(config, unit_id)?;
    let pool = crate::pg::connect(&config.postgres)
        .await
        .context("connecting to PostgreSQL")?;
    let mut pg = BTreeMap::new();
    for (name, table) in &config.tables {
        let facts = pgcat::facts(&pool, table.pg_table(name))
            .await
            .with_context(|| format!("reading PostgreSQL's catalog for {name}"))?;
        pg.insert(name.clone(), facts);
    }
    pool.close().await;
    with_unit(config, &unit, move |conn, cfg| {
        Ok(doctor::examine(conn, cfg, unit_id, &pg)?)
    })
    .await
}

/// `ponte unit-triggers guard|unguard --unit N [--trigger NAME ...]`.
pub async fn unit_triggers(
    config: &Config,
    unit_id: i32,
    names: Vec<String>,
    guard: bool,
) -> anyhow::Result<Vec<(String, GuardOutcome)>> {
    let unit = unit(config, unit_id)?;
    with_unit(config, &unit, move |conn, cfg| {
        Ok(run_unit(conn, cfg, &names, guard)?)
    })
    .await
}
