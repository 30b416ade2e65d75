//! One round: every due periodic table (and the tables before it, parents first) in one
//! REPEATABLE READ transaction, so a child row goes out with (after) the parent row its snapshot
//! shows. The round's bound is read before that snapshot is taken (docs/capture.md).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use super::{sql, PeriodicTable};

/// How much a round may write.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Outbox rows per statement (a pass); the pass's row limit is this over the fan-out.
    pub pass_rows: u64,
    /// Outbox rows per round (one transaction); past it the round commits and the next one
    /// starts at once.
    pub round_rows: u64,
    /// `statement_timeout` inside a round.
    pub statement_timeout: Duration,
}

/// What a round did to one table.
#[derive(Debug, Clone, Default)]
pub struct TableResult {
    /// The `[tables]` name.
    pub name: String,
    /// Outbox rows written for changed rows (one per target unit), moves included.
    pub sent: u64,
    /// Outbox rows written for deleted rows.
    pub deleted: u64,
    /// Rows still waiting: refused routing or locked by another transaction.
    pub waiting: u64,
    /// Up to three refused rows (`key -> unit`), for the operator.
    pub refused: Option<String>,
}

/// Why a committed round left work for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum More {
    /// Nothing: every table of the round was read to the end.
    No,
    /// The round's row budget ran out: the next round starts at once.
    Capped,
    /// A row another transaction holds locked was left for later: the next round comes soon,
    /// backing off while the lock lasts.
    Locked,
}

/// The end of a round.
#[derive(Debug)]
pub enum RoundOutcome {
    /// Committed; `more` says whether (and why) it left work.
    Done {
        tables: Vec<TableResult>,
        more: More,
    },
    /// Another ponte instance holds the periodic lock and runs the rounds.
    Busy,
}

/// The start of the oldest transaction running in this database (or now), and whether any
/// prepared transaction exists. Read BEFORE the round's snapshot: any transaction the snapshot
/// does not see started after this, or was running now, so its rows' change column (its
/// `now()`) is at or after it.
async fn bound(pool: &PgPool) -> Result<(DateTime<Utc>, bool), sqlx::Error> {
    sqlx::query_as(
        "SELECT least(now(), (SELECT min(xact_start) FROM pg_stat_activity \
             WHERE datname = current_database())), \
         EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE database = current_database())",
    )
    .fetch_one(pool)
    .await
}

/// Runs one round over `tables[..=upto]` (parents first).
pub async fn run(
    pool: &PgPool,
    tables: &[PeriodicTable],
    upto: usize,
    units: &[i32],
    limits: Limits,
) -> Result<RoundOutcome, sqlx::Error> {
    let (start, prepared) = bound(pool).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "SET LOCAL statement_timeout = '{}ms'",
        limits.statement_timeout.as_millis().max(1)
    ))
    .execute(&mut *tx)
    .await?;
    // The snapshot is taken here: after the bound.
    let ours: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('ponte periodic'))")
            .fetch_one(&mut *tx)
            .await?;
    if !ours {
        tx.rollback().await?;
        return Ok(RoundOutcome::Busy);
    }
    let names: Vec<&str> = tables.iter().map(|t| t.pg.name.as_str()).collect();
    let marks: Vec<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT table_name::text, low_mark FROM ponte_periodic_cursor WHERE table_name = ANY($1)",
    )
    .bind(&names)
    .fetch_all(&mut *tx)
    .await?;
    let units_text: Vec<String> = units.iter().map(i32::to_string).collect();
    let mut results = Vec::new();
    let mut written = 0u64;
    let mut more = More::No;
    for table in tables.iter().take(upto + 1) {
        let known = marks.iter().find(|(n, _)| *n == table.pg.name);
        let old = known.and_then(|(_, m)| *m);
        let first = known.is_none();
        let scan = Scan {
            table,
            low: old,
            units,
            units_text: &units_text,
            limits,
        };
        let (result, capped, locked, earliest) = scan.run(&mut tx, &mut written).await?;
        let low = if capped || table.change_column.is_none() {
            old
        } else {
            let lookback = chrono::Duration::from_std(table.lookback).unwrap_or_default();
            let next = start - lookback;
            // A prepared transaction's start is unknown: never move past the last mark (a first
            // round keeps reading every row until none is left).
            let next = match (prepared, old) {
                (true, None) => None,
                (true, Some(o)) => Some(o.min(next)),
                (false, _) => Some(next),
            };
            match (next, earliest) {
                (Some(n), Some(e)) => Some(n.min(e)),
                (n, _) => n,
            }
        };
        save_cursor(&mut tx, table, low, &result, first).await?;
        results.push(result);
        if capped {
            more = More::Capped;
            break;
        }
        if locked > 0 {
            // The locked rows wait for a later round; the tables after this one are still read
            // (a child of a parent row still locked is held at the unit until the parent comes).
            more = More::Locked;
        }
    }
    if more != More::Capped {
        for (table, result) in tables.iter().take(upto + 1).zip(results.iter_mut()).rev() {
            let (_, outs): (i64, i64) = sqlx::query_as(&sql::deletes(table))
                .bind(&table.pg.name)
                .bind(units)
                .fetch_one(&mut *tx)
                .await?;
            result.deleted = outs.max(0) as u64;
            if outs > 0 {
                sqlx::query(
                    "UPDATE ponte_periodic_cursor SET deletes_sent = deletes_sent + $2 \
                     WHERE table_name = $1",
                )
                .bind(&table.pg.name)
                .bind(outs)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(RoundOutcome::Done {
        tables: results,
        more,
    })
}

/// The passes over one table's window.
struct Scan<'a> {
    table: &'a PeriodicTable,
    low: Option<DateTime<Utc>>,
    units: &'a [i32],
    units_text: &'a [String],
    limits: Limits,
}

impl Scan<'_> {
    /// Returns the result, whether the round's budget cut it short, how many rows were locked
    /// and the earliest change column among the rows still waiting.
    async fn run(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        written: &mut u64,
    ) -> Result<(TableResult, bool, u64, Option<DateTime<Utc>>), sqlx::Error> {
        let table = self.table;
        let windowed = self.low.is_some();
        let fanout = if table.pg.unit_expr.is_some() {
            1
        } else {
            self.units.len().max(1) as u64
        };
        let limit = (self.limits.pass_rows / fanout).max(1) as i64;
        let (first, next) = (
            sql::pass(table, windowed, false),
            sql::pass(table, windowed, true),
        );
        let mut result = TableResult {
            name: table.pg.name.clone(),
            ..TableResult::default()
        };
        let mut refused = 0u64;
        let mut last: Option<Vec<String>> = None;
        let mut capped = false;
        loop {
            let mut q = sqlx::query_as::<_, (i64, i64, i64, Option<Vec<String>>, Option<String>)>(
                if last.is_some() { &next } else { &first },
            )
            .bind(&table.pg.name)
            .bind(limit)
            .bind(self.low)
            .bind(self.units)
            .bind(self.units_text);
            for part in last.iter().flatten() {
                q = q.bind(part);
            }
            let (candidates, routed, rows, last_key, sample) = q.fetch_one(&mut **tx).await?;
            result.sent += rows.max(0) as u64;
            *written += rows.max(0) as u64;
            refused += (candidates - routed).max(0) as u64;
            if result.refused.is_none() {
                result.refused = sample;
            }
            if candidates < limit {
                break;
            }
            last = last_key;
            if *written >= self.limits.round_rows {
                capped = true;
                break;
            }
        }
        let (waiting, earliest): (i64, Option<DateTime<Utc>>) =
            sqlx::query_as(&sql::remaining(table, windowed))
                .bind(&table.pg.name)
                .bind(self.low)
                .fetch_one(&mut **tx)
                .await?;
        result.waiting = waiting.max(0) as u64;
        let locked = if capped {
            0
        } else {
            result.waiting.saturating_sub(refused)
        };
        Ok((result, capped, locked, earliest))
    }
}

async fn save_cursor(
    tx: &mut Transaction<'static, Postgres>,
    table: &PeriodicTable,
    low: Option<DateTime<Utc>>,
    result: &TableResult,
    first: bool,
) -> Result<(), sqlx::Error> {
    let error = result.refused.as_ref().map(|sample| {
        format!(
            "rows whose {} names no configured unit (key -> unit): {sample}",
            table.route_name()
        )
    });
    sqlx::query(
        "INSERT INTO ponte_periodic_cursor AS c (table_name, low_mark, rounds, rows_sent, \
             rows_waiting, last_error, last_round_at) \
         VALUES ($1, $2, 1, $3, $4, $5, now()) \
         ON CONFLICT (table_name) DO UPDATE SET low_mark = EXCLUDED.low_mark, \
             rounds = c.rounds + 1, rows_sent = c.rows_sent + EXCLUDED.rows_sent, \
             rows_waiting = EXCLUDED.rows_waiting, last_error = EXCLUDED.last_error, \
             last_round_at = EXCLUDED.last_round_at",
    )
    .bind(&table.pg.name)
    .bind(low)
    .bind(result.sent as i64)
    .bind(result.waiting as i64)
    .bind(error)
    .execute(&mut **tx)
    .await?;
    if first {
        tracing::info!(
            table = %table.pg.name,
            rows = result.sent,
            "Periodic sync: the first round of the table sends its rows to their units (nothing was recorded yet)."
        );
    }
    Ok(())
}
