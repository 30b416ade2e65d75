//! `ponte repair`: verifies the unit, then re-sends PostgreSQL's current image of every missing
//! or differing row as a load chunk (through the pipeline, under the unit's lifecycle lock) and,
//! only with `--delete-extra`, deletes the unit's extra rows. Idempotent: a second repair finds
//! nothing to do once the unit applied the first.

use std::time::Duration;

use sqlx::PgPool;

use super::catalog;
use super::load::{chunk, store};
use super::lock::UnitLock;
use super::verify::{self, Tools, UnitVerify};
use crate::config::{Config, Unit};
use crate::progress::Progress;

/// What repair did for one table.
#[derive(Debug, Clone, Default)]
pub struct TableRepair {
    /// Table.
    pub table: String,
    /// Rows found missing or differing.
    pub to_send: u64,
    /// Rows re-sent (PostgreSQL may have deleted some meanwhile).
    pub sent: u64,
    /// Extra rows found.
    pub extra: u64,
    /// Extra rows deleted.
    pub deleted: u64,
}

/// What repair did for one unit.
#[derive(Debug, Clone, Default)]
pub struct UnitRepair {
    /// Unit.
    pub unit: i32,
    /// The verify it acted on.
    pub verify: UnitVerify,
    /// Per table.
    pub tables: Vec<TableRepair>,
    /// Nothing was changed (--dry-run).
    pub dry_run: bool,
}

impl std::fmt::Display for UnitRepair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.verify)?;
        for t in &self.tables {
            let verb = if self.dry_run {
                "would re-send"
            } else {
                "re-sent"
            };
            let extra = match (t.extra, t.deleted, self.dry_run) {
                (0, _, _) => String::new(),
                (n, _, true) => format!("; {n} extra rows (would be deleted with --delete-extra)"),
                (n, 0, false) => format!("; {n} extra rows kept (--delete-extra deletes them)"),
                (n, d, false) => format!("; {d} of {n} extra rows deleted"),
            };
            writeln!(
                f,
                "unit {} {:<20} {verb} {} of {} rows{extra}",
                self.unit,
                t.table,
                if self.dry_run { t.to_send } else { t.sent },
                t.to_send
            )?;
        }
        Ok(())
    }
}

/// What to repair.
#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// Only these tables (empty: every configured table).
    pub tables: Vec<String>,
    /// Say what would be done; change nothing.
    pub dry_run: bool,
    /// Delete the unit's extra rows too.
    pub delete_extra: bool,
}

/// Verifies and repairs one unit.
pub async fn repair_unit(
    pool: &PgPool,
    config: &Config,
    tools: &Tools,
    unit: &Unit,
    options: &RepairOptions,
    progress: &Progress,
) -> anyhow::Result<UnitRepair> {
    let (tables, dry_run, delete_extra) = (&options.tables, options.dry_run, options.delete_extra);
    let lock = UnitLock::acquire(&config.postgres, unit.id, "repair").await?;
    let result = async {
        let mut verified = verify::verify_units(
            pool,
            config,
            tools,
            std::slice::from_ref(unit),
            tables,
            progress,
        )
        .await?;
        let verify = verified.pop().unwrap_or_default();
        if let Some(t) = verify.tables.iter().find(|t| t.error.is_some()) {
            anyhow::bail!(
                "unit {}: cannot repair {}: {}",
                unit.id,
                t.table,
                t.error.as_deref().unwrap_or_default()
            );
        }
        let mut out = UnitRepair {
            unit: unit.id,
            dry_run,
            ..UnitRepair::default()
        };
        let resolved = catalog::resolve(pool, config, tables).await?;
        let names: Vec<String> = resolved.iter().map(|t| t.name.clone()).collect();
        let run = if dry_run {
            0
        } else {
            store::start(pool, unit.id, "repair", &names).await?
        };
        let lock_timeout = Duration::from_millis(config.load.lock_timeout_ms);
        // Parents first, as the catalog orders them.
        for table in &resolved {
            let Some(found) = verify.tables.iter().find(|t| t.table == table.name) else {
                continue;
            };
            let mut done = TableRepair {
                table: table.name.clone(),
                to_send: found.repair_keys.len() as u64,
                extra: found.extra,
                ..TableRepair::default()
            };
            if !dry_run {
                for keys in found.repair_keys.chunks(config.load.chunk_size as usize) {
                    done.sent +=
                        chunk::write_keys(pool, table, unit.id, run, keys, lock_timeout).await?;
                }
                if delete_extra {
                    done.deleted =
                        verify::delete_extras(pool, config, tools, unit, table, &found.extra_keys)
                            .await?;
                }
                store::set_extra(
                    pool,
                    run,
                    &table.name,
                    found.extra as i64,
                    done.deleted as i64,
                )
                .await?;
                tools.metrics.repaired(unit.id, &table.name, done.sent);
            }
            out.tables.push(done);
        }
        if !dry_run {
            store::finish(pool, run, None).await?;
        }
        out.verify = verify;
        Ok(out)
    }
    .await;
    lock.release().await;
    result
}
