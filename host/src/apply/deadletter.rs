//! Dead-lettering with a reason: the original message is republished (confirmed) to the
//! dead-letter exchange with headers saying why, where from and when, and only then acked, so an
//! operator can inspect and replay it and nothing is lost between the two steps.

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, LongString};
use lapin::Channel;
use lapin::Confirmation;

use crate::amqp::AmqpError;
use crate::config::AmqpConfig;

/// A message to set aside.
pub struct DeadLetter<'a> {
    /// The original body, unchanged.
    pub body: &'a [u8],
    /// Its properties (headers are extended).
    pub properties: &'a lapin::BasicProperties,
    /// The original routing key.
    pub routing_key: &'a str,
    /// Unit that refused it.
    pub unit: i32,
    /// Why: a sentence an operator can act on.
    pub reason: &'a str,
    /// Error class: transform, refused, firebird, malformed.
    pub class: &'static str,
}

/// Publishes to the dead-letter exchange and waits for a routed confirm.
pub async fn publish(
    channel: &Channel,
    config: &AmqpConfig,
    dl: DeadLetter<'_>,
) -> Result<(), AmqpError> {
    let mut headers = dl.properties.headers().clone().unwrap_or_default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    headers.insert("x-ponte-reason".into(), text(dl.reason));
    headers.insert("x-ponte-class".into(), text(dl.class));
    headers.insert("x-ponte-unit".into(), AMQPValue::LongInt(dl.unit));
    headers.insert("x-ponte-routing-key".into(), text(dl.routing_key));
    headers.insert(
        "x-ponte-dead-at".into(),
        text(&chrono::Utc::now().to_rfc3339()),
    );
    let props = dl
        .properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2);
    let options = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = tokio::time::timeout(
        config.timeout(),
        channel.basic_publish(
            config.dead_exchange().into(),
            dl.routing_key.into(),
            options,
            dl.body,
            props,
        ),
    )
    .await
    .map_err(|_| AmqpError::Timeout("dead-letter publish"))?
    .map_err(|source| AmqpError::Lapin {
        op: "dead-letter publish",
        source,
    })?;
    match tokio::time::timeout(config.timeout(), confirm).await {
        Ok(Ok(Confirmation::Ack(None))) => Ok(()),
        Ok(Ok(other)) => Err(AmqpError::Rejected {
            op: "dead-letter publish",
            detail: format!("{other:?}"),
        }),
        Ok(Err(source)) => Err(AmqpError::Lapin {
            op: "dead-letter confirm",
            source,
        }),
        Err(_) => Err(AmqpError::Timeout("dead-letter confirm")),
    }
}
