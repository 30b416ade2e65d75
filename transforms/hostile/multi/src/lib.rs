//! Test-only component `hostile_multi` for the sandbox tests; in `transform` it
//! returns two statements in one string ("DELETE ...; DELETE ...").
//! `describe` and `self_check` are honest so it loads; only `transform` misbehaves, on purpose.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ponte_transform_sdk::{export_transform, Change, Info, Output, Transform, TransformError};
use ponte_transform_sdk::{Statement, Value};

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
        // Both on the declared table: only the statement count is wrong.
        let sql = "DELETE FROM CLIENTES WHERE ID = ?; DELETE FROM CLIENTES".to_owned();
        Ok(Output::new("1").statement(Statement {
            sql,
            params: vec![Value::Int(1)],
        }))
    }
}

export_transform!(Hostile);
