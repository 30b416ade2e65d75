//! End to end: outbox commit -> unit commit over many units, at several offered rates, against
//! the raw limits of the same servers measured in the same run.
//!
//! A paced writer inserts products upserts into the outbox (one row per unit per business
//! transaction, every 10 ms what is due) for `PONTE_BENCH_SECS` per rate; `ponte run` (all roles,
//! a separate process) relays and applies them. Lag per change is the unit's ledger time
//! (`SYNC_CONTROL.APPLIED_AT`, in the apply transaction) minus the outbox row's `created_at`;
//! every change of a step must be in every unit's ledger before its figures print. The host's
//! CPU (utime + stime) and peak RSS come from /proc.
//!
//! Run: `cargo bench -p ponte-tests --bench e2e` (`PONTE_BENCH_UNITS` = 50,
//! `PONTE_BENCH_RATES` = "500,1000,2000,3000,4000,5000" changes/s, `PONTE_BENCH_SECS` = 20).

use std::time::{Duration, Instant};

use ponte_tests::bench::{
    insert_products, raw_consume, raw_packed_inserts, raw_publish, write_outbox,
};
use ponte_tests::firebird::connect;
use ponte_tests::measure::{apply_lags, cpu_seconds, env_or, percentile, rss_mib, Rows};
use ponte_tests::process::HostProcess;
use ponte_tests::{TestEnv, UnitSpec};
use rsfbclient::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_ponte-under-test");
/// A step whose lag passes this is not sustained: higher rates are not tried.
const GIVE_UP_LAG: Duration = Duration::from_secs(10);

/// The figures of one offered rate.
struct Step {
    offered: f64,
    achieved: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    cpu: f64,
    rss_mib: f64,
}

/// Writes `rate` changes/s for `secs`; returns the product ids written (first, count).
async fn paced_writer(
    env: &TestEnv,
    units: &[i32],
    rate: f64,
    secs: u64,
    first_id: i64,
    host: u32,
    peak_rss: &mut f64,
) -> anyhow::Result<(i64, f64)> {
    let business_rate = rate / units.len() as f64;
    let started = Instant::now();
    let mut written = 0i64;
    let mut last_sample = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        let due = (business_rate * started.elapsed().as_secs_f64()) as i64 - written;
        if due > 0 {
            insert_products(&env.pg, first_id + written, due, units).await?;
            written += due;
        }
        if last_sample.elapsed() >= Duration::from_secs(1) {
            *peak_rss = peak_rss.max(rss_mib(host));
            last_sample = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let achieved = (written * units.len() as i64) as f64 / started.elapsed().as_secs_f64();
    Ok((written, achieved))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n_units: i32 = env_or("PONTE_BENCH_UNITS", 50);
    let secs: u64 = env_or("PONTE_BENCH_SECS", 20);
    let rates: Vec<f64> = std::env::var("PONTE_BENCH_RATES")
        .unwrap_or_else(|_| "500,1000,2000,3000,4000,5000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let specs: Vec<UnitSpec> = (1..=n_units)
        .map(|id| UnitSpec {
            id,
            charset: "WIN1252",
        })
        .collect();
    eprintln!("e2e bench: creating {n_units} unit databases...");
    let mut env = TestEnv::new(&specs).await?;
    env.install_transforms(&["customers", "orders", "generic"])?;
    env.extra_toml = "[relay]\npoll_interval_ms = 50\n".into();
    let units: Vec<i32> = env.units.iter().map(|(id, _)| *id).collect();
    let config = env.config()?;
    let result = run(&env, &config, &units, &rates, secs).await;
    env.cleanup().await;
    result
}

async fn run(
    env: &TestEnv,
    config: &ponte::config::Config,
    units: &[i32],
    rates: &[f64],
    secs: u64,
) -> anyhow::Result<()> {
    // The raw limits first, while nothing else runs.
    eprintln!("e2e bench: raw limits...");
    let pg_write = write_outbox(&env.pg, 2_000, units, 1).await?;
    sqlx::query("DELETE FROM pg_sync_outbox")
        .execute(&env.pg)
        .await?;
    let publish = raw_publish(&config.amqp, 50_000, config.relay.max_in_flight, units).await?;
    let consume = raw_consume(&config.amqp, 50_000, units).await?;
    let fb_packed = {
        let db = env.units[0].1.clone();
        let batch = config.apply.batch_size;
        tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
            let mut conn = connect(&db)?;
            let rate = raw_packed_inserts(&mut conn, 90_000_000..90_010_000, batch)?;
            conn.execute("DELETE FROM PRODUTOS WHERE ID >= 90000000", ())?;
            let _ = conn.close();
            Ok(rate)
        })
        .await??
    };

    let config_path = env.write_config()?;
    let log = std::env::temp_dir().join(format!("{}-e2e-host.log", env.name));
    let host = HostProcess::spawn(BIN, &config_path, &["run"], &log)?;
    let pid = host.pid();
    // Warm up: one change per unit, applied everywhere.
    let mut next_id = 1_000_000;
    insert_products(&env.pg, next_id, 1, units).await?;
    let (lo, hi): (i64, i64) = sqlx::query_as("SELECT min(id), max(id) FROM pg_sync_outbox")
        .fetch_one(&env.pg)
        .await?;
    apply_lags(env, lo, hi, Rows::All).await?;
    next_id += 1;

    let mut steps = Vec::new();
    for &rate in rates {
        eprintln!("e2e bench: {rate} changes/s for {secs} s...");
        let before: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM pg_sync_outbox")
            .fetch_one(&env.pg)
            .await?;
        let cpu0 = cpu_seconds(pid);
        let wall0 = Instant::now();
        let mut peak = rss_mib(pid);
        let (written, achieved) =
            paced_writer(env, units, rate, secs, next_id, pid, &mut peak).await?;
        next_id += written;
        let after: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM pg_sync_outbox")
            .fetch_one(&env.pg)
            .await?;
        let lag = apply_lags(env, before + 1, after, Rows::All).await?;
        let cpu = (cpu_seconds(pid) - cpu0) / wall0.elapsed().as_secs_f64();
        peak = peak.max(rss_mib(pid));
        let step = Step {
            offered: rate,
            achieved,
            p50: percentile(&lag, 0.50),
            p99: percentile(&lag, 0.99),
            max: lag.last().copied().unwrap_or_default(),
            cpu,
            rss_mib: peak,
        };
        println!(
            "  offered {:>6.0}/s  written {:>6.0}/s  p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  \
             host CPU {:>4.0}%  RSS {:>5.0} MiB",
            step.offered,
            step.achieved,
            step.p50.as_secs_f64() * 1e3,
            step.p99.as_secs_f64() * 1e3,
            step.max.as_secs_f64() * 1e3,
            step.cpu * 100.0,
            step.rss_mib
        );
        let give_up = step.p99 > GIVE_UP_LAG;
        steps.push(step);
        if give_up {
            println!("  (lag grows: higher rates not tried)");
            break;
        }
    }
    host.terminate();

    let held = steps
        .iter()
        .filter(|s| s.p99 <= Duration::from_millis(500))
        .map(|s| s.offered)
        .fold(0.0, f64::max);
    println!("e2e bench: {} units, {secs} s per rate", units.len());
    println!("  raw limits (same run): PostgreSQL outbox write {pg_write:.0} rows/s, confirmed publish {publish:.0}/s, consume {consume:.0}/s, Firebird packed insert {fb_packed:.0} rows/s");
    println!(
        "  highest offered rate with p99 <= 500 ms: {held:.0} changes/s ({:.1}% of the confirmed publish limit)",
        100.0 * held / publish
    );
    Ok(())
}
