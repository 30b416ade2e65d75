//! The broker topology the host declares itself (idempotently) at start: the topic exchange, the
//! dead-letter exchange and queue, and one durable quorum queue per unit with single active
//! consumer, a delivery limit and dead-lettering.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

use super::link::{with_timeout, AmqpError};
use crate::config::AmqpConfig;

/// Declares the topic exchange and the dead-letter exchange and queue.
pub async fn declare_base(channel: &Channel, config: &AmqpConfig) -> Result<(), AmqpError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let t = config.timeout();
    with_timeout(
        t,
        "exchange.declare",
        channel.exchange_declare(
            config.exchange.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        ),
    )
    .await?;
    with_timeout(
        t,
        "exchange.declare",
        channel.exchange_declare(
            config.dead_exchange().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        ),
    )
    .await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    with_timeout(
        t,
        "queue.declare",
        channel.queue_declare(config.dead_queue().into(), durable_queue(), args),
    )
    .await?;
    with_timeout(
        t,
        "queue.bind",
        channel.queue_bind(
            config.dead_queue().into(),
            config.dead_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    Ok(())
}

/// Declares and binds the queue of one unit (`{exchange}.unit.{id}` <- `{exchange}.unit.{id}.#`).
pub async fn declare_unit_queue(
    channel: &Channel,
    config: &AmqpConfig,
    unit: i32,
) -> Result<(), AmqpError> {
    let queue: ShortString = config.unit_queue(unit).into();
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongInt(config.delivery_limit as i32),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(config.dead_exchange().into()),
    );
    let t = config.timeout();
    with_timeout(
        t,
        "queue.declare",
        channel.queue_declare(queue.clone(), durable_queue(), args),
    )
    .await?;
    with_timeout(
        t,
        "queue.bind",
        channel.queue_bind(
            queue,
            config.exchange.as_str().into(),
            format!("{}.unit.{unit}.#", config.exchange).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    Ok(())
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}
