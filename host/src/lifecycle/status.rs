//! The lifecycle part of `ponte status`: each unit's latest load or repair run (state and rows
//! per table) and the last verify result per table, from the tables the commands keep.

use std::fmt::Write as _;

use anyhow::Context;
use sqlx::PgPool;

/// One verify result row: unit, table, expected, missing, extra, differing, unsettled, error,
/// checked at.
type VerifyLine = (i32, String, i64, i64, i64, i64, i64, Option<String>, String);

/// The section as text (empty when neither command has run).
pub async fn section(pool: &PgPool) -> anyhow::Result<String> {
    let mut out = String::new();
    let any_load: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM ponte_load_run)")
        .fetch_one(pool)
        .await
        .context("reading load runs (run `ponte migrate`?)")?;
    if any_load {
        out.push_str("\nload / repair (latest run per unit):\n");
        out.push_str(&super::load::store::status(pool, None).await?);
    }
    let verified: Vec<VerifyLine> = sqlx::query_as(
        "SELECT unit_id, table_name, expected, missing, extra, differing, unsettled, error, \
             to_char(checked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC' \
         FROM ponte_verify_result ORDER BY unit_id, table_name",
    )
    .fetch_all(pool)
    .await
    .context("reading verify results (run `ponte migrate`?)")?;
    if verified.is_empty() {
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "\nverify (last result per unit and table):\n{:<5} {:<24} {:<8} {:>10} {:>8} {:>8} {:>9} \
         {:>9}  checked",
        "unit", "table", "result", "expected", "missing", "extra", "differing", "unsettled"
    );
    for (unit, table, expected, missing, extra, differing, unsettled, error, at) in verified {
        let result = match (&error, missing + extra + differing) {
            (Some(_), _) => "ERROR",
            (None, 0) if unsettled == 0 => "clean",
            (None, 0) => "unsettled",
            _ => "DIFFERS",
        };
        let _ = writeln!(
            out,
            "{unit:<5} {table:<24} {result:<8} {expected:>10} {missing:>8} {extra:>8} \
             {differing:>9} {unsettled:>9}  {at}{}",
            error.map(|e| format!(" ({e})")).unwrap_or_default()
        );
    }
    Ok(out)
}
