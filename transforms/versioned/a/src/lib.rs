//! Test-only components `versioned_a` / `versioned_b` for the hot-reload test: `probe` rows
//! `{"id": int, "val": text}` -> `UPDATE OR INSERT INTO PROBE (ID, VAL, VERSAO) ... MATCHING (ID)`
//! with VERSAO the build's marker 'A' or 'B' (also its `info.version`), bound as a parameter.

use ponte_transform_sdk::{
    export_transform, fixture, sql, Change, Info, Op, Output, Row, Transform, TransformError, Value,
};

/// The probe transform; the package name picks the marker.
pub struct Probe;

const TARGET: &str = "PROBE";

/// "A" for versioned_a, "B" for versioned_b.
fn marker() -> &'static str {
    if env!("CARGO_PKG_NAME").ends_with('b') {
        "B"
    } else {
        "A"
    }
}

impl Transform for Probe {
    fn describe() -> Info {
        Info::new(env!("CARGO_PKG_NAME"), marker(), &["probe"], &[TARGET])
    }

    fn self_check() -> Result<(), String> {
        let out =
            fixture::run::<Probe>(r#"{"table":"probe","op":"I","payload":{"id":1,"val":"x"}}"#)?;
        let versao = out.statements.first().and_then(|s| s.params.get(2));
        fixture::ensure(
            versao == Some(&Value::Text(marker().into())),
            "VERSAO marker",
        )
    }

    fn transform(change: Change) -> Result<Output, TransformError> {
        let row = Row::parse(&change.payload)?;
        let id = row.i64("id")?;
        let statement = match change.op {
            Op::Delete => sql::delete(TARGET, vec![("ID", Value::Int(id))])?,
            Op::Insert | Op::Update => sql::upsert(
                TARGET,
                vec![
                    ("ID", Value::Int(id)),
                    ("VAL", row.opt_text("val", 255)?),
                    ("VERSAO", Value::Text(marker().into())),
                ],
                &["ID"],
            )?,
        };
        Ok(Output::new(id.to_string()).statement(statement))
    }
}

export_transform!(Probe);
