//! Host-side mirror of the transform-only WIT records: a transform's typed errors and its
//! self-description. The records every role shares (`Change`, `Output`, ...) are in
//! [`crate::model`].

use serde::{Deserialize, Serialize};

/// Classification of a transform's own error (WIT `error-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Payload shape is wrong.
    BadPayload,
    /// A value cannot be represented.
    InvalidValue,
    /// Text longer than its column.
    TooLong,
    /// Table/op/direction not handled.
    Unsupported,
    /// Per-table settings are wrong.
    BadSettings,
    /// A bug in the transform.
    Internal,
}

/// A transform's typed refusal of one change. Always permanent for that change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestError {
    /// What kind of problem.
    pub kind: ErrorKind,
    /// Payload field at fault, if any.
    pub field: Option<String>,
    /// Human-readable reason.
    pub message: String,
}

impl std::fmt::Display for GuestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{:?} in field `{field}`: {}", self.kind, self.message),
            None => write!(f, "{:?}: {}", self.kind, self.message),
        }
    }
}

/// What a transform declares about itself at load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// Short name.
    pub name: String,
    /// Transform's own version string.
    pub version: String,
    /// Source tables handled ("*" = any, by settings).
    pub tables: Vec<String>,
    /// Target tables it may write ("*" = the `target` named in settings).
    pub writes: Vec<String>,
}
