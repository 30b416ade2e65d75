//! Test-only component `hostile_ddl` for the sandbox tests; in `transform` it
//! returns DDL ("DROP TABLE CLIENTES") that the host must refuse.
//! `describe` and `self_check` are honest so it loads; only `transform` misbehaves, on purpose.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ponte_transform_sdk::Statement;
use ponte_transform_sdk::{export_transform, Change, Info, Output, Transform, TransformError};

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
        let drop = Statement {
            sql: "DROP TABLE CLIENTES".into(),
            params: vec![],
        };
        Ok(Output::new("1").statement(drop))
    }
}

export_transform!(Hostile);
