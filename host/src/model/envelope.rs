//! The messages on the wire: versioned JSON envelopes of a downstream change (PostgreSQL outbox
//! row -> a unit) and of an upstream change (a unit's SYNC_LOG row -> PostgreSQL). AMQP
//! properties are added by the broker layer (`amqp`), never by the roles.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Current envelope version; appliers refuse versions they do not know.
pub const ENVELOPE_VERSION: u32 = 1;

/// The body of every change message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope format version.
    pub v: u32,
    /// The change's identity (outbox correlation id).
    pub correlation_id: String,
    /// Outbox row id: the per-row sequence.
    pub outbox_id: i64,
    /// Target unit.
    pub unit: i32,
    /// Source table.
    pub table: String,
    /// `I`, `U` or `D`.
    pub op: String,
    /// The unit the change came from, for hub fan-out (None: PostgreSQL).
    pub origin: Option<i32>,
    /// When the change was written to the outbox (RFC 3339), for lag.
    pub created_at: String,
    /// The row image.
    pub payload: Box<RawValue>,
}

impl Envelope {
    /// The topic routing key `{exchange}.unit.{unit}.{table}.{op}`.
    pub fn routing_key(&self, exchange: &str) -> String {
        format!("{exchange}.unit.{}.{}.{}", self.unit, self.table, self.op)
    }
}

/// Current upstream envelope version; the PG applier refuses others.
pub const UPSTREAM_VERSION: u32 = 1;

/// The body of every upstream change message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamEnvelope {
    /// Envelope format version.
    pub v: u32,
    /// Deterministic identity ([`correlation_id`]): a republish after a crash is the same change.
    pub correlation_id: String,
    /// Origin unit.
    pub unit: i32,
    /// Firebird table (upper case).
    pub table: String,
    /// `I`, `U` or `D`.
    pub op: String,
    /// SYNC_LOG id at the unit (the per-unit sequence).
    pub log_id: i64,
    /// The row's primary key values joined by `|`.
    pub row_key: String,
    /// The last PostgreSQL outbox id the unit had applied to this row when it changed (None: none).
    pub base_seq: Option<i64>,
    /// The row's version when the image was read; past `base_seq`, a PostgreSQL change was
    /// applied at the unit over this change before it was published (the image is not the
    /// unit's any more).
    #[serde(default)]
    pub seq_at_publish: Option<i64>,
    /// The unit's wall-clock change time, `YYYY-MM-DD HH:MM:SS.ffff` (zone: `[upstream]
    /// unit_timezone`).
    pub changed_at: String,
    /// The same instant in UTC (RFC 3339), from the unit's own clock at read time, for the
    /// upstream lag (absent from older publishers).
    #[serde(default)]
    pub changed_at_utc: Option<String>,
    /// The row image keyed by Firebird column (I/U), or the key columns only (D).
    pub payload: serde_json::Value,
}

impl UpstreamEnvelope {
    /// The topic routing key `{exchange}.origin.{unit}.{table}.{op}`.
    pub fn routing_key(&self, exchange: &str) -> String {
        format!("{exchange}.origin.{}.{}.{}", self.unit, self.table, self.op)
    }
}

/// The correlation id of a SYNC_LOG row: a name-based UUID (version 8, SHA-256) of the capture
/// epoch written at install, the unit, the log id and the change time. The same row always gets
/// the same id; a database restored from an old backup (generator rewound) gets new ones because
/// its change times differ.
pub fn correlation_id(epoch: &str, unit: i32, log_id: i64, changed_at: &str) -> String {
    let digest =
        Sha256::digest(format!("ponte-upstream|{epoch}|{unit}|{log_id}|{changed_at}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_are_deterministic_and_distinct() {
        let a = correlation_id("e", 2, 10, "2026-11-23 10:00:00.0000");
        assert_eq!(a, correlation_id("e", 2, 10, "2026-11-23 10:00:00.0000"));
        assert_ne!(a, correlation_id("e", 3, 10, "2026-11-23 10:00:00.0000"));
        assert_ne!(a, correlation_id("e", 2, 10, "2026-11-23 10:00:00.0001"));
        assert_ne!(a, correlation_id("f", 2, 10, "2026-11-23 10:00:00.0000"));
        assert_eq!(
            uuid::Uuid::parse_str(&a).map(|u| u.get_version_num()).ok(),
            Some(8)
        );
    }
}
