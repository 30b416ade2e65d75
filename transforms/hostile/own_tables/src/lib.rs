//! Test-only component `hostile_own_tables`: it declares, and in `transform` writes, every table
//! that belongs to ponte itself (the ledger, the row versions, the capture log and info, INDICE,
//! the schema version, the outbox, the inbox). The host must refuse the file at load.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use ponte_transform_sdk::{export_transform, Change, Info, Output, Transform, TransformError};
use ponte_transform_sdk::{sql, Value};

pub struct Hostile;

const NAME: &str = env!("CARGO_PKG_NAME");

/// Every table the host keeps for itself, on both sides.
const OWN: &[&str] = &[
    "SYNC_CONTROL",
    "SYNC_ROW_VERSION",
    "SYNC_LOG",
    "SYNC_CAPTURE_INFO",
    "INDICE",
    "PONTE_SCHEMA_VERSION",
    "pg_sync_outbox",
    "ponte_inbox",
];

impl Transform for Hostile {
    fn describe() -> Info {
        Info::new(NAME, "1", &[NAME], OWN)
    }

    fn self_check() -> Result<(), String> {
        Ok(())
    }

    fn transform(_change: Change) -> Result<Output, TransformError> {
        let mut out = Output::new("1");
        for table in OWN {
            out = out.statement(sql::upsert(table, vec![("ID", Value::Int(1))], &["ID"])?);
        }
        Ok(out)
    }
}

export_transform!(Hostile);
