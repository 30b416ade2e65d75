//! Host-side mirror of the WIT `ponte:transform/types` records: what the applier hands a transform
//! and what it gets back. Independent of the wasmtime bindings so the rest of the host never
//! touches generated code.

use serde::{Deserialize, Serialize};

/// Kind of row change; the outbox stores it as `I`, `U` or `D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// A new row.
    Insert,
    /// A changed row (full image).
    Update,
    /// A removed row (the key at least).
    Delete,
}

impl Op {
    /// The one-letter code used in the outbox, routing keys and ledgers.
    pub fn code(self) -> char {
        match self {
            Op::Insert => 'I',
            Op::Update => 'U',
            Op::Delete => 'D',
        }
    }

    /// Parses `I`/`U`/`D` (case-insensitive); `None` for anything else.
    pub fn from_code(code: &str) -> Option<Op> {
        match code.trim() {
            "I" | "i" => Some(Op::Insert),
            "U" | "u" => Some(Op::Update),
            "D" | "d" => Some(Op::Delete),
            _ => None,
        }
    }
}

/// Which way a change flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// PostgreSQL -> a unit's Firebird.
    Downstream,
    /// A unit's Firebird -> PostgreSQL.
    Upstream,
}

/// One captured change, as given to a transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Source table name.
    pub table: String,
    /// Insert, update or delete.
    pub op: Op,
    /// Downstream or upstream.
    pub direction: Direction,
    /// Target unit (downstream) or origin unit (upstream).
    pub unit: i32,
    /// The change's identity (outbox correlation id).
    pub correlation_id: String,
    /// Monotonic sequence of the source (outbox id / SYNC_LOG id).
    pub sequence: i64,
    /// Row image, JSON object text.
    pub payload: String,
    /// Per-table settings from the config, JSON object text ("{}" when none).
    pub settings: String,
}

/// A typed SQL parameter (see the WIT `value` variant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Any integer column.
    Int(i64),
    /// DOUBLE PRECISION / FLOAT.
    Float(f64),
    /// Exact decimal as text.
    Decimal(String),
    /// Text.
    Text(String),
    /// `YYYY-MM-DD`.
    Date(String),
    /// `HH:MM:SS[.ffff]`.
    Time(String),
    /// `YYYY-MM-DD HH:MM:SS[.ffff]`, target local time.
    Timestamp(String),
    /// Binary data.
    Blob(Vec<u8>),
    /// Placeholder for the next id of an INDICE key, resolved by the host in the transaction.
    NewId(String),
}

/// One parameterised statement (`?` placeholders).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// SQL text, a single statement.
    pub sql: String,
    /// Parameters in order.
    pub params: Vec<Value>,
}

/// An id written into an INDICE-managed table; the host raises the INDICE key to at least `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaim {
    /// INDICE key (usually the target table name).
    pub indice_key: String,
    /// The id used.
    pub id: i64,
}

/// What applying one change takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// Target row identity for the never-stale-over-new guard.
    pub row_key: String,
    /// Statements to run, in order, in the host's transaction.
    pub statements: Vec<Statement>,
    /// INDICE keys to raise.
    pub id_claims: Vec<IdClaim>,
}

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
