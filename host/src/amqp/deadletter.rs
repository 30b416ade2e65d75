//! Dead letters, written and read in one place. Writing: the original message is republished,
//! confirmed and routed, to the dead-letter exchange on the publish connection, with `x-ponte-*`
//! headers saying why, from which unit and when; only then is the original acked, so nothing is
//! lost between the two steps. Reading: the same headers back, for `ponte dlq` and the console;
//! replay strips them (and the broker's `x-death` bookkeeping) before republishing.

use std::collections::BTreeMap;
use std::time::Duration;

use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;

use super::link::AmqpLink;
use super::publish::{Outgoing, PublishFailure, Publisher};
use super::topology::Topology;
use crate::config::AmqpConfig;

/// Why it was set aside (a sentence an operator can act on).
pub const REASON: &str = "x-ponte-reason";
/// The error class (`malformed`, `refused`, `transform`, `firebird`, `postgres`, `broker`).
pub const CLASS: &str = "x-ponte-class";
/// The unit that refused it (downstream) or that it came from (upstream).
pub const UNIT: &str = "x-ponte-unit";
/// Its original routing key (replay republishes there).
pub const ROUTING_KEY: &str = "x-ponte-routing-key";
/// When (RFC 3339).
pub const DEAD_AT: &str = "x-ponte-dead-at";

/// The error class of a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadClass {
    /// The body is not a ponte envelope, or names another unit.
    Malformed,
    /// Not whitelisted on this host.
    Refused,
    /// The transform refused it, trapped or timed out, or returned invalid statements.
    Transform,
    /// The unit's Firebird refused it permanently (constraint, conversion, a parent that never
    /// came).
    Firebird,
    /// PostgreSQL refused it permanently (upstream).
    Postgres,
}

impl DeadClass {
    /// The header and metric word.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadClass::Malformed => "malformed",
            DeadClass::Refused => "refused",
            DeadClass::Transform => "transform",
            DeadClass::Firebird => "firebird",
            DeadClass::Postgres => "postgres",
        }
    }
}

/// Writes dead letters through its own confirm channel on the publish connection.
pub struct DeadLetterWriter {
    publisher: Publisher,
    timeout: Duration,
}

impl DeadLetterWriter {
    /// A writer on `link` (the publish link).
    pub fn new(link: AmqpLink, config: &AmqpConfig) -> DeadLetterWriter {
        DeadLetterWriter {
            timeout: config.timeout(),
            publisher: Publisher::new(link, config.clone(), Topology::base(config)),
        }
    }

    /// Republishes `delivery` to the dead-letter exchange with the reason; Ok only when the
    /// broker confirmed and routed it (then, and only then, the caller acks the original).
    pub async fn write(
        &mut self,
        config: &AmqpConfig,
        delivery: &Delivery,
        unit: i32,
        class: DeadClass,
        reason: &str,
    ) -> Result<(), PublishFailure> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        headers.insert(REASON.into(), text(reason));
        headers.insert(CLASS.into(), text(class.as_str()));
        headers.insert(UNIT.into(), AMQPValue::LongInt(unit));
        headers.insert(ROUTING_KEY.into(), text(delivery.routing_key.as_str()));
        headers.insert(DEAD_AT.into(), text(&chrono::Utc::now().to_rfc3339()));
        let message = Outgoing {
            exchange: config.dead_exchange(),
            routing_key: delivery.routing_key.to_string(),
            properties: delivery
                .properties
                .clone()
                .with_headers(headers)
                .with_delivery_mode(2),
            body: delivery.data.clone(),
        };
        let mut results = self
            .publisher
            .publish_all(vec![message], self.timeout, 1)
            .await;
        results
            .pop()
            .unwrap_or_else(|| Err(PublishFailure::Unconfirmed("nothing published".into())))
    }
}

/// One dead letter as shown to an operator.
#[derive(Debug, Clone)]
pub struct DeadLetterView {
    /// Position in the dead-letter queue (1-based).
    pub position: usize,
    /// message_id (= correlation id).
    pub correlation_id: String,
    /// `x-ponte-routing-key` or the broker's original key.
    pub routing_key: String,
    /// Unit header.
    pub unit: String,
    /// Error class (transform, refused, malformed, firebird, postgres, broker).
    pub class: String,
    /// The reason.
    pub reason: String,
    /// When it was dead-lettered.
    pub dead_at: String,
    /// The body (JSON envelope).
    pub body: String,
}

impl DeadLetterView {
    /// Reads the headers of a message from the dead-letter queue.
    pub fn of(position: usize, d: &Delivery) -> DeadLetterView {
        let header = |name: &str| -> String {
            d.properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get(name).cloned())
                .map(|v| match v {
                    AMQPValue::LongString(s) => s.to_string(),
                    AMQPValue::ShortString(s) => s.to_string(),
                    AMQPValue::LongInt(i) => i.to_string(),
                    AMQPValue::LongLongInt(i) => i.to_string(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default()
        };
        let routing_key = match header(ROUTING_KEY) {
            k if !k.is_empty() => k,
            _ => d.routing_key.to_string(),
        };
        let class = match header(CLASS) {
            c if !c.is_empty() => c,
            _ => "broker (delivery limit or rejected)".to_string(),
        };
        let unit = match header(UNIT) {
            u if !u.is_empty() => u,
            _ => header("unit"),
        };
        DeadLetterView {
            position,
            correlation_id: d
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
            routing_key,
            unit,
            class,
            reason: header(REASON),
            dead_at: header(DEAD_AT),
            body: String::from_utf8_lossy(&d.data).to_string(),
        }
    }
}

/// The original properties of a dead letter: ponte's and the broker's dead-letter headers
/// removed, so a replay is the message as it first was.
pub fn original_properties(d: &Delivery) -> BasicProperties {
    let mut props = d.properties.clone();
    if let Some(headers) = props.headers().clone() {
        let kept: BTreeMap<_, _> = headers
            .inner()
            .iter()
            .filter(|(k, _)| {
                let k = k.as_str();
                !k.starts_with("x-ponte-")
                    && !k.starts_with("x-death")
                    && !k.starts_with("x-first-death")
                    && !k.starts_with("x-last-death")
                    && k != "x-delivery-count"
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        props = props.with_headers(FieldTable::from(kept));
    }
    props
}
