//! The unit lifecycle (docs/lifecycle.md): `load` brings a unit to PostgreSQL's current state
//! through the normal delivery path, `verify` proves it holds what it should, `repair` re-sends
//! what verify found.
//!
//! # Layout
//! - `catalog`: a configured table's PostgreSQL relation, primary key, unit filter; parents first.
//! - `lock`: one load or repair per unit at a time (advisory lock).
//! - [`load`]: chunks written to the outbox `FOR SHARE` (`chunk`), progress per chunk (`store`).
//! - [`verify`]: checksums inside each database, bisection, rechecks, the report.
//! - `repair`: verify, then re-send as load chunks; `--delete-extra`.
//! - `schedule`: `[verify] every` inside `run`.
//! - [`status`]: the load and verify lines of `ponte status`.

pub mod catalog;
pub mod load;
mod lock;
pub mod repair;
pub mod schedule;
pub mod status;
pub mod verify;

pub use load::{load_unit, LoadOptions, UnitLoad};
pub use repair::{repair_unit, RepairOptions, UnitRepair};
pub use verify::{verify_units, TableVerify, Tools, UnitVerify};
