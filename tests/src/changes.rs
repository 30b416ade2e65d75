//! Changes as the tests write them: outbox rows straight into `pg_sync_outbox`, and complete
//! `customers` row images (the customers transform wants every column's key).

use crate::TestEnv;

/// Writes one outbox row (op `I`) as an application would; returns its correlation id.
pub async fn outbox_row(env: &TestEnv, unit: i32, table: &str, payload: &str) -> String {
    sqlx::query_scalar(
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) VALUES ($1, $2, 'I', $3::jsonb) \
         RETURNING correlation_id::text",
    )
    .bind(unit)
    .bind(table)
    .bind(payload)
    .fetch_one(&env.pg)
    .await
    .unwrap()
}

/// A complete `customers` row image (the transform wants every column's key) with `changes` applied.
pub fn customer(changes: serde_json::Value) -> String {
    let mut row = serde_json::json!({
        "id": 990000, "name": "X", "email": null, "city": null, "active": true, "credit_limit": null,
        "birth_date": null, "external_ref": null, "attributes": null, "updated_at": "2026-11-23T10:00:00+00:00"
    });
    if let (Some(row), Some(changes)) = (row.as_object_mut(), changes.as_object()) {
        row.extend(changes.clone());
    }
    row.to_string()
}
