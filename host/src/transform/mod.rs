//! The transform platform, host side: sandboxed wasm components that turn one change into
//! validated SQL statements, hot-reloaded from a directory.
//!
//! # Layout
//! - [`types`]: host mirror of the WIT records (`Change`, `Output`, ...), free of wasmtime types.
//! - `settings`: [`EngineSettings`], every limit and its default in one place.
//! - `bindings`: the `bindgen!` output of `wit/` and conversions to [`types`].
//! - `engine`: the one wasmtime `Engine` (epoch ticker), compiling and checking a file.
//! - `instance`: a loaded version and its pool of reusable instances; one sandboxed call.
//! - `sql`: the validator every returned statement passes before the host may run it
//!   (`lexer`, `names`: Firebird/PostgreSQL identifier case rules).
//! - `route`: table bindings, [`Pinned`] (a table bound to one loaded version).
//! - `registry`: [`TransformRegistry`]: load, route, status; `reload` (rescan and atomic swap).
//! - `watch`: hot reload from filesystem events.
//! - `metrics`, `error`: prometheus series and the error enums of this boundary.
//! - `standalone`: one file outside the registry, for the authoring commands (`crate::cli`).
//!
//! # Use
//! ```text
//! let registry = TransformRegistry::load(settings, dir, bindings, &metrics)?;
//! let watcher = registry.watch(shutdown.child_token());
//! // per message, on a blocking thread:
//! let pinned = registry.pin(&change.table)?;   // the version the message finishes on
//! let output = pinned.call(&change)?;          // validated statements
//! ```

mod bindings;
mod engine;
mod error;
mod instance;
mod metrics;
mod registry;
mod route;
mod settings;
mod sql;
mod standalone;
pub mod types;
mod watch;

pub use error::{CallError, LoadError};
pub use registry::{
    LoadedStatus, RefusedStatus, RegistryStatus, TransformRegistry, UnroutedStatus,
};
pub use route::{Pinned, TableBinding, TransformVersion};
pub use settings::EngineSettings;
pub(crate) use sql::{column_uses, ColumnUse, Dialect, TableName};
pub use standalone::Standalone;
