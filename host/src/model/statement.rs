//! What a transform turns a change into: parameterised statements with typed values, the row
//! key for the never-stale-over-new guard, and the INDICE ids it used.

use serde::{Deserialize, Serialize};

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
