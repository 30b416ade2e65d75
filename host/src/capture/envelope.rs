//! The upstream message: a versioned JSON envelope of one SYNC_LOG row (its identity, the base
//! version for conflict detection, the unit's change time) and the row image read at publish time.

use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    /// The row image keyed by Firebird column (I/U), or the key columns only (D).
    pub payload: serde_json::Value,
}

impl UpstreamEnvelope {
    /// The topic routing key `{exchange}.origin.{unit}.{table}.{op}`.
    pub fn routing_key(&self, exchange: &str) -> String {
        format!("{exchange}.origin.{}.{}.{}", self.unit, self.table, self.op)
    }

    /// Persistent JSON properties; headers repeat the routing facts for tooling.
    pub fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert("origin".into(), AMQPValue::LongInt(self.unit));
        headers.insert(
            "table".into(),
            AMQPValue::LongString(LongString::from(self.table.as_str())),
        );
        headers.insert(
            "op".into(),
            AMQPValue::LongString(LongString::from(self.op.as_str())),
        );
        headers.insert("log_id".into(), AMQPValue::LongLongInt(self.log_id));
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(self.correlation_id.as_str().into())
            .with_headers(headers)
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
