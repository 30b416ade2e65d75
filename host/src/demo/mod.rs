//! The demo application and the replication check: `ponte demo load` writes business changes to
//! PostgreSQL as an application would (rows and outbox rows in one transaction), `ponte demo
//! verify` compares every unit's Firebird rows with PostgreSQL. The end-to-end tests use
//! [`load()`] and [`verify()`] directly and assert on the [`VerifyReport`].
//!
//! # Layout
//! - `data`: deterministic fake rows (accents, NULLs, exact decimals, ms timestamps).
//! - `app`: the application's SQL: business statement, then its outbox rows.
//! - `writer`: one writer task's choices and state; `load`: the writers and progress.
//! - `canon`: the canonical text form of each table on both sides; `verify`: the comparison;
//!   `report`: its result.

mod app;
mod canon;
mod data;
mod load;
mod report;
mod verify;
mod writer;

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

pub use load::{
    check_schema, load, load_with, LoadOptions, LoadProgress, LoadSummary, OutboxWrites,
};
pub use report::{TableReport, UnitReport, VerifyReport};
pub use verify::{table_timezone, verify, DEFAULT_TIMEZONE};

use crate::config::{Config, IdList, Unit};

/// `ponte demo ...`
#[derive(Debug, Clone, Subcommand)]
pub enum DemoCommand {
    /// Write a stream of business changes (customers, products, orders) to PostgreSQL, each with
    /// its outbox rows in the same transaction.
    Load {
        /// Business transactions to commit.
        #[arg(long, default_value_t = 3000)]
        changes: u64,
        /// Units, e.g. "1-50" or "1-3,7" (default: every configured unit). Customers and products
        /// go to all of them, each order to one; `verify` expects every customer and product at
        /// every unit, so load for all the units you verify.
        #[arg(long)]
        units: Option<String>,
        /// Writer tasks (connections) at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Seed of the random choices (same seed, same data).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Write no outbox rows: the tables are captured by `ponte outbox install` triggers.
        #[arg(long)]
        without_outbox: bool,
    },
    /// Compare each unit's Firebird rows with what PostgreSQL says it must hold; exits non-zero
    /// when any unit differs or cannot be read.
    Verify {
        /// Units, e.g. "1-50" or "1-3,7" (default: every configured unit).
        #[arg(long)]
        units: Option<String>,
        /// Example lines shown per table that differs.
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Opens a small pool on the configured PostgreSQL.
pub async fn connect_pg(config: &Config, max_connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_millis(config.postgres.timeout_ms.max(1_000)))
        .connect(&config.postgres.url)
        .await
        .with_context(|| {
            "cannot connect to PostgreSQL ([postgres] url or PONTE_POSTGRES_URL; is it running? \
             deploy/setup.sh starts it)"
        })
}

/// The configured units, or those of `filter` ("1-3,7"), which must all be configured.
pub fn select_units(config: &Config, filter: Option<&str>) -> anyhow::Result<Vec<Unit>> {
    let all = config.units();
    let Some(filter) = filter else { return Ok(all) };
    let wanted = IdList::parse(filter).map_err(|e| anyhow::anyhow!("--units: {e}"))?;
    let mut units = Vec::with_capacity(wanted.0.len());
    for id in wanted.0 {
        match all.iter().find(|u| u.id == id) {
            Some(u) => units.push(u.clone()),
            None => bail!("--units: unit {id} is not in the config's [units] ids"),
        }
    }
    Ok(units)
}

/// Runs `ponte demo load|verify`.
pub async fn run_command(cmd: DemoCommand, config: &Config) -> anyhow::Result<()> {
    match cmd {
        DemoCommand::Load {
            changes,
            units,
            concurrency,
            seed,
            without_outbox,
        } => {
            let units: Vec<i32> = select_units(config, units.as_deref())?
                .iter()
                .map(|u| u.id)
                .collect();
            let pool = connect_pg(config, concurrency.clamp(1, 64) as u32).await?;
            println!(
                "demo load: {changes} transactions for {} units, {concurrency} writers, seed \
                 {seed}",
                units.len()
            );
            let options = LoadOptions {
                changes,
                units,
                concurrency,
                seed,
            };
            let writes = if without_outbox {
                OutboxWrites::Left
            } else {
                OutboxWrites::Application
            };
            // A bar on a terminal, JSON lines on stderr otherwise; the summary stays on stdout.
            let task = crate::progress::Progress::new().task(
                "demo load",
                "transactions",
                Some(options.changes),
            );
            let shown = task.clone();
            let summary = load_with(&pool, &options, writes, move |p| {
                shown.message(&format!("{} outbox rows", p.outbox_rows));
                shown.set(p.transactions);
            })
            .await?;
            task.finish(&format!("{} outbox rows", summary.outbox_rows));
            let kinds: Vec<String> = summary
                .kinds
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            println!(
                "demo load: done: {} transactions, {} outbox rows in {:.1}s ({})",
                summary.transactions,
                summary.outbox_rows,
                summary.elapsed.as_secs_f64(),
                kinds.join(" ")
            );
            Ok(())
        }
        DemoCommand::Verify {
            units,
            samples,
            json,
        } => {
            let units = select_units(config, units.as_deref())?;
            let pool = connect_pg(config, 2).await?;
            let report = verify(&pool, config, &units, samples).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            if !report.is_match() {
                bail!(
                    "units {:?} do not match PostgreSQL",
                    report.mismatched_units()
                );
            }
            Ok(())
        }
    }
}
