//! The periodic sync's part of `ponte status`: per table, the last round, what the rounds sent
//! and what waits.

use std::fmt::Write;

use anyhow::Context;
use sqlx::PgPool;

/// One cursor row as `ponte status` shows it.
type CursorLine = (
    String,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The "periodic sync" section; empty when no table has had a round.
pub async fn section(pool: &PgPool) -> anyhow::Result<String> {
    let rows: Vec<CursorLine> = sqlx::query_as(
        "SELECT table_name::text, rounds, rows_sent, deletes_sent, rows_waiting, \
             to_char(last_round_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC', \
             to_char(low_mark AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') || ' UTC', last_error \
         FROM ponte_periodic_cursor ORDER BY table_name",
    )
    .fetch_all(pool)
    .await
    .context("reading the periodic sync's state (run `ponte migrate`?)")?;
    let mut out = String::new();
    if rows.is_empty() {
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "\nperiodic sync (outbox = \"periodic\"):\n{:<24} {:>8} {:>10} {:>8} {:>8}  {:<23}  reads from",
        "table", "rounds", "sent", "deleted", "waiting", "last round"
    );
    for (table, rounds, sent, deleted, waiting, at, low, error) in rows {
        let _ = writeln!(
            out,
            "{table:<24} {rounds:>8} {sent:>10} {deleted:>8} {waiting:>8}  {:<23}  {}{}",
            at.unwrap_or_else(|| "never".into()),
            low.unwrap_or_else(|| "every row".into()),
            error
                .map(|e| format!("\n    WAITING: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(out)
}
