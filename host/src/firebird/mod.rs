//! Firebird access for the unit appliers and `ponte migrate`: connecting with the native client
//! (Legacy_Auth-capable, as real 2.5 sites need), classifying errors, the host's schema and the
//! batch apply transaction.

mod apply;
mod block;
mod charset;
mod connect;
mod error;
mod generator;
mod hooks;
mod ledger;
mod lookup;
mod migrate;
mod schema;
mod statements;
mod worker;

pub use apply::{
    apply_batch, apply_batch_with, BatchError, BatchOutcome, Prepared, HOST_WRITE_FLAG,
};
pub use charset::{holds, holds_everything, Held, TextColumns};
pub use connect::{connect, relation_exists, Database, FbConn};
pub use error::{classify, FbFailure, FbFailureKind};
pub use generator::{raise_sql, Generators};
pub use hooks::UnitHooks;
pub use migrate::{migrate_unit, split_script};
pub use schema::{compile_check, table_columns, Column};
pub use worker::{FbSession, FbWorker, WorkerError};
