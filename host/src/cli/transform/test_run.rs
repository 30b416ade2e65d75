//! `ponte transform test`: the production load path (compile, imports, describe, self-check,
//! routing, sandboxed call, validation) on one file and one JSON fixture, printed for a human.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;

use crate::model::{Change, Direction, Op, Output, Value};
use crate::transform::Standalone;

/// The fixture format shared with the guest SDK (`ponte_transform_sdk::fixture`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    table: String,
    op: String,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    unit: Option<i32>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    sequence: Option<i64>,
    // Raw: the payload's numbers stay exactly as written (a float would round 999999999999999.99).
    payload: Box<serde_json::value::RawValue>,
    #[serde(default)]
    settings: Option<Box<serde_json::value::RawValue>>,
}

/// A JSON value as the text the WIT carries: a string's content as is, anything else verbatim.
fn json_text(v: &serde_json::value::RawValue) -> String {
    match serde_json::from_str::<String>(v.get()) {
        Ok(s) => s,
        Err(_) => v.get().to_string(),
    }
}

/// Parses a fixture into the change and its settings JSON.
pub(crate) fn parse_fixture(text: &str) -> anyhow::Result<(Change, String)> {
    let f: Fixture = serde_json::from_str(text).context("the fixture is not valid")?;
    let op = match f.op.to_ascii_lowercase().as_str() {
        "insert" => Op::Insert,
        "update" => Op::Update,
        "delete" => Op::Delete,
        code => Op::from_code(code).ok_or_else(|| anyhow!("unknown op `{}`", f.op))?,
    };
    let direction = match f
        .direction
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("downstream") => Direction::Downstream,
        Some("upstream") => Direction::Upstream,
        Some(other) => bail!("unknown direction `{other}` (downstream or upstream)"),
    };
    let sequence = f.sequence.unwrap_or(1);
    let settings = f
        .settings
        .as_deref()
        .map(json_text)
        .unwrap_or_else(|| "{}".into());
    let change = Change {
        correlation_id: f
            .correlation_id
            .unwrap_or_else(|| format!("fixture-{}-{sequence}", f.table)),
        table: f.table,
        op,
        direction,
        unit: f.unit.unwrap_or(1),
        sequence,
        payload: json_text(&f.payload),
        settings: settings.clone(),
    };
    Ok((change, settings))
}

/// Loads `file`, runs it on the fixture `change` and returns the printable report; an `Err` when
/// the file is refused or the call fails.
pub(crate) fn run(file: &Path, change: &Path, settings: Option<&Path>) -> anyhow::Result<String> {
    let (change, mut settings_json) = read_fixture(change)?;
    if let Some(path) = settings {
        settings_json = read_text(path)?;
    }
    let loaded = load_file(file)?;
    let mut report = String::new();
    let _ = writeln!(report, "{}: loaded, self-check passed", loaded.describe());
    let _ = writeln!(
        report,
        "change: table {}, {:?}, {:?}, unit {}, sequence {}",
        change.table, change.op, change.direction, change.unit, change.sequence
    );
    let started = std::time::Instant::now();
    let output =
        call(&loaded, &change, settings_json).map_err(|e| anyhow!("{report}error: {e}"))?;
    let took = started.elapsed();
    render(&mut report, &output);
    let _ = write!(
        report,
        "({} us, first call on this instance)",
        took.as_micros()
    );
    Ok(report)
}

pub(crate) fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads and parses a fixture file.
pub(crate) fn read_fixture(path: &Path) -> anyhow::Result<(Change, String)> {
    parse_fixture(&read_text(path)?).with_context(|| format!("fixture {}", path.display()))
}

/// Compiles `file` and runs its self-check, as the daemon's loader does.
pub(crate) fn load_file(file: &Path) -> anyhow::Result<Standalone> {
    Standalone::load(file).map_err(|reason| anyhow!(reason))
}

/// One call through the production routing checks and statement validation.
pub(crate) fn call(
    loaded: &Standalone,
    change: &Change,
    settings_json: String,
) -> anyhow::Result<Output> {
    loaded.call(change, settings_json).map_err(|e| anyhow!(e))
}

/// Appends the output: row key, statements with numbered typed parameters, id claims.
pub(crate) fn render(report: &mut String, output: &Output) {
    let _ = writeln!(report, "row key: {}", output.row_key);
    if output.statements.is_empty() {
        let _ = writeln!(report, "no statements (the change is a no-op)");
    }
    for (i, st) in output.statements.iter().enumerate() {
        let _ = writeln!(report, "statement {}: {}", i + 1, st.sql);
        for (j, p) in st.params.iter().enumerate() {
            let (kind, text) = describe(p);
            let _ = writeln!(report, "    ?{:<3} {kind:<9} {text}", j + 1);
        }
    }
    for claim in &output.id_claims {
        let _ = writeln!(
            report,
            "id claim: INDICE {} >= {}",
            claim.indice_key, claim.id
        );
    }
}

fn describe(v: &Value) -> (&'static str, String) {
    let quoted = |s: &str| format!("{s:?}");
    match v {
        Value::Null => ("null", "NULL".into()),
        Value::Int(i) => ("int", i.to_string()),
        Value::Float(f) => ("float", f.to_string()),
        Value::Decimal(s) => ("decimal", s.clone()),
        Value::Text(s) => ("text", quoted(s)),
        Value::Date(s) => ("date", s.clone()),
        Value::Time(s) => ("time", s.clone()),
        Value::Timestamp(s) => ("timestamp", s.clone()),
        Value::Blob(b) => (
            "blob",
            format!("{} bytes {}", b.len(), hex::encode(&b[..b.len().min(32)])),
        ),
        Value::NewId(k) => ("new-id", format!("next INDICE id of {k}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IdClaim, Statement};

    #[test]
    fn fixtures_in_the_sdk_format() {
        let (c, s) = parse_fixture(
            r#"{"table":"customers","op":"insert","unit":3,"sequence":101,
                "payload":{"id":42},"settings":{"timezone":"America/Sao_Paulo"}}"#,
        )
        .unwrap();
        assert_eq!(
            (c.op, c.direction, c.unit, c.sequence),
            (Op::Insert, Direction::Downstream, 3, 101)
        );
        assert_eq!(c.payload, r#"{"id":42}"#);
        assert_eq!(s, r#"{"timezone":"America/Sao_Paulo"}"#);
        let (c, s) = parse_fixture(r#"{"table":"t","op":"D","payload":{}}"#).unwrap();
        assert_eq!(
            (c.op, c.unit, c.sequence, s.as_str()),
            (Op::Delete, 1, 1, "{}")
        );
        assert!(parse_fixture(r#"{"table":"t","op":"X","payload":{}}"#).is_err());
        assert!(parse_fixture(r#"{"table":"t","op":"I","payload":{},"nope":1}"#).is_err());
        assert!(parse_fixture(r#"{"table":"t","op":"I","payload":{},"direction":"up"}"#).is_err());
    }

    #[test]
    fn renders_typed_parameters() {
        let out = Output {
            row_key: "42".into(),
            statements: vec![Statement {
                sql: "INSERT INTO T (A, B, C) VALUES (?, ?, ?)".into(),
                params: vec![
                    Value::Int(42),
                    Value::Text("José".into()),
                    Value::NewId("T".into()),
                ],
            }],
            id_claims: vec![IdClaim {
                indice_key: "T".into(),
                id: 42,
            }],
        };
        let mut s = String::new();
        render(&mut s, &out);
        assert!(s.contains("statement 1: INSERT INTO T"), "{s}");
        assert!(s.contains("?1   int       42"), "{s}");
        assert!(s.contains("\"José\""), "{s}");
        assert!(s.contains("INDICE T >= 42"), "{s}");
    }
}
