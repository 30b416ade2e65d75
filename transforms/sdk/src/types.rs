//! Native mirror of the WIT `ponte:transform/types` records. Transform logic is plain Rust on these
//! types, so it runs and is tested natively; only `guest.rs` converts them at the wasm boundary.

use std::fmt;

use serde::Deserialize;

/// The kind of row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A new row.
    Insert,
    /// A changed row (full image).
    Update,
    /// A removed row (at least the key).
    Delete,
}

/// Which way the change flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// PostgreSQL -> a unit's Firebird database.
    #[default]
    Downstream,
    /// A unit's Firebird database -> PostgreSQL.
    Upstream,
}

/// One captured row change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Source table name as captured.
    pub table: String,
    /// Insert, update or delete.
    pub op: Op,
    /// Downstream or upstream.
    pub direction: Direction,
    /// Target unit (downstream) or origin unit (upstream).
    pub unit: i32,
    /// The change's identity.
    pub correlation_id: String,
    /// Monotonic per source.
    pub sequence: i64,
    /// The row image, JSON object text.
    pub payload: String,
    /// Per-table settings, JSON object text ("{}" when none).
    pub settings: String,
}

/// A typed SQL parameter. Text forms where a binary form would lose precision.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Any integer column.
    Int(i64),
    /// DOUBLE PRECISION / FLOAT.
    Float(f64),
    /// Exact decimal text, e.g. "999999999999999.99".
    Decimal(String),
    /// Text (CHAR, VARCHAR).
    Text(String),
    /// "YYYY-MM-DD".
    Date(String),
    /// "HH:MM:SS[.ffff]".
    Time(String),
    /// "YYYY-MM-DD HH:MM:SS[.ffff]" in the target's local time.
    Timestamp(String),
    /// Blob bytes (text blobs carry UTF-8).
    Blob(Vec<u8>),
    /// Placeholder for the next id of this INDICE key, resolved by the host.
    NewId(String),
}

impl Value {
    /// Text used for this value in a row key ("42", "7|3"); `None` for NULL, floats and blobs.
    pub fn key_text(&self) -> Option<String> {
        match self {
            Value::Int(i) => Some(i.to_string()),
            Value::Decimal(s) | Value::Date(s) | Value::Time(s) | Value::Timestamp(s) => {
                Some(s.clone())
            }
            // Escaped so "a|b" + "c" and "a" + "b|c" stay different keys.
            Value::Text(s) => Some(s.replace('\\', "\\\\").replace('|', "\\|")),
            Value::Null | Value::Float(_) | Value::Blob(_) | Value::NewId(_) => None,
        }
    }
}

/// One parameterised statement: `?` marks parameters, bound in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// One SQL statement, no trailing `;`.
    pub sql: String,
    /// Parameters in order.
    pub params: Vec<Value>,
}

/// An id written into an INDICE-managed table; the host raises that key to at least `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaim {
    /// INDICE key, usually the target table name.
    pub indice_key: String,
    /// The id written.
    pub id: i64,
}

/// What applying one change takes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Output {
    /// Target row identity for the never-stale-over-new guard, e.g. "42" or "7|3".
    pub row_key: String,
    /// Statements, run in order in one transaction.
    pub statements: Vec<Statement>,
    /// INDICE keys to raise.
    pub id_claims: Vec<IdClaim>,
}

impl Output {
    /// An output for the row `row_key` with no statements yet.
    pub fn new(row_key: impl Into<String>) -> Self {
        Output {
            row_key: row_key.into(),
            statements: Vec::new(),
            id_claims: Vec::new(),
        }
    }

    /// Appends a statement.
    pub fn statement(mut self, statement: Statement) -> Self {
        self.statements.push(statement);
        self
    }

    /// Appends an id-claim on INDICE key `indice_key`.
    pub fn claim(mut self, indice_key: impl Into<String>, id: i64) -> Self {
        self.id_claims.push(IdClaim {
            indice_key: indice_key.into(),
            id,
        });
        self
    }
}

/// Why a change cannot be translated (WIT `error-kind`); every kind is permanent for the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The payload is not what this table's rows look like.
    BadPayload,
    /// A value has the wrong type or does not fit the target column.
    InvalidValue,
    /// A text is longer than its column (never truncated).
    TooLong,
    /// Table, operation or direction not handled.
    Unsupported,
    /// The per-table settings are wrong.
    BadSettings,
    /// A bug in the transform.
    Internal,
}

/// A transform's typed refusal of one change (WIT `transform-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformError {
    /// What kind of problem.
    pub kind: ErrorKind,
    /// The payload field at fault, when there is one.
    pub field: Option<String>,
    /// What is wrong and, where possible, what to do.
    pub message: String,
}

impl TransformError {
    /// A new error of `kind`, about `field` when given.
    pub fn new(kind: ErrorKind, field: Option<&str>, message: impl Into<String>) -> Self {
        TransformError {
            kind,
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    /// `bad-payload` about `field`.
    pub fn bad_payload(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadPayload, Some(field), message)
    }

    /// `invalid-value` about `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidValue, Some(field), message)
    }

    /// `unsupported`, no field.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, None, message)
    }

    /// `bad-settings`, no field.
    pub fn bad_settings(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadSettings, None, message)
    }

    /// `internal` (a bug in the transform), no field.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, None, message)
    }
}

impl fmt::Display for TransformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{:?} in field `{field}`: {}", self.kind, self.message),
            None => write!(f, "{:?}: {}", self.kind, self.message),
        }
    }
}

impl std::error::Error for TransformError {}

/// What a transform declares about itself (read once at load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Short name, e.g. "customers".
    pub name: String,
    /// The transform's own version.
    pub version: String,
    /// Source tables handled; "*" = any table routed to it with settings.
    pub tables: Vec<String>,
    /// Target tables written (upper case); "*" = the `target` of the per-table settings.
    pub writes: Vec<String>,
}

impl Info {
    /// Builds an `Info` from string slices.
    pub fn new(name: &str, version: &str, tables: &[&str], writes: &[&str]) -> Self {
        Info {
            name: name.to_owned(),
            version: version.to_owned(),
            tables: tables.iter().map(|t| (*t).to_owned()).collect(),
            writes: writes.iter().map(|t| (*t).to_owned()).collect(),
        }
    }
}
