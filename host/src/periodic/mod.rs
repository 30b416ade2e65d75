//! Periodic sync (`[tables.T] outbox = "periodic"`, `every = "5m"`): for tables whose changes
//! can wait minutes and whose application will not be changed, `ponte run` (relay role) writes
//! the outbox rows itself in a round every `every` — no trigger, no application change, the relay
//! and the units unchanged. Design and the proof that no row is missed: docs/capture.md.
//!
//! - `sql`: the statements of a round (one table's passes, what is left, deletes).
//! - `round`: one round in one REPEATABLE READ transaction.
//! - `echo`: the upstream applier's own writes are recorded, so they are not sent back.
//! - `status`: the section of `ponte status`.

mod echo;
mod round;
mod sql;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use echo::EchoSpec;
pub use round::{Limits, More, RoundOutcome, TableResult};

use crate::config::{periodic_tables, Config};
use crate::lifecycle::catalog::PgTable;
use crate::model::Op;

/// A periodic table as the rounds read it.
#[derive(Debug, Clone)]
pub struct PeriodicTable {
    /// Relation, primary key, routing.
    pub pg: PgTable,
    /// The change column (`timestamptz` or `timestamp`), if any.
    pub change_column: Option<String>,
    /// How far before the round's bound a windowed round still reads.
    pub lookback: Duration,
    /// How often a round is due.
    pub every: Duration,
    /// `U` (an upsert at the unit) when allowed, else `I`.
    pub upsert_op: char,
    /// Whether deletes are sent (`D` allowed); otherwise a deleted row is only forgotten.
    pub deletes: bool,
}

impl PeriodicTable {
    /// What routes the rows, for messages.
    pub fn route_name(&self) -> String {
        match &self.pg.unit_expr {
            Some(expr) => format!("routing ({expr})"),
            None => "routing".into(),
        }
    }
}

/// The periodic tables of `config`, checked in PostgreSQL, parents first.
pub async fn resolve(pool: &PgPool, config: &Config) -> anyhow::Result<Vec<PeriodicTable>> {
    let names: Vec<String> = periodic_tables(config)
        .into_iter()
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let resolved = crate::lifecycle::catalog::resolve(pool, config, &names).await?;
    let mut tables = Vec::with_capacity(resolved.len());
    for pg in resolved {
        let Some(cfg) = config.tables.get(&pg.name) else {
            continue;
        };
        if let Some(column) = &cfg.change_column {
            check_change_column(pool, &pg, column).await?;
        }
        tables.push(PeriodicTable {
            change_column: cfg.change_column.clone(),
            lookback: cfg.lookback.unwrap_or(Duration::from_secs(1)),
            every: cfg.every.unwrap_or(Duration::from_secs(300)),
            upsert_op: if cfg.ops.allows(Op::Update) { 'U' } else { 'I' },
            deletes: cfg.ops.allows(Op::Delete),
            pg,
        });
    }
    if tables.iter().any(|t| t.change_column.is_some()) {
        let sees_all: bool = sqlx::query_scalar(
            "SELECT rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') \
             FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(pool)
        .await
        .context("reading the role's privileges")?;
        if !sees_all {
            let table = tables
                .iter()
                .find(|t| t.change_column.is_some())
                .map(|t| t.pg.name.clone())
                .unwrap_or_default();
            bail!(
                "table {table}: periodic sync with change_column must see when every session's \
                 transaction started (pg_stat_activity), or it could miss a row a long \
                 transaction commits late: GRANT pg_read_all_stats TO the [postgres] role, or \
                 remove change_column (each round then reads the whole table)"
            );
        }
    }
    Ok(tables)
}

/// The change column exists and is a timestamp.
async fn check_change_column(pool: &PgPool, pg: &PgTable, column: &str) -> anyhow::Result<()> {
    let found: Option<(String, bool)> = sqlx::query_as(
        "SELECT format_type(a.atttypid, a.atttypmod), EXISTS (SELECT 1 FROM pg_index i \
             WHERE i.indrelid = a.attrelid AND i.indkey[0] = a.attnum) \
         FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attname = $2 \
         AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(&pg.relation)
    .bind(column)
    .fetch_optional(pool)
    .await
    .with_context(|| format!("reading column {column} of {}", pg.relation))?;
    let name = &pg.name;
    match found {
        None => bail!(
            "table {name}: change_column {column}: {} has no such column",
            pg.relation
        ),
        Some((ty, _)) if !ty.starts_with("timestamp") => bail!(
            "table {name}: change_column {column} is {ty}; it must be a timestamp (with or \
             without time zone) that every write sets to its transaction's time, e.g. now()"
        ),
        Some((_, false)) => tracing::warn!(
            table = %name,
            column,
            "Periodic sync: no index starts with the change column; every round scans the table."
        ),
        Some(_) => {}
    }
    Ok(())
}

/// The periodic sync's metrics.
#[derive(Clone)]
struct PeriodicMetrics {
    rows: IntCounterVec,
    waiting: IntGaugeVec,
    last_round: IntGaugeVec,
    rounds: IntCounterVec,
    seconds: Histogram,
}

impl PeriodicMetrics {
    fn register(registry: &Registry) -> Result<PeriodicMetrics, prometheus::Error> {
        let m = PeriodicMetrics {
            rows: IntCounterVec::new(
                Opts::new(
                    "ponte_periodic_rows_total",
                    "Outbox rows written by the periodic sync (kind: changed, deleted)",
                ),
                &["table", "kind"],
            )?,
            waiting: IntGaugeVec::new(
                Opts::new(
                    "ponte_periodic_waiting_rows",
                    "Changed rows the last round could not send (routing refused or row locked)",
                ),
                &["table"],
            )?,
            last_round: IntGaugeVec::new(
                Opts::new(
                    "ponte_periodic_last_round_timestamp_seconds",
                    "When the table's last periodic round committed (Unix time)",
                ),
                &["table"],
            )?,
            rounds: IntCounterVec::new(
                Opts::new(
                    "ponte_periodic_rounds_total",
                    "Periodic rounds by outcome (done, busy, retry, failed)",
                ),
                &["outcome"],
            )?,
            seconds: Histogram::with_opts(HistogramOpts::new(
                "ponte_periodic_round_seconds",
                "Seconds one periodic round took",
            ))?,
        };
        registry.register(Box::new(m.rows.clone()))?;
        registry.register(Box::new(m.waiting.clone()))?;
        registry.register(Box::new(m.last_round.clone()))?;
        registry.register(Box::new(m.rounds.clone()))?;
        registry.register(Box::new(m.seconds.clone()))?;
        Ok(m)
    }

    fn record(&self, tables: &[TableResult]) {
        let now = chrono::Utc::now().timestamp();
        for t in tables {
            let name = t.name.as_str();
            self.rows
                .with_label_values(&[name, "changed"])
                .inc_by(t.sent);
            self.rows
                .with_label_values(&[name, "deleted"])
                .inc_by(t.deleted);
            self.waiting
                .with_label_values(&[name])
                .set(t.waiting as i64);
            self.last_round.with_label_values(&[name]).set(now);
        }
    }
}

/// Whether a failed round may simply run again (serialization, lock, cancel, connection).
fn retriable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("40") || c == "55P03" || c == "57014" || c.starts_with("08")
        }),
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        _ => false,
    }
}

/// Runs the periodic rounds until `shutdown`. A round that fails is retried with backoff; a
/// table that cannot be resolved (missing, no primary key) is reported and retried every minute.
pub async fn run(
    pool: PgPool,
    config: Arc<Config>,
    registry: Registry,
    shutdown: CancellationToken,
) {
    let metrics = match PeriodicMetrics::register(&registry) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "Periodic sync disabled: metrics not registered.");
            return;
        }
    };
    let tables = loop {
        match resolve(&pool, &config).await {
            Ok(t) => break t,
            Err(e) => {
                let error = format!("{e:#}");
                tracing::error!(%error, "Periodic sync waits: a periodic table is not usable.");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
            }
        }
    };
    if tables.is_empty() {
        return;
    }
    let units = config.units.ids.0.clone();
    let limits = Limits {
        pass_rows: 10_000,
        round_rows: 200_000,
        statement_timeout: config.postgres.timeout().max(Duration::from_secs(60)),
    };
    let names: Vec<&str> = tables.iter().map(|t| t.pg.name.as_str()).collect();
    tracing::info!(tables = ?names, "Periodic sync started.");
    let mut last: HashMap<String, Instant> = HashMap::new();
    let mut backoff =
        crate::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(60));
    let shortest = tables
        .iter()
        .map(|t| t.every)
        .min()
        .unwrap_or(Duration::from_secs(1));
    let mut waiting_lock =
        crate::backoff::Backoff::new(Duration::from_secs(1), shortest.max(Duration::from_secs(1)));
    let mut again = false;
    loop {
        let now = Instant::now();
        let due = |t: &PeriodicTable| last.get(&t.pg.name).is_none_or(|at| now >= *at + t.every);
        let upto = if again {
            tables.len().checked_sub(1)
        } else {
            tables.iter().rposition(due)
        };
        let Some(upto) = upto else {
            let wait = tables
                .iter()
                .filter_map(|t| {
                    last.get(&t.pg.name)
                        .map(|at| (*at + t.every).saturating_duration_since(now))
                })
                .min()
                .unwrap_or(Duration::from_secs(1));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait.max(Duration::from_millis(50))) => {}
            }
            continue;
        };
        let started = Instant::now();
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = round::run(&pool, &tables, upto, &units, limits) => r,
        };
        metrics.seconds.observe(started.elapsed().as_secs_f64());
        let pause = match outcome {
            Ok(RoundOutcome::Done { tables: done, more }) => {
                metrics.rounds.with_label_values(&["done"]).inc();
                metrics.record(&done);
                for t in &done {
                    if t.sent + t.deleted > 0 || t.waiting > 0 {
                        tracing::info!(
                            table = %t.name,
                            sent = t.sent,
                            deleted = t.deleted,
                            waiting = t.waiting,
                            "Periodic round."
                        );
                    }
                    if let Some(sample) = &t.refused {
                        tracing::error!(
                            table = %t.name,
                            rows = %sample,
                            "Periodic sync: rows name no configured unit and wait (fix the routing \
                             column or add the unit); nothing was sent for them."
                        );
                    }
                }
                for t in tables.iter().take(upto + 1) {
                    last.insert(t.pg.name.clone(), started);
                }
                backoff.reset();
                again = more != More::No;
                match more {
                    More::No => {
                        waiting_lock.reset();
                        Duration::ZERO
                    }
                    More::Capped => Duration::ZERO,
                    // A lock usually ends within a second; one held for long must not turn the
                    // rounds into a busy loop: back off up to the shortest interval.
                    More::Locked => waiting_lock.next_delay(),
                }
            }
            Ok(RoundOutcome::Busy) => {
                metrics.rounds.with_label_values(&["busy"]).inc();
                for t in tables.iter().take(upto + 1) {
                    last.insert(t.pg.name.clone(), started);
                }
                Duration::ZERO
            }
            Err(e) => {
                let kind = if retriable(&e) { "retry" } else { "failed" };
                metrics.rounds.with_label_values(&[kind]).inc();
                let delay = backoff.next_delay();
                let error = format!("{e:#}");
                if kind == "retry" {
                    tracing::debug!(%error, ?delay, "Periodic round gave way; retrying.");
                } else {
                    tracing::warn!(%error, ?delay, "Periodic round failed; retrying.");
                }
                delay
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}
