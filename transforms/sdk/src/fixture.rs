//! Fixtures: a change written as a JSON file (payload and settings as JSON objects, routing
//! fields optional) and helpers that `self_check` and unit tests use to run a transform on them.
//!
//! ```json
//! {"table": "customers", "op": "insert", "payload": {"id": 1, "name": "Ana"}, "settings": {}}
//! ```
//! Optional: "direction" ("downstream"), "unit" (1), "correlation_id", "sequence" (1).

use serde::Deserialize;
use serde_json::Value as Json;

use crate::types::{Change, Direction, ErrorKind, Op, Output};
use crate::Transform;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    table: String,
    #[serde(deserialize_with = "op_code")]
    op: Op,
    #[serde(default)]
    direction: Direction,
    #[serde(default = "one")]
    unit: i32,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default = "one")]
    sequence: i64,
    payload: Json,
    #[serde(default)]
    settings: Option<Json>,
}

fn one<T: From<u8>>() -> T {
    T::from(1)
}

/// "insert"/"update"/"delete" or the outbox codes "I"/"U"/"D".
fn op_code<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Op, D::Error> {
    let code = String::deserialize(d)?;
    match code.as_str() {
        "insert" | "I" | "i" => Ok(Op::Insert),
        "update" | "U" | "u" => Ok(Op::Update),
        "delete" | "D" | "d" => Ok(Op::Delete),
        other => Err(serde::de::Error::custom(format!("unknown op `{other}`"))),
    }
}

/// A JSON value as the text the WIT carries: strings as they are (already JSON), the rest
/// serialised.
fn json_text(v: Json) -> String {
    match v {
        Json::String(s) => s,
        other => other.to_string(),
    }
}

/// Parses a fixture file into a change.
pub fn change(fixture: &str) -> Result<Change, String> {
    let f: FixtureFile =
        serde_json::from_str(fixture).map_err(|e| format!("fixture is not valid: {e}"))?;
    Ok(Change {
        correlation_id: f
            .correlation_id
            .unwrap_or_else(|| format!("fixture-{}-{}", f.table, f.sequence)),
        table: f.table,
        op: f.op,
        direction: f.direction,
        unit: f.unit,
        sequence: f.sequence,
        payload: json_text(f.payload),
        settings: f.settings.map(json_text).unwrap_or_else(|| "{}".to_owned()),
    })
}

/// Runs transform `T` on a fixture; the error says which fixture failed and why.
pub fn run<T: Transform>(fixture: &str) -> Result<Output, String> {
    let change = change(fixture)?;
    let what = format!("{} {:?}", change.table, change.op);
    T::transform(change).map_err(|e| format!("fixture {what}: {e}"))
}

/// Runs transform `T` on a fixture that must fail with `kind`.
pub fn run_err<T: Transform>(fixture: &str, kind: ErrorKind) -> Result<(), String> {
    let change = change(fixture)?;
    let what = format!("{} {:?}", change.table, change.op);
    match T::transform(change) {
        Err(e) if e.kind == kind => Ok(()),
        Err(e) => Err(format!(
            "fixture {what}: expected a {kind:?} error, got {e}"
        )),
        Ok(_) => Err(format!(
            "fixture {what}: expected a {kind:?} error, got an output"
        )),
    }
}

/// `Err(message)` unless `condition`; for terse checks in `self_check`.
pub fn ensure(condition: bool, message: &str) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(message.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_defaults_and_codes() {
        let c =
            change(r#"{"table": "t", "op": "D", "payload": {"id": 999999999999999.99}}"#).unwrap();
        assert_eq!(
            (c.op, c.direction, c.unit, c.sequence),
            (Op::Delete, Direction::Downstream, 1, 1)
        );
        assert_eq!(c.payload, r#"{"id":999999999999999.99}"#);
        assert_eq!(c.settings, "{}");
        assert!(change(r#"{"table": "t", "op": "X", "payload": {}}"#).is_err());
        assert!(change(r#"{"table": "t", "op": "I", "payload": {}, "extra": 1}"#).is_err());
    }
}
