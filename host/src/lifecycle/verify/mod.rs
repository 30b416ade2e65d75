//! `ponte verify`: compares what a unit should hold — PostgreSQL's rows for it, mapped through
//! each table's transform — with what it holds. Per primary-key chunk the unit's server computes
//! a checksum (count and two sums of 64-bit row hashes, [`canon`]); only a chunk that differs
//! is bisected and, at the bottom, read row by row ([`pass`]). Suspects are rechecked after the
//! unit applied past the changes in flight ([`recheck`]), so only differences that persist are
//! reported ([`report`]).
//!
//! # Layout
//! - `canon`: canonical text per Firebird type and Firebird's HASH() on the host.
//! - `mapping`: a PostgreSQL row through the transform -> the expected unit row.
//! - `pg`, `unit`, `fb`: the queries of each side; `fb` runs Firebird work off the async threads.
//! - `pass`, `recheck`: the chunk pass and the confirmation of its suspects.
//! - `report`: results; `extra`: deleting extra rows (load and repair `--delete-extra`).

pub(crate) mod canon;
mod extra;
pub(crate) mod fb;
mod mapping;
mod pass;
mod pg;
mod recheck;
mod report;
pub(crate) mod unit;

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;

pub use extra::delete_extras;
pub use report::{TableVerify, UnitVerify};

use self::fb::FbSlot;
use self::mapping::Mapping;
use self::pass::{ChunkInput, Mode, Suspect};
use self::recheck::{Finding, Recheck};
use super::catalog::{self, PgTable};
use crate::config::{Config, Unit};
use crate::progress::Progress;
use crate::telemetry::LifecycleMetrics;
use crate::transform::{Pinned, TableBinding, TransformRegistry};

/// Sample lines kept per table.
const SAMPLES: usize = 10;

/// The transforms, loaded once per command.
pub struct Tools {
    registry: TransformRegistry,
    /// Where the events' metrics go.
    pub metrics: LifecycleMetrics,
}

impl Tools {
    /// Loads the configured tables' transforms from `[transforms] dir`.
    pub async fn open(config: &Config, metrics: LifecycleMetrics) -> anyhow::Result<Tools> {
        let bindings: Vec<TableBinding> = config
            .tables
            .iter()
            .map(|(table, t)| TableBinding {
                table: table.clone(),
                transform: t.transform.clone(),
                settings_json: config.table_settings_json(table),
            })
            .collect();
        let (limits, dir) = (
            config.transforms.limits.clone(),
            config.transforms.dir.clone(),
        );
        let registry = tokio::task::spawn_blocking(move || {
            TransformRegistry::load(limits, &dir, bindings, &prometheus::Registry::new())
        })
        .await
        .context("transform loading thread")?
        .with_context(|| {
            format!(
                "loading transforms from {}",
                config.transforms.dir.display()
            )
        })?;
        Ok(Tools { registry, metrics })
    }

    fn pin(&self, table: &str) -> anyhow::Result<Pinned> {
        self.registry
            .pin(table)
            .map_err(|e| anyhow::anyhow!("table {table}: {e}"))
    }
}

/// Verifies `tables` (all configured when empty) of every unit in `units`.
pub async fn verify_units(
    pool: &PgPool,
    config: &Config,
    tools: &Tools,
    units: &[Unit],
    tables: &[String],
    progress: &Progress,
) -> anyhow::Result<Vec<UnitVerify>> {
    let tables = catalog::resolve(pool, config, tables).await?;
    let mut out = Vec::with_capacity(units.len());
    for unit in units {
        let mut report = UnitVerify {
            unit: unit.id,
            tables: Vec::new(),
        };
        for table in &tables {
            let task = progress.task(&table.name, &unit.id.to_string(), None);
            let result =
                verify_table(pool, config, tools, unit, table, Mode::Full, Some(&task)).await;
            let result = result.unwrap_or_else(|e| TableVerify {
                table: table.name.clone(),
                error: Some(format!("{e:#}")),
                ..TableVerify::default()
            });
            task.finish(if result.is_clean() { "ok" } else { "differs" });
            save(pool, unit.id, &result).await;
            tools.metrics.verified(unit.id, &result);
            report.tables.push(result);
        }
        out.push(report);
    }
    Ok(out)
}

/// Extra rows of one table at a unit (rechecked), as unit key texts: for `load`.
pub async fn extras(
    pool: &PgPool,
    config: &Config,
    tools: &Tools,
    unit: &Unit,
    table: &PgTable,
) -> anyhow::Result<Vec<Vec<String>>> {
    let report = verify_table(pool, config, tools, unit, table, Mode::Extras, None).await?;
    Ok(report.extra_keys)
}

async fn sample_image(pool: &PgPool, table: &PgTable, unit: i32) -> anyhow::Result<Option<String>> {
    // One of the unit's rows if it has any, else any row: the mapping is the same.
    let rows = pg::chunk(pool, table, unit, None, 1).await?;
    if let Some((_, image)) = rows.into_iter().next() {
        return Ok(Some(image));
    }
    Ok(sqlx::query_scalar(&format!(
        "SELECT to_jsonb(t)::text FROM {} t LIMIT 1",
        table.relation
    ))
    .fetch_optional(pool)
    .await?)
}

async fn verify_table(
    pool: &PgPool,
    config: &Config,
    tools: &Tools,
    unit: &Unit,
    table: &PgTable,
    mode: Mode,
    task: Option<&crate::progress::Task>,
) -> anyhow::Result<TableVerify> {
    let started = Instant::now();
    let pinned = tools.pin(&table.name)?;
    let mut report = TableVerify {
        table: table.name.clone(),
        ..TableVerify::default()
    };
    let Some(sample) = sample_image(pool, table, unit.id).await? else {
        report.note =
            Some("PostgreSQL has no rows in this table: the unit's side is not known".into());
        return Ok(report);
    };
    let mut fb = FbSlot::new(unit, &config.firebird);
    let (p, name, id) = (pinned.clone(), table.name.clone(), unit.id);
    let mapping: Mapping = fb
        .run(move |c| mapping::discover(c, &p, &name, id, &sample))
        .await
        .map_err(anyhow::Error::msg)?;
    report.fb_table = mapping.fb_table.clone();
    let chunk_size = config.verify.chunk_size;
    let mut after: Option<Vec<String>> = None;
    let mut lo = None;
    let mut suspects: Vec<Suspect> = Vec::new();
    let mut identity = true;
    loop {
        let rows = pg::chunk(pool, table, unit.id, after.as_deref(), chunk_size).await?;
        let last_chunk = rows.len() < chunk_size as usize;
        after = rows.last().map(|(k, _)| k.clone()).or(after);
        let input = ChunkInput {
            rows,
            lo: lo.clone(),
            last: last_chunk,
            unit: unit.id,
            leaf: config.verify.leaf_rows as usize,
            mode,
        };
        let (m, p) = (mapping.clone(), pinned.clone());
        let done = fb
            .run(move |c| pass::check(c, &m, &p, input))
            .await
            .map_err(anyhow::Error::msg)?;
        report.expected += done.expected + done.unmappable.len() as u64;
        report.found += done.found;
        report.unit_queries += done.queries;
        report.unit_bytes += done.bytes;
        identity &= done.identity;
        for (key, why) in done.unmappable {
            report.unmappable += 1;
            report.differing += 1;
            report.repair_keys.push(key.clone());
            report.sample(SAMPLES, format!("cannot map {}: {why}", key.join("|")));
        }
        if suspects.len() < report::KEPT_KEYS {
            suspects.extend(done.suspects);
        }
        lo = done.last;
        if let Some(task) = task {
            task.inc(done.expected);
        }
        if last_chunk {
            break;
        }
    }
    let recheck = Recheck {
        pool,
        table,
        mapping: &mapping,
        pinned: &pinned,
        unit: unit.id,
        wait: Duration::from_secs(config.verify.recheck_wait_secs),
        identity,
    };
    let outcome = recheck.run(&mut fb, suspects).await?;
    report.unsettled = outcome.unsettled;
    report.note = outcome.note;
    for (key, why) in outcome.unmappable {
        report.sample(SAMPLES, format!("cannot map {}: {why}", key.join("|")));
    }
    for finding in outcome.findings {
        record(&mut report, &mapping, finding, mode);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn show(v: &Option<Vec<u8>>) -> String {
    match v {
        None => "NULL".into(),
        Some(b) => {
            let s = String::from_utf8_lossy(b);
            if s.chars().count() > 60 {
                format!("{:?}...", s.chars().take(60).collect::<String>())
            } else {
                format!("{s:?}")
            }
        }
    }
}

fn record(report: &mut TableVerify, mapping: &Mapping, finding: Finding, mode: Mode) {
    match finding {
        Finding::Extra(key) => {
            report.extra += 1;
            report.sample(SAMPLES, format!("extra {}", mapping.show_key(&key)));
            if report.extra_keys.len() < report::KEPT_KEYS {
                report
                    .extra_keys
                    .push(key.iter().map(|k| k.text()).collect());
            }
        }
        _ if mode == Mode::Extras => {}
        Finding::Missing(row, pg_key) => {
            report.missing += 1;
            report.sample(SAMPLES, format!("missing {}", mapping.show_key(&row.key)));
            report.repair_keys.push(pg_key);
        }
        Finding::Differs(want, got, pg_key) => {
            report.differing += 1;
            let cols: Vec<String> = mapping
                .columns
                .iter()
                .zip(want.values.iter().zip(got.values.iter()))
                .filter(|(_, (w, g))| w != g)
                .map(|(c, (w, g))| format!("{} pg={} unit={}", c.name, show(w), show(g)))
                .collect();
            report.sample(
                SAMPLES,
                format!(
                    "differs {}: {}",
                    mapping.show_key(&want.key),
                    cols.join("; ")
                ),
            );
            report.repair_keys.push(pg_key);
        }
    }
}

/// Keeps the last result per unit and table (best effort: a report is printed either way).
async fn save(pool: &PgPool, unit: i32, r: &TableVerify) {
    let samples = serde_json::to_value(&r.samples).unwrap_or_default();
    let done = sqlx::query(
        "INSERT INTO ponte_verify_result (unit_id, table_name, expected, found, missing, extra, \
             differing, unsettled, error, samples, seconds, checked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now()) \
         ON CONFLICT (unit_id, table_name) DO UPDATE SET expected = $3, found = $4, missing = $5, \
             extra = $6, differing = $7, unsettled = $8, error = $9, samples = $10, seconds = $11, \
             checked_at = now()",
    )
    .bind(unit)
    .bind(&r.table)
    .bind(r.expected as i64)
    .bind(r.found as i64)
    .bind(r.missing as i64)
    .bind(r.extra as i64)
    .bind(r.differing as i64)
    .bind(r.unsettled as i64)
    .bind(&r.error)
    .bind(samples)
    .bind(r.seconds)
    .execute(pool)
    .await;
    if let Err(e) = done {
        tracing::warn!(unit, table = %r.table, error = %e, "Could not store the verify result.");
    }
}
