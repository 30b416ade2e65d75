//! The upstream queues: per origin unit a durable quorum queue `{exchange}.upstream.{unit}` bound
//! to `{exchange}.origin.{unit}.#`, with a single active consumer (one applier applies that unit's
//! changes, in order), a delivery limit and dead-lettering like the unit queues.

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Channel;

use crate::amqp::{declare_base, with_timeout, AmqpError};
use crate::config::{AmqpConfig, UpstreamConfig};

/// Declares the base topology and the upstream queue of `unit` (idempotent).
pub async fn declare_upstream_queue(
    channel: &Channel,
    config: &AmqpConfig,
    unit: i32,
) -> Result<(), AmqpError> {
    declare_base(channel, config).await?;
    let queue = UpstreamConfig::queue(&config.exchange, unit);
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongInt(i32::try_from(config.delivery_limit).unwrap_or(i32::MAX)),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(config.dead_exchange().into()),
    );
    let t = config.timeout();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    with_timeout(
        t,
        "queue.declare",
        channel.queue_declare(queue.as_str().into(), durable, args),
    )
    .await?;
    with_timeout(
        t,
        "queue.bind",
        channel.queue_bind(
            queue.as_str().into(),
            config.exchange.as_str().into(),
            format!("{}.origin.{unit}.#", config.exchange).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    Ok(())
}
