//! The PostgreSQL side of verify: a table's rows for one unit in primary-key chunks (keyset
//! pagination, no locks), rows by key for rechecks, and the unit's outbox horizon.

use anyhow::Context;
use sqlx::PgPool;

use crate::lifecycle::catalog::PgTable;

/// A PostgreSQL row: its key (text per key column) and its image (`to_jsonb`).
pub type PgRow = (Vec<String>, String);

/// The next `limit` rows of `table` for `unit` after `after`, in key order.
pub async fn chunk(
    pool: &PgPool,
    table: &PgTable,
    unit: i32,
    after: Option<&[String]>,
    limit: u32,
) -> anyhow::Result<Vec<PgRow>> {
    let cond = if after.is_some() {
        format!(" AND {}", table.after(3))
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT {keys}, to_jsonb(t)::text FROM {rel} t WHERE {unit}{cond} \
         ORDER BY {order} LIMIT $2",
        keys = table.key_text_array(),
        rel = table.relation,
        unit = table.unit_filter(1),
        order = table.key_list(),
    );
    let mut query = sqlx::query_as::<_, PgRow>(&sql)
        .bind(unit)
        .bind(i64::from(limit));
    for v in after.unwrap_or_default() {
        query = query.bind(v);
    }
    query
        .fetch_all(pool)
        .await
        .with_context(|| format!("reading {} for unit {unit}", table.name))
}

/// The rows of `table` for `unit` with these keys (absent ones are not returned).
pub async fn by_keys(
    pool: &PgPool,
    table: &PgTable,
    unit: i32,
    keys: &[Vec<String>],
) -> anyhow::Result<Vec<PgRow>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let width = table.key.len();
    let unnest: Vec<String> = (0..width).map(|i| format!("${}::text[]", i + 2)).collect();
    let names: Vec<String> = (0..width).map(|i| format!("k{i}")).collect();
    let wanted: Vec<String> = table
        .key
        .iter()
        .enumerate()
        .map(|(i, k)| format!("CAST(w.k{i} AS {})", k.sql_type))
        .collect();
    let sql = format!(
        "WITH w AS (SELECT * FROM unnest({}) AS w({})) \
         SELECT {}, to_jsonb(t)::text FROM {} t WHERE ({}) IN (SELECT {} FROM w) AND {}",
        unnest.join(", "),
        names.join(", "),
        table.key_text_array(),
        table.relation,
        table.key_list(),
        wanted.join(", "),
        table.unit_filter(1)
    );
    let mut out = Vec::new();
    for chunk in keys.chunks(1_000) {
        let mut query = sqlx::query_as::<_, PgRow>(&sql).bind(unit);
        for i in 0..width {
            let column: Vec<String> = chunk
                .iter()
                .map(|k| k.get(i).cloned().unwrap_or_default())
                .collect();
            query = query.bind(column);
        }
        out.extend(query.fetch_all(pool).await.with_context(|| {
            format!(
                "re-reading {} rows of {} for unit {unit}",
                chunk.len(),
                table.name
            )
        })?);
    }
    Ok(out)
}

/// The unit's newest outbox row that will reach it (not dead): (id, correlation id).
pub async fn horizon(pool: &PgPool, unit: i32) -> anyhow::Result<Option<(i64, String)>> {
    sqlx::query_as(
        "SELECT id, correlation_id::text FROM pg_sync_outbox \
         WHERE unit_id = $1 AND status <> 'dead' ORDER BY id DESC LIMIT 1",
    )
    .bind(unit)
    .fetch_optional(pool)
    .await
    .context("reading the unit's outbox horizon")
}
