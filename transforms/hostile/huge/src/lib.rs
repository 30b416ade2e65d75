//! Test-only component `hostile_huge` for the sandbox tests; in `transform` it
//! returns 100,000 statements of ~500 bytes (~50 MB) from one change.
//! `describe` and `self_check` are honest so it loads; only `transform` misbehaves, on purpose.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ponte_transform_sdk::{export_transform, Change, Info, Output, Transform, TransformError};
use ponte_transform_sdk::{sql, Value};

pub struct Hostile;

const NAME: &str = env!("CARGO_PKG_NAME");

impl Transform for Hostile {
    fn describe() -> Info {
        Info::new(NAME, "1", &[NAME], &["CLIENTES"])
    }

    fn self_check() -> Result<(), String> {
        Ok(())
    }

    fn transform(_change: Change) -> Result<Output, TransformError> {
        let filler = "x".repeat(430);
        let mut out = Output::new("1");
        for id in 0..100_000 {
            let columns = vec![
                ("ID", Value::Int(id)),
                ("NOME", Value::Text(filler.clone())),
            ];
            out = out.statement(sql::upsert("CLIENTES", columns, &["ID"])?);
        }
        Ok(out)
    }
}

export_transform!(Hostile);
