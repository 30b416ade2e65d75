//! Business transactions/s of the demo application (4 writers, 50 units: customers and products
//! go to every unit, an order and its items to one) in four capture modes, in the same run on
//! the same database:
//!   none         no outbox rows at all (the business writes alone: the ceiling)
//!   application  the application inserts its outbox rows in each transaction (the default)
//!   trigger      `ponte outbox install` triggers write them; the application writes none
//!   periodic     the periodic sync (`every = "1s"`) writes them in rounds while the load runs;
//!                also reported: how long after the load the last change was in the outbox
//! Every pass checks its work: application and trigger write the same number of outbox rows,
//! `none` writes none, periodic writes some (one per row version a round saw, so fewer).
//! Rounds alternate the modes so drift hits all four alike.
//! Run: `cargo bench -p ponte-tests --bench capture` (`PONTE_BENCH_TX`, default 3,000 per pass;
//! `PONTE_BENCH_ROUNDS`, default 2).

use anyhow::ensure;
use ponte::config::Config;
use ponte::demo::{load_with, LoadOptions, OutboxWrites};
use ponte_tests::{amqp_url, pg_admin_url};
use sqlx::PgPool;

const UNITS: i32 = 50;
const WRITERS: usize = 4;

fn config_toml(pg_url: &str, capture: &str) -> String {
    let table =
        |name: &str, route: &str| format!("[tables.{name}]\nops = \"IUD\"\n{capture}\n{route}\n");
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
        "TRUNCATE order_items, orders, customers, products, pg_sync_outbox, ponte_periodic_row, \
         ponte_periodic_cursor; \
         ALTER SEQUENCE demo_id_seq RESTART",
    )
    .execute(pg)
    .await?;
    sqlx::raw_sql("VACUUM ANALYZE").execute(pg).await?;
    Ok(())
}

/// One pass: (transactions/s, outbox rows written, seconds from the load's end until a
/// periodic round that started after it committed).
async fn pass(
    pg: &PgPool,
    configs: &Configs,
    mode: &str,
    tx: u64,
    round: u64,
) -> anyhow::Result<(f64, i64, f64)> {
    let config = &configs.trigger;
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
    let stop = tokio_util::sync::CancellationToken::new();
    let rounds = (mode == "periodic").then(|| {
        tokio::spawn(ponte::periodic::run(
            pg.clone(),
            configs.periodic.clone(),
            prometheus::Registry::new(),
            stop.clone(),
        ))
    });
    let summary = load_with(pg, &options, writes, |_| {}).await?;
    let mut catch_up = 0.0;
    if let Some(task) = rounds {
        let end: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT now()").fetch_one(pg).await?;
        let waited = std::time::Instant::now();
        loop {
            let last: Option<chrono::DateTime<chrono::Utc>> =
                sqlx::query_scalar("SELECT min(last_round_at) FROM ponte_periodic_cursor")
                    .fetch_one(pg)
                    .await?;
            if last.is_some_and(|l| l > end) {
                break;
            }
            ensure!(
                waited.elapsed().as_secs() < 300,
                "periodic rounds did not catch up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        catch_up = waited.elapsed().as_secs_f64();
        stop.cancel();
        task.await?;
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox")
        .fetch_one(pg)
        .await?;
    Ok((
        summary.transactions as f64 / summary.elapsed.as_secs_f64().max(0.001),
        rows,
        catch_up,
    ))
}

/// The same tables captured by triggers, or by the periodic sync.
struct Configs {
    trigger: Config,
    periodic: std::sync::Arc<Config>,
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
        let parse = |capture: &str| -> anyhow::Result<Config> {
            let config = Config::parse(&config_toml(&pg_url, capture))?;
            config.validate()?;
            Ok(config)
        };
        let configs = Configs {
            trigger: parse("outbox = \"trigger\"")?,
            periodic: std::sync::Arc::new(parse("outbox = \"periodic\"\nevery = \"1s\"")?),
        };
        let modes = ["none", "application", "trigger", "periodic"];
        let mut rates = vec![Vec::new(); modes.len()];
        let mut catch_ups = Vec::new();
        for round in 0..rounds {
            let mut rows = Vec::new();
            for (i, mode) in modes.iter().enumerate() {
                let (rate, n, catch_up) = pass(&pg, &configs, mode, tx, round).await?;
                eprintln!(
                    "capture bench: round {round} {mode:<11} {rate:>7.0} tx/s, {n} outbox rows"
                );
                rates[i].push(rate);
                rows.push(n);
                if *mode == "periodic" {
                    catch_ups.push(catch_up);
                }
            }
            ensure!(rows[0] == 0, "`none` wrote {} outbox rows", rows[0]);
            ensure!(
                rows[1] == rows[2] && rows[1] > 0,
                "application wrote {} outbox rows, the triggers {}",
                rows[1],
                rows[2]
            );
            ensure!(
                rows[3] > 0 && rows[3] <= rows[1],
                "the periodic sync wrote {} outbox rows (application: {})",
                rows[3],
                rows[1]
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
        println!(
            "  periodic: the last change was in the outbox {:.2} s after the load ended (mean)",
            catch_ups.iter().sum::<f64>() / catch_ups.len().max(1) as f64
        );
        pg.close().await;
        anyhow::Ok(())
    }
    .await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
    result
}
