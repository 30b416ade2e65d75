//! The message on the wire: a versioned JSON envelope with the change's identity and payload, and
//! AMQP properties that repeat the routing facts for tooling (persistent, message_id = correlation id).

use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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

    /// Persistent JSON properties with the routing facts as headers.
    pub fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert("unit".into(), AMQPValue::LongInt(self.unit));
        headers.insert("table".into(), AMQPValue::LongString(LongString::from(self.table.as_str())));
        headers.insert("op".into(), AMQPValue::LongString(LongString::from(self.op.as_str())));
        headers.insert("outbox_id".into(), AMQPValue::LongLongInt(self.outbox_id));
        if let Some(origin) = self.origin {
            headers.insert("origin".into(), AMQPValue::LongInt(origin));
        }
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(self.correlation_id.as_str().into())
            .with_headers(headers)
    }
}
