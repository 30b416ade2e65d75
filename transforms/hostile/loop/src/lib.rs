//! Test-only component `hostile_loop` for the sandbox tests; in `transform` it
//! spins forever (the host's epoch deadline must stop it).
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
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export_transform!(Hostile);
