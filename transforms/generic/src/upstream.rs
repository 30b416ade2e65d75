//! The generic transform upstream (a unit's Firebird -> PostgreSQL): the same settings format, with
//! `columns` keyed by Firebird column and `target`/`column` naming PostgreSQL ones. Each type
//! names the Firebird side; the value lands in its natural PostgreSQL counterpart (bool_char and
//! bool_smallint -> boolean, decimal -> numeric, timestamptz -> timestamptz from the wall clock
//! in the zone, json_blob -> jsonb). Insert/update -> `INSERT .. ON CONFLICT (key) DO UPDATE`,
//! delete -> `DELETE .. WHERE key`; every parameter carries an explicit cast, because the host
//! binds exact decimals, dates and times as text.

use serde_json::Value as Json;

use ponte_transform_sdk::coerce::coerce;
use ponte_transform_sdk::{time, ColumnType, Op, Output, Row, TransformError, Value};

use crate::settings::{Column, IfMissing, Plan, Unmapped};

/// PostgreSQL spelling of an identifier the plan upper-cased (unquoted names fold to lower case).
fn pg(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// The value of `json` (Firebird's row image) for column `c`, and the SQL that casts its `?`.
fn convert(c: &Column, json: &Json) -> Result<(Value, String), TransformError> {
    let cast = |ty: &str| format!("CAST(? AS {ty})");
    let flag = |b: bool| Value::Text(if b { "true" } else { "false" }.to_owned());
    let null = json.is_null();
    Ok(match &c.ty {
        ColumnType::Text { .. } | ColumnType::TextBlob => {
            let v = if null {
                Value::Null
            } else {
                coerce(
                    &c.field,
                    json,
                    &ColumnType::Text {
                        max_len: usize::MAX,
                    },
                )?
            };
            if let (ColumnType::Text { max_len }, Value::Text(t)) = (&c.ty, &v) {
                if t.chars().count() > *max_len {
                    return Err(TransformError::new(
                        ponte_transform_sdk::ErrorKind::TooLong,
                        Some(&c.field),
                        format!(
                            "{} characters; the column holds {max_len}",
                            t.chars().count()
                        ),
                    ));
                }
            }
            (v, cast("text"))
        }
        ColumnType::Int { min, .. } => {
            let ty = match *min {
                m if m >= i64::from(i16::MIN) => "smallint",
                m if m >= i64::from(i32::MIN) => "integer",
                _ => "bigint",
            };
            (coerce(&c.field, json, &c.ty)?, cast(ty))
        }
        ColumnType::Decimal { precision, scale } => (
            coerce(&c.field, json, &c.ty)?,
            cast(&format!("numeric({precision},{scale})")),
        ),
        ColumnType::Double => (coerce(&c.field, json, &c.ty)?, cast("double precision")),
        ColumnType::BoolText { yes, no } => {
            let v = match json {
                Json::Null => Value::Null,
                Json::String(s) if s.trim_end() == yes => flag(true),
                Json::String(s) if s.trim_end() == no => flag(false),
                other => {
                    return Err(TransformError::invalid(
                        &c.field,
                        format!("expected \"{yes}\" or \"{no}\", found {other}"),
                    ))
                }
            };
            (v, cast("boolean"))
        }
        ColumnType::BoolSmallint => {
            let v = match json.as_i64() {
                _ if null => Value::Null,
                Some(0) => flag(false),
                Some(1) => flag(true),
                _ => {
                    return Err(TransformError::invalid(
                        &c.field,
                        format!("expected 0 or 1, found {json}"),
                    ))
                }
            };
            (v, cast("boolean"))
        }
        ColumnType::Uuid => (coerce(&c.field, json, &c.ty)?, cast("uuid")),
        ColumnType::Date => (coerce(&c.field, json, &c.ty)?, cast("date")),
        ColumnType::Timestamp => (coerce(&c.field, json, &c.ty)?, cast("timestamp")),
        ColumnType::TimestampTz(zone) => {
            // Firebird keeps the wall clock of the zone; PostgreSQL turns it into an instant.
            let v = match json {
                Json::Null => Value::Null,
                Json::String(s) => Value::Timestamp(
                    time::timestamp(s).map_err(|e| TransformError::invalid(&c.field, e))?,
                ),
                _ => {
                    return Err(TransformError::invalid(
                        &c.field,
                        "expected a timestamp string",
                    ))
                }
            };
            (
                v,
                format!("(CAST(? AS timestamp) AT TIME ZONE '{}')", zone.name()),
            )
        }
        ColumnType::JsonBlob => {
            let v = match json {
                Json::Null => Value::Null,
                Json::String(s) => {
                    serde_json::from_str::<Json>(s)
                        .map_err(|e| TransformError::invalid(&c.field, format!("not JSON: {e}")))?;
                    Value::Text(s.clone())
                }
                _ => return Err(TransformError::invalid(&c.field, "expected JSON text")),
            };
            (v, cast("jsonb"))
        }
    })
}

/// Translates one upstream change with `plan`.
pub fn apply(plan: &Plan, op: Op, row: &Row) -> Result<Output, TransformError> {
    let target = pg(&plan.target);
    let mut keys = Vec::with_capacity(plan.key.len());
    let mut key_sql = Vec::with_capacity(plan.key.len());
    for &at in &plan.key {
        let c = &plan.columns[at];
        let json = row
            .get(&c.field)
            .ok_or_else(|| TransformError::bad_payload(&c.field, "missing from the payload"))?;
        if json.is_null() {
            return Err(TransformError::bad_payload(&c.field, "key column is null"));
        }
        let (value, cast) = convert(c, json)?;
        key_sql.push(format!("{} = {cast}", pg(&c.column)));
        keys.push((c.column.clone(), value));
    }
    let mut out = Output::new(crate::row_key(plan, &keys)?);
    if op == Op::Delete {
        let sql = format!("DELETE FROM {target} WHERE {}", key_sql.join(" AND "));
        return Ok(out.statement(ponte_transform_sdk::Statement {
            sql,
            params: keys.into_iter().map(|(_, v)| v).collect(),
        }));
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
    let (mut names, mut marks, mut params, mut sets) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (at, c) in plan.columns.iter().enumerate() {
        let json = match (row.get(&c.field), c.if_missing) {
            (Some(j), _) => j.clone(),
            (None, IfMissing::Error) => {
                return Err(TransformError::bad_payload(
                    &c.field,
                    "missing from the payload",
                ))
            }
            (None, IfMissing::Null) if c.required => {
                return Err(TransformError::bad_payload(
                    &c.field,
                    "missing; the column is required",
                ))
            }
            (None, IfMissing::Null) => Json::Null,
            (None, IfMissing::Skip) => continue,
        };
        if json.is_null() && c.required {
            return Err(TransformError::invalid(
                &c.field,
                "is null; the column is NOT NULL",
            ));
        }
        let (value, cast) = convert(c, &json)?;
        let name = pg(&c.column);
        if !plan.key.contains(&at) {
            sets.push(format!("{name} = EXCLUDED.{name}"));
        }
        names.push(name);
        marks.push(cast);
        params.push(value);
    }
    let keys: Vec<String> = plan
        .key
        .iter()
        .map(|&i| pg(&plan.columns[i].column))
        .collect();
    let action = if sets.is_empty() {
        "NOTHING".to_owned()
    } else {
        format!("UPDATE SET {}", sets.join(", "))
    };
    let sql = format!(
        "INSERT INTO {target} ({}) VALUES ({}) ON CONFLICT ({}) DO {action}",
        names.join(", "),
        marks.join(", "),
        keys.join(", ")
    );
    out = out.statement(ponte_transform_sdk::Statement { sql, params });
    Ok(out)
}
