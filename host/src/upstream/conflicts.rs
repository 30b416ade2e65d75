//! `ponte conflicts list`: the conflicts recorded by the PG applier, open ones (manual policy,
//! waiting for an operator) by default, with both row images.

use serde::Serialize;
use sqlx::PgPool;

use crate::config::Config;

/// One recorded conflict.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ConflictRow {
    /// Conflict id.
    pub id: i64,
    /// The unit's change.
    pub correlation_id: uuid::Uuid,
    /// Origin unit.
    pub unit_id: i32,
    /// Firebird table.
    pub fb_table: String,
    /// PostgreSQL table.
    pub pg_table: String,
    /// Row key.
    pub row_key: String,
    /// The unit's operation.
    pub operation: String,
    /// Policy in force.
    pub policy: String,
    /// unit_applied, pg_kept or parked.
    pub resolution: String,
    /// open or resolved.
    pub status: String,
    /// The PG change the unit's row was based on.
    pub base_seq: Option<i64>,
    /// The newer PG change it conflicted with.
    pub pg_seq: i64,
    /// The unit's row image.
    pub unit_image: Option<serde_json::Value>,
    /// PostgreSQL's row image at detection.
    pub pg_image: Option<serde_json::Value>,
    /// When it was detected.
    pub detected_at: chrono::DateTime<chrono::Utc>,
}

/// Conflicts, newest first: open ones only unless `all`.
pub async fn list_conflicts(
    pool: &PgPool,
    all: bool,
    limit: i64,
) -> Result<Vec<ConflictRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, correlation_id, unit_id, fb_table, pg_table, row_key, operation::text AS \
         operation, policy, \
         resolution, status, base_seq, pg_seq, unit_image, pg_image, detected_at FROM \
         ponte_conflict \
         WHERE $1 OR status = 'open' ORDER BY id DESC LIMIT $2",
    )
    .bind(all)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Prints conflicts as JSON lines (CLI).
pub async fn print_conflicts(config: &Config, all: bool, limit: i64) -> anyhow::Result<()> {
    let pool = crate::pg::connect(&config.postgres).await?;
    let rows = list_conflicts(&pool, all, limit).await?;
    for row in &rows {
        println!("{}", serde_json::to_string(row)?);
    }
    eprintln!(
        "{} conflict(s){}",
        rows.len(),
        if all { "" } else { " open" }
    );
    pool.close().await;
    Ok(())
}
