//! Test-only component `hostile_memory` for the sandbox tests; in `transform` it
//! allocates without bound (the store's memory limit must stop it).
//! `describe` and `self_check` are honest so it loads; only `transform` misbehaves, on purpose.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, missing_docs)]

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
        // Reserved, not filled: each chunk grows the linear memory at once, so the store's
        // memory limit stops it in a few steps, long before the deadline even on a busy machine.
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = Vec::with_capacity(1 << 20);
            chunk.push(1u8);
            hoard.push(std::hint::black_box(chunk));
        }
    }
}

export_transform!(Hostile);
