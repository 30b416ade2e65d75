//! A row change as every role sees it: which table, which operation, which way it flows, and
//! its identity and row image.

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
