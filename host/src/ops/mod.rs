//! Operator commands other than `run`: migrations, status, dead letters.

pub mod dlq;
mod migrate;
pub mod status;

pub use migrate::{migrate, migrate_with};
