//! The persisted state of loads: runs (`ponte_load_run`) and per-table progress
//! (`ponte_load_progress`), and `ponte load --status`.

use anyhow::Context;
use sqlx::PgPool;

/// One table's progress row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TableProgress {
    /// The run.
    pub run_id: i64,
    /// Table.
    pub table_name: String,
    /// Key of the last row written (text per key column).
    pub last_key: Option<Vec<String>>,
    /// Rows written so far.
    pub rows_done: i64,
    /// Chunks committed so far.
    pub chunks_done: i64,
    /// Rows counted at the start.
    pub rows_total: Option<i64>,
    /// Extra rows found at the unit (after writing).
    pub extra_rows: Option<i64>,
    /// Extra rows deleted (--delete-extra).
    pub extra_deleted: i64,
    /// pending, running, written (every chunk in the outbox), done (extras counted).
    pub state: String,
}

/// The unfinished load run of `unit` with its tables, if any.
pub async fn unfinished(
    pool: &PgPool,
    unit: i32,
    kind: &str,
) -> anyhow::Result<Option<(i64, Vec<String>)>> {
    sqlx::query_as(
        "SELECT id, tables FROM ponte_load_run WHERE unit_id = $1 AND kind = $2 \
         AND status <> 'done' ORDER BY id DESC LIMIT 1",
    )
    .bind(unit)
    .bind(kind)
    .fetch_optional(pool)
    .await
    .context("reading ponte_load_run (run `ponte migrate`?)")
}

/// Starts a run of `tables` for `unit`.
pub async fn start(pool: &PgPool, unit: i32, kind: &str, tables: &[String]) -> anyhow::Result<i64> {
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO ponte_load_run (unit_id, kind, tables) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(unit)
    .bind(kind)
    .bind(tables)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO ponte_load_progress (run_id, table_name) SELECT $1, unnest($2::text[])",
    )
    .bind(id)
    .bind(tables)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The progress of one table of a run.
pub async fn table(pool: &PgPool, run: i64, table: &str) -> anyhow::Result<TableProgress> {
    sqlx::query_as("SELECT * FROM ponte_load_progress WHERE run_id = $1 AND table_name = $2")
        .bind(run)
        .bind(table)
        .fetch_optional(pool)
        .await?
        .with_context(|| format!("load run {run} has no progress row for table {table}"))
}

/// Records the row count found at the start of a table.
pub async fn set_total(pool: &PgPool, run: i64, table: &str, total: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE ponte_load_progress SET rows_total = $3, updated_at = now(), \
         state = CASE WHEN state = 'pending' THEN 'running' ELSE state END \
         WHERE run_id = $1 AND table_name = $2",
    )
    .bind(run)
    .bind(table)
    .bind(total)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the extra rows of a table and marks it done.
pub async fn set_extra(
    pool: &PgPool,
    run: i64,
    table: &str,
    extra: i64,
    deleted: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE ponte_load_progress SET extra_rows = $3, extra_deleted = extra_deleted + $4, \
         state = 'done', updated_at = now() WHERE run_id = $1 AND table_name = $2",
    )
    .bind(run)
    .bind(table)
    .bind(extra)
    .bind(deleted)
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends a run.
pub async fn finish(pool: &PgPool, run: i64, error: Option<&str>) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE ponte_load_run \
         SET status = CASE WHEN $2::text IS NULL THEN 'done' ELSE 'failed' END, \
         error = $2, updated_at = now(), \
         finished_at = CASE WHEN $2::text IS NULL THEN now() END WHERE id = $1",
    )
    .bind(run)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// `ponte load --status`: the latest run of each unit (all units, or `units`), one line per
/// table.
pub async fn status(pool: &PgPool, units: Option<&[i32]>) -> anyhow::Result<String> {
    type Line = (
        i32,
        i64,
        String,
        String,
        String,
        i64,
        Option<i64>,
        i64,
        Option<i64>,
        i64,
        String,
    );
    let rows: Vec<Line> = sqlx::query_as(
        "SELECT r.unit_id, r.id, r.kind, r.status, p.table_name, p.rows_done, p.rows_total, \
             p.chunks_done, p.extra_rows, p.extra_deleted, \
             p.state || coalesce(' (' || r.error || ')', '') \
         FROM ponte_load_run r JOIN ponte_load_progress p ON p.run_id = r.id \
         WHERE r.id IN (SELECT max(id) FROM ponte_load_run GROUP BY unit_id) \
           AND ($1::int[] IS NULL OR r.unit_id = ANY($1)) \
         ORDER BY r.unit_id, p.table_name",
    )
    .bind(units.map(<[i32]>::to_vec))
    .fetch_all(pool)
    .await
    .context("reading load progress (run `ponte migrate`?)")?;
    if rows.is_empty() {
        return Ok("no load has run for these units\n".into());
    }
    let mut out = format!(
        "{:<5} {:<6} {:<7} {:<8} {:<24} {:>10} {:>10} {:>7} {:>7} state\n",
        "unit", "run", "kind", "status", "table", "rows", "of", "chunks", "extra"
    );
    for (unit, run, kind, status, table, done, total, chunks, extra, deleted, state) in rows {
        let extra = match extra {
            Some(n) if deleted > 0 => format!("{n}-{deleted}"),
            Some(n) => n.to_string(),
            None => "-".into(),
        };
        out.push_str(&format!(
            "{unit:<5} {run:<6} {kind:<7} {status:<8} {table:<24} {done:>10} {:>10} {chunks:>7} \
             {extra:>7} {state}\n",
            total.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
        ));
    }
    Ok(out)
}
