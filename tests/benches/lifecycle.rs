//! `ponte load` and `ponte verify` against the raw limits of the same servers, in one run:
//!   raw insert  PRODUTOS rows packed 25 per EXECUTE BLOCK, one transaction per apply batch
//!               (what this Firebird takes for the table)
//!   load        `ponte load --unit 1 --table products` of `PONTE_BENCH_ROWS` rows while the demo
//!               application writes live changes for the unit: from the command's start to the
//!               last chunk row in the unit's ledger, and the live changes' lag meanwhile
//!   verify      `ponte verify --unit 1 --table products` of the matching table: rows/s, and
//!               bytes read from the unit per row against reading every row's values
//! Every pass checks its work: the unit ends with exactly PostgreSQL's rows and verify is clean.
//! Run: `cargo bench -p ponte-tests --bench lifecycle` (`PONTE_BENCH_ROWS`, default 200,000;
//! the figure is 1,000,000).

use std::time::{Duration, Instant};

use anyhow::ensure;
use ponte::daemon::Roles;
use ponte::lifecycle::{self, Tools};
use ponte::progress::Progress;
use ponte::telemetry::LifecycleMetrics;
use ponte_tests::bench::raw_packed_inserts;
use ponte_tests::firebird::connect;
use ponte_tests::measure::{apply_lags, env_or, percentile, Rows};
use ponte_tests::{paced, TestEnv, UnitSpec};
use rsfbclient::prelude::*;

/// Bench rows get ids from here on (the demo application's ids stay far below).
const FIRST_ID: i64 = 10_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: i64 = env_or("PONTE_BENCH_ROWS", 200_000);
    let mut env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await?;
    env.install_transforms(&["customers", "orders", "generic"])?;
    env.extra_toml = "[load]\nchunk_size = 5000\n".into();
    let result = run(&env, rows).await;
    env.cleanup().await;
    result
}

async fn run(env: &TestEnv, rows: i64) -> anyhow::Result<()> {
    let config = env.config()?;
    let db = env.units[0].1.clone();
    eprintln!("lifecycle bench: raw packed insert...");
    let raw_rows = rows.min(100_000);
    let batch = config.apply.batch_size;
    let raw = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
            let mut conn = connect(&db)?;
            let rate = raw_packed_inserts(&mut conn, 90_000_000..90_000_000 + raw_rows, batch)?;
            conn.execute("DELETE FROM PRODUTOS WHERE ID >= 90000000", ())?;
            let _ = conn.close();
            Ok(rate)
        })
        .await??
    };

    eprintln!("lifecycle bench: {rows} products rows in PostgreSQL...");
    sqlx::query(
        "INSERT INTO products (id, sku, description, price, stock, discontinued) \
         SELECT g, 'SKU-' || g, 'Açúcar cristal 5 kg nº ' || g, 1234567.89, g % 1000, g % 7 = 0 \
         FROM generate_series($1::bigint, $2::bigint) g",
    )
    .bind(FIRST_ID)
    .bind(FIRST_ID + rows - 1)
    .execute(&env.pg)
    .await?;

    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await?;
    let tools = Tools::open(&config, LifecycleMetrics::detached()?).await?;
    let progress = Progress::new();
    let unit = config
        .units()
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no unit"))?;

    eprintln!("lifecycle bench: load while the application writes...");
    let before: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM pg_sync_outbox")
        .fetch_one(&env.pg)
        .await?;
    let (writing, writer) = paced::paced_writer(env, 2, 20, Duration::from_millis(200), 7);
    let started = Instant::now();
    let options = lifecycle::LoadOptions {
        tables: vec!["products".into()],
        delete_extra: false,
        skip_extra: true,
    };
    let loaded = lifecycle::load_unit(&env.pg, &config, &tools, &unit, &options, &progress).await?;
    let queued_secs = started.elapsed().as_secs_f64();
    let queued: u64 = loaded.tables.iter().map(|t| t.rows).sum();
    ensure!(queued as i64 >= rows, "load queued {queued} of {rows} rows");
    env.wait_outbox_drained(Duration::from_secs(1800)).await?;
    // Published is not applied: the unit's queue still holds the tail of the load.
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut last_applied = 0;
    while last_applied < rows && Instant::now() < deadline {
        last_applied = bench_rows_at_unit(&db).await?;
        if last_applied < rows {
            eprintln!("lifecycle bench: unit holds {last_applied} of {rows} rows...");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let load_secs = started.elapsed().as_secs_f64();
    ensure!(
        last_applied == rows,
        "unit holds {last_applied} of {rows} rows after 30 min"
    );
    writing.cancel();
    let live = writer.await?;
    let after: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM pg_sync_outbox")
        .fetch_one(&env.pg)
        .await?;
    let lag = apply_lags(env, before + 1, after, Rows::Live).await?;

    eprintln!("lifecycle bench: verify of the matching table...");
    let t0 = Instant::now();
    let reports = lifecycle::verify_units(
        &env.pg,
        &config,
        &tools,
        &[unit],
        &["products".into()],
        &progress,
    )
    .await?;
    let verify_secs = t0.elapsed().as_secs_f64();
    let table = reports
        .first()
        .and_then(|r| r.tables.first())
        .ok_or_else(|| anyhow::anyhow!("verify reported nothing"))?;
    ensure!(
        table.is_clean(),
        "verify found differences: {:?}",
        table.samples
    );
    ensure!(
        table.found as i64 >= rows,
        "verify saw {} rows",
        table.found
    );
    let read_all = row_bytes(&db).await?;

    stop.cancel();
    running.wait().await;
    let load_rate = rows as f64 / load_secs;
    let verify_rate = table.found as f64 / verify_secs;
    println!("lifecycle bench: {rows} rows of products into one unit (chunks of 5,000)");
    println!("  raw packed insert    {raw:>10.0} rows/s (Firebird, same table, same run)");
    println!(
        "  ponte load           {load_rate:>10.0} rows/s ({:.1}% of raw; queued in {queued_secs:.1}s, applied in {load_secs:.1}s)",
        100.0 * load_rate / raw
    );
    println!(
        "  live changes meanwhile: {live} transactions, lag p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&lag, 0.50).as_secs_f64() * 1e3,
        percentile(&lag, 0.99).as_secs_f64() * 1e3,
        lag.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "  ponte verify         {verify_rate:>10.0} rows/s ({} rows matching, {verify_secs:.1}s)",
        table.found
    );
    println!(
        "  bytes from the unit  {:>10.2} per row ({:.2}% of reading the rows: {:.1} bytes/row)",
        table.unit_bytes as f64 / table.found as f64,
        100.0 * table.unit_bytes as f64 / read_all as f64,
        read_all as f64 / table.found as f64
    );
    Ok(())
}

/// Bytes of every PRODUTOS value as text: what reading the rows would move.
async fn row_bytes(db: &str) -> anyhow::Result<u64> {
    let db = db.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let mut conn = connect(&db)?;
        let rows: Vec<(String, String, String, String, String, String)> = conn.query(
            "SELECT CAST(ID AS VARCHAR(20)), SKU, DESCRICAO, CAST(PRECO AS VARCHAR(30)), \
             CAST(ESTOQUE AS VARCHAR(20)), CAST(DESCONTINUADO AS VARCHAR(10)) FROM PRODUTOS",
            (),
        )?;
        let _ = conn.close();
        Ok(rows
            .iter()
            .map(|r| (r.0.len() + r.1.len() + r.2.len() + r.3.len() + r.4.len() + r.5.len()) as u64)
            .sum())
    })
    .await?
}

/// Bench rows the unit holds now.
async fn bench_rows_at_unit(db: &str) -> anyhow::Result<i64> {
    let db = db.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
        let mut conn = connect(&db)?;
        let (n,): (i64,) = conn
            .query_first("SELECT COUNT(*) FROM PRODUTOS WHERE ID >= ?", (FIRST_ID,))?
            .ok_or_else(|| anyhow::anyhow!("no count"))?;
        let _ = conn.close();
        Ok(n)
    })
    .await?
}
