//! AMQP properties of the envelopes: persistent, JSON, `message_id` = correlation id, and headers
//! that repeat the routing facts for tooling.

use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;

use crate::model::{Envelope, UpstreamEnvelope};

impl Envelope {
    /// Persistent JSON properties with the routing facts as headers.
    pub fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert("unit".into(), AMQPValue::LongInt(self.unit));
        headers.insert(
            "table".into(),
            AMQPValue::LongString(LongString::from(self.table.as_str())),
        );
        headers.insert(
            "op".into(),
            AMQPValue::LongString(LongString::from(self.op.as_str())),
        );
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

impl UpstreamEnvelope {
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
