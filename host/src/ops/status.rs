//! `ponte status`: one screen for an operator at 3 a.m. — outbox backlog and dead rows per unit,
//! who holds which unit, queue depths (exact, by passive declare), and each unit's Firebird:
//! reachable or not, ledger size and last applied change; then the latest load / repair run and
//! verify result of each unit.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use rsfbclient::prelude::*;

use crate::amqp::with_timeout;
use crate::config::Config;

/// Builds the status report as text.
pub async fn report(config: &Config) -> anyhow::Result<String> {
    let mut out = String::new();
    let pool = crate::pg::connect(&config.postgres)
        .await
        .context("connecting to PostgreSQL")?;
    let backlog = crate::relay::backlog(&pool).await?;
    let leases: Vec<(i32, String, bool)> = sqlx::query_as(
        "SELECT unit_id, holder, expires_at > now() FROM ponte_unit_lease ORDER BY unit_id",
    )
    .fetch_all(&pool)
    .await?;
    let relays: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ponte_relay_instance WHERE seen_at > now() - interval '1 minute'",
    )
    .fetch_one(&pool)
    .await?;
    let held: Vec<(i32, String, i32, i32, String, Option<String>)> = sqlx::query_as(
        "SELECT unit_id, flow::text, held, prefetch, reason, \
             to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC' \
         FROM ponte_consumer_state \
         WHERE held > 0 AND updated_at > now() - interval '1 minute' \
         ORDER BY unit_id, flow, held DESC",
    )
    .fetch_all(&pool)
    .await?;
    let depths = queue_depths(config).await;
    let units = firebird_health(config).await;

    let _ = writeln!(out, "relays alive: {relays}");
    let _ = writeln!(
        out,
        "{:>5}  {:>8} {:>10} {:>6}  {:>8}  {:<28} {:<9} {:>10}  last applied",
        "unit", "pending", "processing", "dead", "queue", "lease holder", "firebird", "ledger"
    );
    for (unit, fb) in config.units().iter().zip(units) {
        let count = |status: &str| {
            backlog
                .iter()
                .find(|(u, s, _)| *u == unit.id && s == status)
                .map(|(_, _, n)| *n)
                .unwrap_or(0)
        };
        let lease = leases
            .iter()
            .find(|(u, _, _)| *u == unit.id)
            .map(|(_, h, live)| {
                if *live {
                    h.clone()
                } else {
                    format!("{h} (expired)")
                }
            })
            .unwrap_or_else(|| "-".into());
        let depth = depths
            .iter()
            .find(|(u, _)| *u == unit.id)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| "?".into());
        let _ = writeln!(
            out,
            "{:>5}  {:>8} {:>10} {:>6}  {:>8}  {:<28} {:<9} {:>10}  {}",
            unit.id,
            count("pending"),
            count("processing"),
            count("dead"),
            depth,
            lease,
            fb.state,
            fb.ledger,
            fb.last
        );
    }
    if !held.is_empty() {
        let _ = writeln!(
            out,
            "\nheld back by the consumers (received, not applied yet):"
        );
    }
    for (unit, flow, n, prefetch, reason, since) in held {
        let state = if n >= prefetch { "STALLED" } else { "held" };
        let _ = writeln!(
            out,
            "{unit:>5}  {flow:<10} {state:<7} {n}/{prefetch} since {}: {reason}",
            since.unwrap_or_else(|| "?".into())
        );
    }
    out.push_str(&crate::lifecycle::status::section(&pool).await?);
    out.push_str(&crate::periodic::status::section(&pool).await?);
    Ok(out)
}

async fn queue_depths(config: &Config) -> Vec<(i32, String)> {
    let t = config.amqp.timeout();
    let Ok(conn) = with_timeout(
        t,
        "connect",
        Connection::connect(&config.amqp.url, ConnectionProperties::default()),
    )
    .await
    else {
        return Vec::new();
    };
    let mut depths = Vec::new();
    for unit in config.units() {
        // A failed passive declare closes the channel, so each queue gets its own.
        let Ok(channel) = with_timeout(t, "channel.open", conn.create_channel()).await else {
            break;
        };
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let depth = match with_timeout(
            t,
            "queue.declare",
            channel.queue_declare(
                config.amqp.unit_queue(unit.id).into(),
                passive,
                FieldTable::default(),
            ),
        )
        .await
        {
            Ok(q) => q.message_count().to_string(),
            Err(_) => "missing".into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), channel.close(200, "ok".into())).await;
        depths.push((unit.id, depth));
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "ok".into())).await;
    depths
}

struct UnitHealth {
    state: String,
    ledger: String,
    last: String,
}

async fn firebird_health(config: &Config) -> Vec<UnitHealth> {
    let timeout = Duration::from_millis(config.firebird.timeout_ms);
    let mut jobs = Vec::new();
    for unit in config.units() {
        let fb = config.firebird.clone();
        jobs.push(tokio::task::spawn_blocking(
            move || -> Result<(i64, Option<String>), String> {
                let mut conn =
                    crate::firebird::connect(&unit.database, &fb).map_err(|e| e.to_string())?;
                let row: Option<(i64, Option<String>)> = conn
                    .query_first(
                        "SELECT COUNT(*), CAST(MAX(APPLIED_AT) AS VARCHAR(30)) FROM SYNC_CONTROL",
                        (),
                    )
                    .map_err(|e| e.to_string())?;
                let _ = conn.close();
                Ok(row.unwrap_or((0, None)))
            },
        ));
    }
    let mut out = Vec::new();
    for job in jobs {
        out.push(match tokio::time::timeout(timeout, job).await {
            Ok(Ok(Ok((n, last)))) => UnitHealth {
                state: "up".into(),
                ledger: n.to_string(),
                last: last.unwrap_or_else(|| "-".into()),
            },
            Ok(Ok(Err(e))) => UnitHealth {
                state: "DOWN".into(),
                ledger: "-".into(),
                last: first_line(&e),
            },
            _ => UnitHealth {
                state: "TIMEOUT".into(),
                ledger: "-".into(),
                last: "-".into(),
            },
        });
    }
    out
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect()
}
