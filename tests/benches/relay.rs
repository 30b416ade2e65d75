//! Relay throughput against the raw limits of the same servers, measured in one run:
//!   pg write    outbox rows written by plain multi-row INSERTs (what PostgreSQL takes)
//!   raw publish persistent, confirmed, `mandatory` publishes to the same 50 unit queues with
//!               `[relay] max_in_flight` confirms outstanding (a plain lapin client: what the
//!               broker takes)
//!   relay       `ponte run --role relay` draining the same number of outbox rows (claim,
//!               publish, confirm, mark), from the first claim to the last row marked sent
//! Every pass checks its work: the queues hold exactly the messages sent, and every outbox row
//! ends `sent`.
//! Run: `cargo bench -p ponte-tests --bench relay` (`PONTE_BENCH_ROWS`, default 50,000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use ponte::config::Config;
use ponte::daemon::{start, Roles};
use ponte_tests::bench::{purge_units, raw_publish, write_outbox};
use ponte_tests::{amqp_url, pg_admin_url};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const UNITS: i32 = 50;

fn config_toml(pg_url: &str, exchange: &str) -> String {
    format!(
        r#"
[postgres]
url = "{pg_url}"
[amqp]
url = "{amqp}"
exchange = "{exchange}"
[firebird]
password = "unused"
[units]
ids = "1-{UNITS}"
database = "unused:/u{{id}}.fdb"
[transforms]
dir = "/nonexistent"
[http]
listen = "127.0.0.1:0"
[tables.products]
ops = "IUD"
transform = "generic"
"#,
        amqp = amqp_url(),
    )
}

/// Starts the relay role and waits until every outbox row is sent; returns rows/s from the
/// first claim to the last mark, as the database recorded them.
async fn relay_drain(config: Config, pg: &PgPool, rows: i64) -> anyhow::Result<f64> {
    let token = CancellationToken::new();
    let roles = Roles {
        relay: true,
        ..Roles::none()
    };
    let running = start(Arc::new(config), roles, token.clone()).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox WHERE status <> 'sent'")
                .fetch_one(pg)
                .await?;
        if open == 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "relay did not drain: {open} rows open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token.cancel();
    running.wait().await;
    let span: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(sent_at) - min(claimed_at))::float8 FROM pg_sync_outbox",
    )
    .fetch_one(pg)
    .await?;
    Ok(rows as f64 / span.max(0.001))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: i64 = std::env::var("PONTE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let units: Vec<i32> = (1..=UNITS).collect();
    let name = format!("brelay{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let admin = PgPool::connect(&pg_admin_url()).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await?;
    let pg_url = match pg_admin_url().rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => anyhow::bail!("unexpected admin URL {}", pg_admin_url()),
    };
    let pg = PgPool::connect(&pg_url).await?;
    ponte::pg::migrate(&pg).await?;
    let config = Config::parse(&config_toml(&pg_url, &name))?;
    config.validate()?;
    let in_flight = config.relay.max_in_flight;

    let result = async {
        let raw = raw_publish(&config.amqp, rows, in_flight, &units).await?;
        let written = write_outbox(&pg, rows / i64::from(UNITS), &units, 1).await?;
        let total = rows / i64::from(UNITS) * i64::from(UNITS);
        let relay = relay_drain(config.clone(), &pg, total).await?;
        let conn =
            lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        let queued = purge_units(&ch, &config.amqp, &units).await?;
        ensure!(
            queued >= total,
            "relay pass: {queued} messages queued for {total} rows sent"
        );
        println!(
            "relay bench: {total} rows, {UNITS} units, max_in_flight {in_flight}, batch {}",
            config.relay.batch_size
        );
        println!("  pg outbox write     {written:>10.0} rows/s");
        println!("  raw publish         {raw:>10.0} msgs/s (confirmed, mandatory, persistent)");
        println!("  ponte relay         {relay:>10.0} rows/s (first claim to last mark)");
        println!("  relay / raw publish {:>9.1} %", 100.0 * relay / raw);
        let _ = conn.close(200, "bench done".into()).await;
        anyhow::Ok(())
    }
    .await;

    pg.close().await;
    let _ = ponte_tests::delete_broker_namespace(&name, &units).await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
    result
}
