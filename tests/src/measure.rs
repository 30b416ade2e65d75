//! Figures the benchmarks print: the lag of each applied change (outbox commit to the unit's
//! ledger time), percentiles, and a process's CPU and RSS from /proc.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use rsfbclient::prelude::*;

use crate::firebird::connect;
use crate::TestEnv;

/// A benchmark knob from the environment, or its default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// utime + stime of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

/// Resident set of `pid`, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The `p` quantile (0..=1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Which outbox rows [`apply_lags`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Every row in the id range.
    All,
    /// Only the application's rows (not `ponte load`'s chunk rows).
    Live,
}

/// Waits until every unit's ledger holds every outbox row of `[lo, hi]` (of `rows`) sent to it,
/// then returns the lag of each change (`SYNC_CONTROL.APPLIED_AT` minus the row's
/// `created_at`), sorted.
pub async fn apply_lags(
    env: &TestEnv,
    lo: i64,
    hi: i64,
    rows: Rows,
) -> anyhow::Result<Vec<Duration>> {
    let filter = match rows {
        Rows::All => "",
        Rows::Live => " AND load_run IS NULL",
    };
    let created: Vec<(i64, i32, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(&format!(
        "SELECT id, unit_id, created_at FROM pg_sync_outbox WHERE id BETWEEN $1 AND $2{filter}"
    ))
    .bind(lo)
    .bind(hi)
    .fetch_all(&env.pg)
    .await?;
    let mut per_unit: HashMap<i32, HashMap<i64, chrono::DateTime<chrono::Utc>>> = HashMap::new();
    for (id, unit, at) in created {
        per_unit.entry(unit).or_default().insert(id, at);
    }
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    for (unit, db) in &env.units {
        let Some(created) = per_unit.get(unit) else {
            continue;
        };
        let applied = loop {
            let db = db.clone();
            let rows =
                tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(i64, String)>> {
                    let mut conn = connect(&db)?;
                    let rows: Vec<(i64, String)> = conn.query(
                        "SELECT OUTBOX_ID, CAST(APPLIED_AT AS VARCHAR(30)) FROM SYNC_CONTROL \
                     WHERE OUTBOX_ID BETWEEN ? AND ?",
                        (lo, hi),
                    )?;
                    let _ = conn.close();
                    Ok(rows)
                })
                .await??;
            let mine: Vec<(i64, String)> = rows
                .into_iter()
                .filter(|(id, _)| created.contains_key(id))
                .collect();
            if mine.len() >= created.len() {
                break mine;
            }
            ensure!(
                Instant::now() < deadline,
                "unit {unit}: {} of {} changes applied after 300 s",
                mine.len(),
                created.len()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        for (id, at) in applied {
            let applied = chrono::NaiveDateTime::parse_from_str(at.trim(), "%Y-%m-%d %H:%M:%S%.f")
                .with_context(|| format!("APPLIED_AT `{at}`"))?
                .and_utc();
            if let Some(c) = created.get(&id) {
                all.push((applied - *c).to_std().unwrap_or(Duration::ZERO));
            }
        }
    }
    all.sort_unstable();
    Ok(all)
}
