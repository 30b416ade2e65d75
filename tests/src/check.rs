//! The checks every suite ends with: each unit's Firebird equals PostgreSQL row by row, each unit's
//! ledger holds every sent correlation id exactly once, and each unit applied its changes in
//! outbox (commit) order.

use std::time::{Duration, Instant};

use anyhow::bail;
use rsfbclient::prelude::*;

use crate::TestEnv;

/// Verifies every unit until it matches PostgreSQL or `limit` passes; fails with the report.
pub async fn units_match(env: &TestEnv, limit: Duration) -> anyhow::Result<()> {
    let config = env.config()?;
    let started = Instant::now();
    loop {
        let report = ponte::demo::verify(&env.pg, &config, &config.units(), 5).await?;
        if report.is_match() {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("units differ from PostgreSQL after {limit:?}:\n{report}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// (correlation id, outbox id) of a unit's ledger, in the order the unit applied them.
pub async fn ledger(db: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let db = db.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(String, i64)>> {
        let mut conn = crate::firebird::connect(&db)?;
        let rows: Vec<(String, i64)> = conn.query(
            "SELECT CORRELATION_ID, OUTBOX_ID FROM SYNC_CONTROL ORDER BY APPLIED_SEQ",
            (),
        )?;
        let _ = conn.close();
        Ok(rows
            .into_iter()
            .map(|(c, id)| (c.trim().to_string(), id))
            .collect())
    })
    .await?
}

/// Each unit's ledger holds exactly its sent correlation ids (each once: the primary key), and
/// every row's changes were applied in the order they were committed (increasing outbox id per
/// row; concurrent transactions on different rows may interleave either way, and parents before
/// children is what the unit's foreign keys enforce).
pub async fn ledgers_exact_and_ordered(env: &TestEnv) -> anyhow::Result<()> {
    ledgers_exact_and_ordered_except(env, &[]).await
}

/// As [`ledgers_exact_and_ordered`], for a stream where the correlation ids in `dead` were
/// published but dead-lettered by the units on purpose (poison).
pub async fn ledgers_exact_and_ordered_except(
    env: &TestEnv,
    dead: &[String],
) -> anyhow::Result<()> {
    for (unit, db) in &env.units {
        let mut expected: Vec<String> = sqlx::query_scalar(
            "SELECT correlation_id::text FROM pg_sync_outbox WHERE unit_id = $1 AND status = 'sent' \
             AND NOT (correlation_id::text = ANY($2))",
        )
        .bind(unit)
        .bind(dead)
        .fetch_all(&env.pg)
        .await?;
        expected.sort();
        let applied = ledger(db).await?;
        let mut found: Vec<String> = applied.iter().map(|(c, _)| c.clone()).collect();
        found.sort();
        if found != expected {
            let missing = expected
                .iter()
                .filter(|c| found.binary_search(c).is_err())
                .count();
            let extra = found
                .iter()
                .filter(|c| expected.binary_search(c).is_err())
                .count();
            bail!("unit {unit}: ledger has {} ids, PostgreSQL sent {} ({missing} missing, {extra} extra)", found.len(), expected.len());
        }
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT correlation_id::text, table_name || ':' || coalesce(payload->>'id', \
                 (payload->>'order_id') || '|' || (payload->>'line_no'), correlation_id::text) \
             FROM pg_sync_outbox WHERE unit_id = $1 AND status = 'sent'",
        )
        .bind(unit)
        .fetch_all(&env.pg)
        .await?;
        let row_of: std::collections::HashMap<String, String> = rows.into_iter().collect();
        let mut last: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for (correlation_id, outbox_id) in &applied {
            let Some(row) = row_of.get(correlation_id) else {
                continue;
            };
            if let Some(prev) = last.insert(row.as_str(), *outbox_id) {
                if prev >= *outbox_id {
                    bail!("unit {unit}: row {row}: outbox {outbox_id} was applied after outbox {prev} (out of commit order)");
                }
            }
        }
    }
    Ok(())
}

/// Rows left in `processing`.
pub async fn processing_rows(env: &TestEnv) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox WHERE status = 'processing'")
            .fetch_one(&env.pg)
            .await?,
    )
}

/// The dead-letter queue once it holds at least `count` letters (or after `limit`, as it is then:
/// the caller's assertions say what is missing). Dead letters change no business row, so the
/// units can match PostgreSQL before the last of them has been set aside.
pub async fn dead_letters(
    env: &TestEnv,
    count: usize,
    limit: Duration,
) -> anyhow::Result<Vec<ponte::ops::dlq::DeadLetterView>> {
    let config = env.config()?;
    let started = Instant::now();
    loop {
        let letters = ponte::ops::dlq::list(&config, count.max(1) * 2 + 10).await?;
        if letters.len() >= count || started.elapsed() > limit {
            return Ok(letters);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
