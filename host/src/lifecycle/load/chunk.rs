//! One load chunk: the next `limit` rows of a table for a unit, in primary-key order, read and
//! written to `pg_sync_outbox` as full row images (op `U`) in ONE PostgreSQL transaction that
//! also records the table's progress. The rows are read `FOR SHARE`: a row an application
//! transaction is changing is read after that transaction commits, and an application write to
//! a row of the chunk waits for the chunk to commit, so each load row takes its outbox id at a
//! point where it is the row's latest committed image (docs/lifecycle.md). The lock wait is
//! bounded (`[load] lock_timeout_ms`, below `deadlock_timeout`): the chunk gives way and is
//! retried, never the application.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;

use crate::lifecycle::catalog::PgTable;

/// How often a chunk that gave way to the application is retried before the load fails.
const LOCK_RETRIES: u32 = 40;

/// What one committed chunk wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// Outbox rows written.
    pub rows: u64,
    /// Key of the last row (None: the table had no more rows).
    pub last_key: Option<Vec<String>>,
    /// Correlation id of the chunk's last outbox row: the unit holds the whole chunk once its
    /// ledger holds this one (it applies in order).
    pub last_correlation: Option<String>,
}

/// The text of the chunk statement; `$1` unit, `$2` limit, `$3` table name, `$4` run, `$5..`
/// the previous chunk's last key (when `resume`).
pub fn statement(table: &PgTable, resume: bool) -> String {
    let after = if resume {
        format!(" AND {}", table.after(5))
    } else {
        String::new()
    };
    format!(
        "WITH c0 AS ( \
             SELECT t.*, to_jsonb(t) AS ponte_img, {keys} AS ponte_k FROM {rel} t \
             WHERE {unit}{after} ORDER BY {order} LIMIT $2 FOR SHARE OF t), \
         c AS (SELECT ponte_img, ponte_k, row_number() OVER (ORDER BY {order}) AS ponte_n \
             FROM c0 t), \
         ins AS ( \
             INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload, load_run) \
             SELECT $1, $3, 'U', ponte_img, $4 FROM c ORDER BY ponte_n \
             RETURNING id, correlation_id) \
         SELECT (SELECT count(*) FROM ins), (SELECT ponte_k FROM c ORDER BY ponte_n DESC LIMIT 1), \
             (SELECT correlation_id::text FROM ins ORDER BY id DESC LIMIT 1)",
        keys = table.key_text_array(),
        rel = table.relation,
        unit = table.unit_filter(1),
        order = table.key_list(),
    )
}

/// Writes the chunk after `last_key` and advances the table's progress in the same transaction.
pub async fn write(
    pool: &PgPool,
    table: &PgTable,
    unit: i32,
    run: i64,
    limit: u32,
    last_key: Option<&[String]>,
    lock_timeout: Duration,
) -> anyhow::Result<Written> {
    let sql = statement(table, last_key.is_some());
    let mut attempt = 0;
    loop {
        match try_write(pool, &sql, table, unit, run, limit, last_key, lock_timeout).await {
            Ok(done) => return Ok(done),
            Err(e) if gave_way(&e) && attempt < LOCK_RETRIES => {
                attempt += 1;
                let table = &table.name;
                tracing::debug!(unit, %table, attempt, "Load chunk gave way; retrying.");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt.min(10)))).await;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "writing a load chunk of table {} for unit {unit}",
                        table.name
                    )
                })
            }
        }
    }
}

/// Lock timeout or deadlock: the application held the rows; try again.
fn gave_way(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("55P03" | "40P01")))
}

#[allow(clippy::too_many_arguments)]
async fn try_write(
    pool: &PgPool,
    sql: &str,
    table: &PgTable,
    unit: i32,
    run: i64,
    limit: u32,
    last_key: Option<&[String]>,
    lock_timeout: Duration,
) -> Result<Written, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "SET LOCAL lock_timeout = '{}ms'",
        lock_timeout.as_millis().max(1)
    ))
    .execute(&mut *tx)
    .await?;
    let mut query = sqlx::query_as::<_, (i64, Option<Vec<String>>, Option<String>)>(sql)
        .bind(unit)
        .bind(i64::from(limit))
        .bind(&table.name)
        .bind(run);
    for value in last_key.unwrap_or_default() {
        query = query.bind(value);
    }
    let (rows, last, last_correlation) = query.fetch_one(&mut *tx).await?;
    let finished = rows < i64::from(limit);
    sqlx::query(
        "UPDATE ponte_load_progress SET rows_done = rows_done + $3, chunks_done = chunks_done + 1, \
         last_key = coalesce($4, last_key), \
         state = CASE WHEN $5 THEN 'written' ELSE 'running' END, updated_at = now() \
         WHERE run_id = $1 AND table_name = $2",
    )
    .bind(run)
    .bind(&table.name)
    .bind(rows)
    .bind(&last)
    .bind(finished)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE ponte_load_run SET updated_at = now() WHERE id = $1")
        .bind(run)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Written {
        rows: rows.max(0) as u64,
        last_key: if finished && rows == 0 { None } else { last },
        last_correlation,
    })
}

/// Writes the current images of the rows with the given keys (a repair), in primary-key order,
/// read `FOR SHARE` like a chunk; keys PostgreSQL no longer has are skipped. Returns rows written.
pub async fn write_keys(
    pool: &PgPool,
    table: &PgTable,
    unit: i32,
    run: i64,
    keys: &[Vec<String>],
    lock_timeout: Duration,
) -> anyhow::Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    let width = table.key.len();
    // The keys arrive as one text[] per key column.
    let columns: Vec<Vec<String>> = (0..width)
        .map(|i| {
            keys.iter()
                .map(|k| k.get(i).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    let wanted: Vec<String> = table
        .key
        .iter()
        .enumerate()
        .map(|(i, k)| format!("CAST(w.k{i} AS {})", k.sql_type))
        .collect();
    let unnest: Vec<String> = (0..width).map(|i| format!("${}::text[]", i + 4)).collect();
    let names: Vec<String> = (0..width).map(|i| format!("k{i}")).collect();
    let sql = format!(
        "WITH w AS (SELECT * FROM unnest({unnest}) AS w({names})), \
         c0 AS (SELECT t.*, to_jsonb(t) AS ponte_img FROM {rel} t \
             WHERE ({order}) IN (SELECT {wanted} FROM w) AND {unit} FOR SHARE OF t), \
         c AS (SELECT ponte_img, row_number() OVER (ORDER BY {order}) AS ponte_n FROM c0 t) \
         INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload, load_run) \
         SELECT $1, $2, 'U', ponte_img, $3 FROM c ORDER BY ponte_n",
        unnest = unnest.join(", "),
        names = names.join(", "),
        rel = table.relation,
        order = table.key_list(),
        wanted = wanted.join(", "),
        unit = table.unit_filter(1),
    );
    let mut attempt = 0;
    loop {
        let mut tx = pool.begin().await?;
        sqlx::query(&format!(
            "SET LOCAL lock_timeout = '{}ms'",
            lock_timeout.as_millis().max(1)
        ))
        .execute(&mut *tx)
        .await?;
        let mut query = sqlx::query(&sql).bind(unit).bind(&table.name).bind(run);
        for column in &columns {
            query = query.bind(column);
        }
        match query.execute(&mut *tx).await {
            Ok(done) => {
                tx.commit().await?;
                return Ok(done.rows_affected());
            }
            Err(e) if gave_way(&e) && attempt < LOCK_RETRIES => {
                attempt += 1;
                drop(tx);
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt.min(10)))).await;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "re-sending {} rows of table {} to unit {unit}",
                        keys.len(),
                        table.name
                    )
                })
            }
        }
    }
}
