//! # ponte-transform-sdk — write a ponte transform in ~30 lines
//!
//! A transform is a pure function from one captured change to parameterised Firebird 2.5 SQL
//! (WIT contract `ponte:transform@1.0.0`, `wit/transform.wit`). Implement [`Transform`] and call
//! [`export_transform!`]:
//!
//! ```
//! use ponte_transform_sdk::{export_transform, fixture, sql, Change, Info, Op, Output, Row,
//!     Transform, TransformError};
//!
//! pub struct Colors;
//!
//! impl Transform for Colors {
//!     fn describe() -> Info {
//!         Info::new("colors", "1.0.0", &["colors"], &["CORES"])
//!     }
//!     fn self_check() -> Result<(), String> {
//!         let out = fixture::run::<Colors>(r#"{"table":"colors","op":"I","payload":{"id":1,"name":"Azul"}}"#)?;
//!         fixture::ensure(out.row_key == "1", "row key")
//!     }
//!     fn transform(change: Change) -> Result<Output, TransformError> {
//!         let row = Row::parse(&change.payload)?;
//!         let id = row.i64("id")?;
//!         let stmt = match change.op {
//!             Op::Delete => sql::delete("CORES", vec![("ID", row.int("id")?)])?,
//!             Op::Insert | Op::Update => sql::upsert(
//!                 "CORES",
//!                 vec![("ID", row.int("id")?), ("NOME", row.text("name", 40)?)],
//!                 &["ID"],
//!             )?,
//!         };
//!         Ok(Output::new(id.to_string()).statement(stmt))
//!     }
//! }
//!
//! export_transform!(Colors);
//! # fn main() { assert!(Colors::self_check().is_ok()); }
//! ```
//!
//! # Layout
//! - [`types`]: native mirror of the WIT records (`Change`, `Value`, `Output`, ...).
//! - [`row`]: `Row` typed getters over the JSON payload, `Settings` for `change.settings`.
//! - [`coerce`]: JSON value -> typed parameter for a Firebird column type (`ColumnType`).
//! - [`decimal`], [`time`]: exact NUMERIC text; DATE/TIMESTAMP text and IANA zones.
//! - [`sql`]: identifier checks and `UPDATE OR INSERT` / `INSERT` / `DELETE` builders.
//! - [`fixture`]: JSON fixtures for `self_check` and tests.
//! - `guest` (wasm32 only): the wit-bindgen bindings and the conversions behind the macro.
//!
//! Natively (x86_64) everything but `guest` builds, so mapping code is unit-tested with plain
//! `cargo test` and can be reused by native benchmarks.

extern crate self as ponte_transform_sdk;

pub mod coerce;
pub mod decimal;
pub mod fixture;
pub mod row;
pub mod sql;
pub mod time;
pub mod types;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod guest;

pub use coerce::ColumnType;
pub use row::{Row, Settings};
pub use time::Zone;
pub use types::{
    Change, Direction, ErrorKind, IdClaim, Info, Op, Output, Statement, TransformError, Value,
};

/// What a transform implements; the functions of the WIT world `transform`.
pub trait Transform {
    /// Declares the tables handled and written; called once at load.
    fn describe() -> Info;
    /// Runs the transform's own fixtures; an error refuses the file at load.
    fn self_check() -> Result<(), String>;
    /// Translates one change into statements, or says why it cannot.
    fn transform(change: Change) -> Result<Output, TransformError>;
}

/// Refuses upstream changes in a downstream-only transform (`unsupported`).
pub fn downstream_only(change: &Change) -> Result<(), TransformError> {
    match change.direction {
        Direction::Downstream => Ok(()),
        Direction::Upstream => Err(TransformError::unsupported(format!(
            "table {} is only handled downstream (PostgreSQL -> Firebird)",
            change.table
        ))),
    }
}

/// Exports a [`Transform`] implementation as the component's `describe`, `self-check` and
/// `transform`. Expands to nothing outside wasm32, so the crate also builds and tests natively.
#[macro_export]
macro_rules! export_transform {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct PonteGuest;

            impl $crate::guest::bindings::Guest for PonteGuest {
                fn describe() -> $crate::guest::bindings::Info {
                    $crate::guest::describe::<$ty>()
                }
                fn self_check() -> ::core::result::Result<(), ::std::string::String> {
                    <$ty as $crate::Transform>::self_check()
                }
                fn transform(
                    change: $crate::guest::bindings::Change,
                ) -> ::core::result::Result<
                    $crate::guest::bindings::Output,
                    $crate::guest::bindings::TransformError,
                > {
                    $crate::guest::transform::<$ty>(change)
                }
            }

            $crate::guest::bindings::__ponte_export!(PonteGuest with_types_in $crate::guest::bindings);
        };
    };
}
