//! `ponte load`: brings a unit's configured tables to PostgreSQL's current state through the
//! normal path. Each table is cut in primary-key chunks ([`chunk`]) written to the outbox as row
//! images for the unit, parents before children; progress is persisted per chunk ([`store`]),
//! so a rerun after a crash continues where the last committed chunk ended. Once every chunk is
//! in the outbox, the unit's extra rows (keys PostgreSQL does not have) are counted and, only
//! with `--delete-extra`, deleted.

mod ahead;
pub mod chunk;
pub mod store;

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;

use super::catalog::{self, PgTable};
use super::lock::UnitLock;
use super::verify::{self, Tools};
use crate::config::{Config, Unit};
use crate::progress::Progress;

/// What to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Only these tables (empty: every configured table).
    pub tables: Vec<String>,
    /// Delete the unit's extra rows.
    pub delete_extra: bool,
    /// Skip counting extra rows (the unit's Firebird is not read at all).
    pub skip_extra: bool,
}

/// One table's result.
#[derive(Debug, Clone)]
pub struct TableLoad {
    /// Table.
    pub table: String,
    /// Rows written by this invocation.
    pub rows: u64,
    /// Rows written by the whole run (including before a resume).
    pub run_rows: i64,
    /// Chunks of the whole run.
    pub chunks: i64,
    /// Whether this invocation resumed an interrupted run.
    pub resumed: bool,
    /// Extra rows at the unit (None: not counted).
    pub extra: Option<u64>,
    /// Extra rows deleted.
    pub deleted: u64,
    /// First extra keys.
    pub extra_samples: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// One unit's result.
#[derive(Debug, Clone)]
pub struct UnitLoad {
    /// Unit.
    pub unit: i32,
    /// The run.
    pub run: i64,
    /// Per table, in load order.
    pub tables: Vec<TableLoad>,
}

impl std::fmt::Display for UnitLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for t in &self.tables {
            let extra = match t.extra {
                None => "extra not counted".to_string(),
                Some(n) if t.deleted > 0 => format!("{n} extra, {} deleted", t.deleted),
                Some(0) => "0 extra".to_string(),
                Some(n) => format!("{n} extra kept (--delete-extra deletes them)"),
            };
            writeln!(
                f,
                "unit {} {:<20} {} rows queued{} ({} in run {}, {} chunks) in {:.1}s; {}{}",
                self.unit,
                t.table,
                t.rows,
                if t.resumed { " after resuming" } else { "" },
                t.run_rows,
                self.run,
                t.chunks,
                t.seconds,
                extra,
                if t.extra_samples.is_empty() {
                    String::new()
                } else {
                    format!(": {}", t.extra_samples.join(", "))
                }
            )?;
        }
        Ok(())
    }
}

/// Loads one unit: takes its lock (a second load of the unit is refused), resumes its unfinished
/// run or starts one, writes every table's chunks, then counts (and optionally deletes) extras.
pub async fn load_unit(
    pool: &PgPool,
    config: &Config,
    tools: &Tools,
    unit: &Unit,
    options: &LoadOptions,
    progress: &Progress,
) -> anyhow::Result<UnitLoad> {
    let lock = UnitLock::acquire(&config.postgres, unit.id, "load").await?;
    let result = run_locked(pool, config, tools, unit, options, progress).await;
    lock.release().await;
    result
}

async fn run_locked(
    pool: &PgPool,
    config: &Config,
    tools: &Tools,
    unit: &Unit,
    options: &LoadOptions,
    progress: &Progress,
) -> anyhow::Result<UnitLoad> {
    let tables = catalog::resolve(pool, config, &options.tables).await?;
    let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
    let (run, resumed) = match store::unfinished(pool, unit.id, "load").await? {
        Some((run, run_tables)) if run_tables == names => (run, true),
        Some((run, run_tables)) => {
            // A different table set: the old run is closed, a new one starts.
            store::finish(pool, run, Some("superseded by a load of other tables")).await?;
            let old = run_tables;
            tracing::info!(
                unit = unit.id,
                run,
                ?old,
                "Older unfinished load superseded."
            );
            (store::start(pool, unit.id, "load", &names).await?, false)
        }
        None => (store::start(pool, unit.id, "load", &names).await?, false),
    };
    let mut out = UnitLoad {
        unit: unit.id,
        run,
        tables: Vec::new(),
    };
    let result = load_tables(
        pool, config, tools, unit, &tables, run, resumed, progress, &mut out,
    )
    .await;
    let result = match result {
        Ok(()) if options.skip_extra => Ok(()),
        Ok(()) => extras(pool, config, tools, unit, &tables, run, options, &mut out).await,
        Err(e) => Err(e),
    };
    match &result {
        Ok(()) => store::finish(pool, run, None).await?,
        Err(e) => {
            let _ = store::finish(pool, run, Some(&format!("{e:#}"))).await;
        }
    }
    result.map(|()| out)
}

#[allow(clippy::too_many_arguments)]
async fn load_tables(
    pool: &PgPool,
    config: &Config,
    tools: &Tools,
    unit: &Unit,
    tables: &[PgTable],
    run: i64,
    resumed: bool,
    progress: &Progress,
    out: &mut UnitLoad,
) -> anyhow::Result<()> {
    let lock_timeout = Duration::from_millis(config.load.lock_timeout_ms);
    let mut ahead = ahead::Ahead::new(unit, config);
    for table in tables {
        let started = Instant::now();
        let mut state = store::table(pool, run, &table.name).await?;
        let total = match state.rows_total {
            Some(total) => total,
            None => {
                let total = count_rows(pool, table, unit.id).await?;
                store::set_total(pool, run, &table.name, total).await?;
                total
            }
        };
        let task = progress.task(&table.name, &unit.id.to_string(), Some(total.max(0) as u64));
        task.set(state.rows_done.max(0) as u64);
        let mut rows = 0u64;
        let was_resumed = resumed && state.chunks_done > 0;
        while state.state == "pending" || state.state == "running" {
            let written = chunk::write(
                pool,
                table,
                unit.id,
                run,
                config.load.chunk_size,
                state.last_key.as_deref(),
                lock_timeout,
            )
            .await?;
            rows += written.rows;
            task.inc(written.rows);
            tools
                .metrics
                .load_chunk(unit.id, &table.name, run, written.rows);
            state = store::table(pool, run, &table.name).await?;
            ahead.queued(written.last_correlation, &task).await?;
        }
        task.finish(&format!("{} rows queued", state.rows_done));
        out.tables.push(TableLoad {
            table: table.name.clone(),
            rows,
            run_rows: state.rows_done,
            chunks: state.chunks_done,
            resumed: was_resumed,
            extra: state.extra_rows.map(|n| n.max(0) as u64),
            deleted: state.extra_deleted.max(0) as u64,
            extra_samples: Vec::new(),
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(())
}

async fn count_rows(pool: &PgPool, table: &PgTable, unit: i32) -> anyhow::Result<i64> {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {} t WHERE {}",
        table.relation,
        table.unit_filter(1)
    ))
    .bind(unit)
    .fetch_one(pool)
    .await
    .with_context(|| format!("counting the rows of {} for unit {unit}", table.name))
}

/// Counts the unit's extra rows per table (rechecked, so a delete still in flight is not one)
/// and deletes them with `--delete-extra`.
#[allow(clippy::too_many_arguments)]
async fn extras(
    pool: &PgPool,
    config: &Config,
    tools: &Tools,
    unit: &Unit,
    tables: &[PgTable],
    run: i64,
    options: &LoadOptions,
    out: &mut UnitLoad,
) -> anyhow::Result<()> {
    for (table, report) in tables.iter().zip(out.tables.iter_mut()) {
        let state = store::table(pool, run, &table.name).await?;
        if state.state == "done" && !options.delete_extra {
            continue;
        }
        let found = verify::extras(pool, config, tools, unit, table)
            .await
            .with_context(|| {
                format!("counting extra rows of {} at unit {}", table.name, unit.id)
            })?;
        let deleted = if options.delete_extra {
            verify::delete_extras(pool, config, tools, unit, table, &found).await?
        } else {
            0
        };
        store::set_extra(pool, run, &table.name, found.len() as i64, deleted as i64).await?;
        report.extra = Some(found.len() as u64);
        report.deleted = deleted;
        report.extra_samples = found.iter().take(5).map(|k| k.join("|")).collect();
    }
    Ok(())
}
