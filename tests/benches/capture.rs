//! Business transactions/s of the demo application (4 writers, 50 units: customers and products
//! go to every unit, an order and its items to one) in three capture modes, in the same run on
//! the same database:
//!   none         no outbox rows at all (the business writes alone: the ceiling)
//!   application  the application inserts its outbox rows in each transaction (the default)
//!   trigger      `ponte outbox install` triggers write them; the application writes none
//! Every pass checks its work: both capture modes write the same number of outbox rows, `none`
//! writes none. Rounds alternate the modes so drift hits all three alike.
//! Run: `cargo bench -p ponte-tests --bench capture` (`PONTE_BENCH_TX`, default 3,000 per pass;
//! `PONTE_BENCH_ROUNDS`, default 2).

use anyhow::ensure;
use ponte::config::Config;
use ponte::demo::{load_with, LoadOptions, OutboxWrites};
use ponte_tests::{amqp_url, pg_admin_url};
use sqlx::PgPool;

const UNITS: i32 = 50;
const WRITERS: usize = 4;

fn config_toml(pg_url: &str) -> String {
    let table = |name: &str, route: &str| {
        format!("[tables.{name}]\nops = \"IUD\"\noutbox = \"trigger\"\n{route}\n")
    };
    format!(
        "[postgres]\nurl = \"{pg_url}\"\n[amqp]\nurl = \"{}\"\n[firebird]\npassword = \"unused\"\n\
         [units]\nids = \"1-{UNITS}\"\ndatabase = \"unused:/u{{id}}.fdb\"\n[transforms]\n\
         dir = \"/nonexistent\"\n{}{}{}{}",
        amqp_url(),
        table("customers", ""),
        table("products", ""),
        table("orders", "unit_column = \"unit_id\""),
        table(
            "order_items",
            "unit_sql = \"SELECT o.unit_id FROM orders o WHERE o.id = t.order_id\""
        ),
    )
}

async fn reset(pg: &PgPool) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "TRUNCATE order_items, orders, customers, products, pg_sync_outbox; \
         ALTER SEQUENCE demo_id_seq RESTART",
    )
    .execute(pg)
    .await?;
    sqlx::raw_sql("VACUUM ANALYZE").execute(pg).await?;
    Ok(())
}

/// One pass: (transactions/s, outbox rows written).
async fn pass(
    pg: &PgPool,
    config: &Config,
    mode: &str,
    tx: u64,
    round: u64,
) -> anyhow::Result<(f64, i64)> {
    reset(pg).await?;
    let writes = if mode == "application" {
        OutboxWrites::Application
    } else {
        OutboxWrites::Left
    };
    if mode == "trigger" {
        ponte::outbox_capture::install(config, &[], false).await?;
    } else {
        ponte::outbox_capture::remove(config, &[], false).await?;
    }
    let options = LoadOptions {
        changes: tx,
        units: (1..=UNITS).collect(),
        concurrency: WRITERS,
        seed: 100 + round,
    };
    let summary = load_with(pg, &options, writes, |_| {}).await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox")
        .fetch_one(pg)
        .await?;
    Ok((
        summary.transactions as f64 / summary.elapsed.as_secs_f64().max(0.001),
        rows,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (tx, rounds) = (env("PONTE_BENCH_TX", 3_000), env("PONTE_BENCH_ROUNDS", 2));
    let name = format!(
        "bcapture{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let admin = PgPool::connect(&pg_admin_url()).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await?;
    let pg_url = match pg_admin_url().rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => anyhow::bail!("unexpected admin URL {}", pg_admin_url()),
    };
    let result = async {
        let pg = PgPool::connect(&pg_url).await?;
        ponte::pg::migrate(&pg).await?;
        sqlx::raw_sql(include_str!("../../deploy/demo/postgres-app.sql"))
            .execute(&pg)
            .await?;
        let config = Config::parse(&config_toml(&pg_url))?;
        config.validate()?;
        let modes = ["none", "application", "trigger"];
        let mut rates = vec![Vec::new(); modes.len()];
        for round in 0..rounds {
            let mut rows = Vec::new();
            for (i, mode) in modes.iter().enumerate() {
                let (rate, n) = pass(&pg, &config, mode, tx, round).await?;
                eprintln!(
                    "capture bench: round {round} {mode:<11} {rate:>7.0} tx/s, {n} outbox rows"
                );
                rates[i].push(rate);
                rows.push(n);
            }
            ensure!(rows[0] == 0, "`none` wrote {} outbox rows", rows[0]);
            ensure!(
                rows[1] == rows[2] && rows[1] > 0,
                "application wrote {} outbox rows, the triggers {}",
                rows[1],
                rows[2]
            );
        }
        let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let base = mean(&rates[0]);
        println!(
            "capture bench: {tx} demo transactions per pass, {WRITERS} writers, {UNITS} units, \
             {rounds} round(s), mean of the rounds"
        );
        for (mode, r) in modes.iter().zip(&rates) {
            println!(
                "  {mode:<12} {:>8.0} business tx/s  ({:>5.1} % of no capture)",
                mean(r),
                100.0 * mean(r) / base
            );
        }
        pg.close().await;
        anyhow::Ok(())
    }
    .await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
    result
}
