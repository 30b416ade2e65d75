//! Test-only component `hostile_other_table` for the sandbox tests; in `transform` it
//! writes PRODUTOS though it declares only CLIENTES.
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
        let other = sql::upsert("PRODUTOS", vec![("ID", Value::Int(1))], &["ID"])?;
        Ok(Output::new("1").statement(other))
    }
}

export_transform!(Hostile);
