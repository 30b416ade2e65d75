//! What `ponte status` shows about transforms: loaded versions, refused files, unrouted tables.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What `ponte status` shows about transforms.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryStatus {
    /// The transforms directory.
    pub dir: PathBuf,
    /// Versions that are loaded (serving or available).
    pub loaded: Vec<LoadedStatus>,
    /// Files refused, with the reason; a file may be both loaded (its previous version) and
    /// refused (its current bytes).
    pub refused: Vec<RefusedStatus>,
    /// Bound tables that no transform serves right now, with the reason.
    pub unrouted: Vec<UnroutedStatus>,
    /// Routing notes an operator should see (a table several files could serve).
    pub notes: Vec<String>,
}

/// One loaded version.
#[derive(Debug, Clone, Serialize)]
pub struct LoadedStatus {
    /// File name.
    pub file: String,
    /// Hex sha256 of the file.
    pub sha256: String,
    /// `info.name`.
    pub name: String,
    /// `info.version`.
    pub version: String,
    /// `info.tables`.
    pub tables: Vec<String>,
    /// `info.writes`.
    pub writes: Vec<String>,
    /// When it was loaded.
    pub loaded_at: DateTime<Utc>,
    /// Bound tables it serves now.
    pub serves: Vec<String>,
}

/// One refused file.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedStatus {
    /// File name.
    pub file: String,
    /// Hex sha256 of the refused bytes.
    pub sha256: String,
    /// Why it was refused.
    pub reason: String,
    /// When.
    pub refused_at: DateTime<Utc>,
}

/// One bound table without a transform.
#[derive(Debug, Clone, Serialize)]
pub struct UnroutedStatus {
    /// The table.
    pub table: String,
    /// Why no transform serves it.
    pub reason: String,
}
