//! `ponte demo load`: several writer tasks play a sales application against PostgreSQL. Each
//! business transaction writes its rows and their outbox rows in ONE transaction; customers and
//! products go to every unit, an order and its items to the order's unit. Deterministic per seed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sqlx::PgPool;
use tokio::task::JoinSet;

use super::writer::Writer;

/// What to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Business transactions to commit in total.
    pub changes: u64,
    /// Units: customers and products go to all, each order to one of them.
    pub units: Vec<i32>,
    /// Writer tasks (connections) working at once.
    pub concurrency: usize,
    /// Seed of the writers' random choices.
    pub seed: u64,
}

/// A progress snapshot, reported every couple of seconds.
#[derive(Debug, Clone, Copy)]
pub struct LoadProgress {
    /// Transactions committed so far.
    pub transactions: u64,
    /// Of [`LoadOptions::changes`].
    pub total: u64,
    /// Outbox rows written so far.
    pub outbox_rows: u64,
    /// Since the start.
    pub elapsed: Duration,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct LoadSummary {
    /// Transactions committed.
    pub transactions: u64,
    /// Outbox rows written.
    pub outbox_rows: u64,
    /// Transactions per kind (`new_order`, `delete_customer`, ...).
    pub kinds: BTreeMap<&'static str, u64>,
    /// Wall time.
    pub elapsed: Duration,
}

#[derive(Default)]
struct Counters {
    transactions: AtomicU64,
    outbox_rows: AtomicU64,
}

/// Fails with a message that says what to run when the demo schema or ponte's tables are missing.
pub async fn check_schema(pool: &PgPool) -> anyhow::Result<()> {
    let missing: Vec<String> = sqlx::query_scalar(
        "SELECT n FROM unnest(ARRAY['customers', 'products', 'orders', 'order_items', \
         'demo_id_seq', 'pg_sync_outbox']) AS n WHERE to_regclass(n) IS NULL",
    )
    .fetch_all(pool)
    .await
    .context("checking the demo schema in PostgreSQL")?;
    if !missing.is_empty() {
        bail!(
            "PostgreSQL lacks {}: run deploy/setup.sh (it applies deploy/demo/postgres-app.sql \
             and `ponte migrate`)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Who writes the outbox rows of the demo's business transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxWrites {
    /// The application, in each transaction (the default capture mode).
    Application,
    /// Nobody in the application: `ponte outbox install` triggers do (or, without them, nobody:
    /// the baseline of the capture benchmark).
    Left,
}

/// Commits `options.changes` business transactions with `options.concurrency` writers, calling
/// `progress` every 2 s. Stops at the first failed transaction and returns its error.
pub async fn load(
    pool: &PgPool,
    options: &LoadOptions,
    progress: impl Fn(LoadProgress) + Send + Sync + 'static,
) -> anyhow::Result<LoadSummary> {
    load_with(pool, options, OutboxWrites::Application, progress).await
}

/// [`load`], with the outbox rows written by `writes`.
pub async fn load_with(
    pool: &PgPool,
    options: &LoadOptions,
    writes: OutboxWrites,
    progress: impl Fn(LoadProgress) + Send + Sync + 'static,
) -> anyhow::Result<LoadSummary> {
    if options.units.is_empty() {
        bail!("no units to load for");
    }
    check_schema(pool).await?;
    let writers = options.concurrency.clamp(1, 64);
    let counters = Arc::new(Counters::default());
    let units = Arc::new(options.units.clone());
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for index in 0..writers {
        // Writer i commits its share; the first writers take the remainder.
        let share = options.changes / writers as u64
            + u64::from((index as u64) < options.changes % writers as u64);
        let mut writer = Writer::new(
            index,
            options.seed,
            Arc::clone(&units),
            writes == OutboxWrites::Application,
        );
        let pool = pool.clone();
        let counters = Arc::clone(&counters);
        tasks.spawn(async move {
            for n in 0..share {
                let rows = writer
                    .step(&pool)
                    .await
                    .with_context(|| format!("writer {index}, transaction {}", n + 1))?;
                counters.transactions.fetch_add(1, Ordering::Relaxed);
                counters.outbox_rows.fetch_add(rows, Ordering::Relaxed);
            }
            anyhow::Ok(writer.kinds)
        });
    }
    let snapshot = {
        let counters = Arc::clone(&counters);
        let total = options.changes;
        move || LoadProgress {
            transactions: counters.transactions.load(Ordering::Relaxed),
            total,
            outbox_rows: counters.outbox_rows.load(Ordering::Relaxed),
            elapsed: started.elapsed(),
        }
    };
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    ticker.tick().await;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(Ok(done))) => {
                    for (k, n) in done {
                        *kinds.entry(k).or_default() += n;
                    }
                }
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) => bail!("a writer task failed: {e}"),
            },
            _ = ticker.tick() => progress(snapshot()),
        }
    }
    let last = snapshot();
    Ok(LoadSummary {
        transactions: last.transactions,
        outbox_rows: last.outbox_rows,
        kinds,
        elapsed: last.elapsed,
    })
}
