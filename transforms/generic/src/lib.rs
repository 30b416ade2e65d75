//! The generic transform: maps the JSON keys of a plain table's rows to columns of one Firebird
//! table, driven entirely by the per-table settings (format: README.md). Insert/update ->
//! `UPDATE OR INSERT ... MATCHING (key)`, delete -> `DELETE ... WHERE key`. Upstream changes
//! (a unit's Firebird -> PostgreSQL) go the other way with the same settings format: `upstream`.

pub mod settings;
pub mod upstream;

use ponte_transform_sdk::{
    export_transform, fixture, sql, Change, Direction, Info, Op, Output, Row, Transform,
    TransformError, Value,
};

use settings::{IfMissing, Plan, Unmapped};

/// The generic JSON-key-to-column transform.
pub struct Generic;

/// The row key: the key values joined by "|" ("42", "7|3").
pub(crate) fn row_key(plan: &Plan, keys: &[(String, Value)]) -> Result<String, TransformError> {
    let mut parts = Vec::with_capacity(keys.len());
    for (i, (_, v)) in keys.iter().enumerate() {
        let field = plan
            .key
            .get(i)
            .and_then(|&c| plan.columns.get(c))
            .map(|c| c.field.as_str());
        parts.push(v.key_text().ok_or_else(|| {
            TransformError::new(
                ponte_transform_sdk::ErrorKind::BadSettings,
                field,
                "this key type cannot form a row key; use an integer, text, decimal or date key",
            )
        })?);
    }
    Ok(parts.join("|"))
}

/// Applies `plan` to one change.
pub fn apply(plan: &Plan, op: Op, row: &Row) -> Result<Output, TransformError> {
    let mut keys = Vec::with_capacity(plan.key.len());
    for &at in &plan.key {
        let c = &plan.columns[at];
        keys.push((c.column.clone(), row.value(&c.field, &c.ty, false)?));
    }
    let mut out = Output::new(row_key(plan, &keys)?);
    if op == Op::Delete {
        return Ok(out.statement(sql::delete(&plan.target, keys)?));
    }

    if plan.unmapped == Unmapped::Error {
        if let Some(extra) = row
            .fields()
            .find(|f| !plan.columns.iter().any(|c| c.field == *f))
        {
            return Err(TransformError::bad_payload(
                extra,
                "not mapped to a column; map it in `columns` or set \"unmapped\": \"ignore\"",
            ));
        }
    }
    let mut values = Vec::with_capacity(plan.columns.len());
    for (at, c) in plan.columns.iter().enumerate() {
        if let Some(k) = plan.key.iter().position(|&i| i == at) {
            values.push((c.column.clone(), keys[k].1.clone()));
            continue;
        }
        let value = match (row.has(&c.field), c.if_missing) {
            (true, _) | (false, IfMissing::Error) => row.value(&c.field, &c.ty, !c.required)?,
            (false, IfMissing::Null) if c.required => {
                return Err(TransformError::bad_payload(
                    &c.field,
                    "missing; the column is required",
                ))
            }
            (false, IfMissing::Null) => Value::Null,
            (false, IfMissing::Skip) => continue,
        };
        values.push((c.column.clone(), value));
    }
    if let Some((indice_key, at)) = &plan.claim {
        let k = plan.key.iter().position(|i| i == at);
        if let Some(Value::Int(id)) = k.and_then(|k| keys.get(k)).map(|(_, v)| v) {
            out = out.claim(indice_key.clone(), *id);
        }
    }
    let matching: Vec<&str> = plan
        .key
        .iter()
        .map(|&i| plan.columns[i].column.as_str())
        .collect();
    Ok(out.statement(sql::upsert(&plan.target, values, &matching)?))
}

/// Runs a products fixture with the documented example settings (examples/).
fn products(fixture: &str) -> Result<Output, String> {
    let mut change = fixture::change(fixture)?;
    change.settings = include_str!("../examples/products.settings.json").to_owned();
    Generic::transform(change).map_err(|e| format!("products fixture: {e}"))
}

impl Transform for Generic {
    fn describe() -> Info {
        Info::new("generic", env!("CARGO_PKG_VERSION"), &["*"], &["*"])
    }

    fn self_check() -> Result<(), String> {
        let out = products(include_str!("../fixtures/products_insert.json"))?;
        fixture::ensure(out.row_key == "17", "products insert: row key")?;
        fixture::ensure(out.id_claims.len() == 1, "products insert: id-claim")?;
        let price = out.statements.first().and_then(|s| s.params.get(3));
        let exact = Some(&Value::Decimal("999999999999999.99".into()));
        fixture::ensure(price == exact, "products insert: price is not exact")?;
        let del = products(include_str!("../fixtures/products_delete.json"))?;
        fixture::ensure(del.statements.len() == 1, "products delete: one statement")?;
        let mut up = fixture::change(include_str!("../fixtures/clientes_upstream.json"))?;
        up.settings = include_str!("../examples/clientes.upstream.settings.json").to_owned();
        let up = Generic::transform(up).map_err(|e| format!("clientes upstream fixture: {e}"))?;
        fixture::ensure(up.row_key == "2000000001", "clientes upstream: row key")?;
        let sql = up
            .statements
            .first()
            .map(|s| s.sql.as_str())
            .unwrap_or_default();
        fixture::ensure(
            sql.starts_with("INSERT INTO customers"),
            "clientes upstream: PostgreSQL upsert",
        )
    }

    fn transform(change: Change) -> Result<Output, TransformError> {
        let plan = Plan::parse(&change.settings)?;
        let row = Row::parse(&change.payload)?;
        match change.direction {
            Direction::Downstream => apply(&plan, change.op, &row),
            Direction::Upstream => upstream::apply(&plan, change.op, &row),
        }
    }
}

export_transform!(Generic);

#[cfg(test)]
mod tests;
#[cfg(test)]
mod upstream_tests;
