//! `ponte dlq`: inspect and replay dead letters. Messages are browsed with basic.get and returned
//! to the queue untouched (the channel closes without acking them); a replay republishes the
//! original message to its original routing key with a routed confirm and only then acks the dead
//! copy, so a replay can neither lose nor duplicate an effect (the unit's ledger absorbs repeats).
//! Headers are read and stripped by the one dead-letter reader (`amqp::deadletter`). Outbox rows
//! the relay marked `dead` are requeued with `requeue-outbox`.

use std::time::Duration;

use anyhow::{bail, Context};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Channel, Connection, ConnectionProperties};

use crate::amqp::deadletter::original_properties;
use crate::amqp::{settle, with_timeout};
use crate::config::Config;

pub use crate::amqp::DeadLetterView;

/// Lists up to `limit` dead letters without removing them.
pub async fn list(config: &Config, limit: usize) -> anyhow::Result<Vec<DeadLetterView>> {
    let (conn, channel) = open(config).await?;
    let mut views = Vec::new();
    while views.len() < limit {
        let Some(msg) = get(&channel, config).await? else {
            break;
        };
        views.push(DeadLetterView::of(views.len() + 1, &msg.delivery));
    }
    close(conn, channel).await;
    Ok(views)
}

/// The first dead letter with `correlation_id`, reading the queue one message at a time and
/// keeping none of the others (the queue may hold millions).
pub async fn find(config: &Config, correlation_id: &str) -> anyhow::Result<Option<DeadLetterView>> {
    let (conn, channel) = open(config).await?;
    let mut position = 0usize;
    let mut found = None;
    while let Some(msg) = get(&channel, config).await? {
        position += 1;
        let id = msg
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.to_string());
        if id.as_deref() == Some(correlation_id) {
            found = Some(DeadLetterView::of(position, &msg.delivery));
            break;
        }
    }
    close(conn, channel).await;
    Ok(found)
}

/// Replays the dead letters whose correlation id is in `ids` (all when `ids` is empty and `all`).
/// Returns how many were replayed.
pub async fn replay(config: &Config, ids: &[String], all: bool) -> anyhow::Result<usize> {
    if ids.is_empty() && !all {
        bail!("name correlation ids to replay, or pass --all");
    }
    let (conn, channel) = open(config).await?;
    let t = config.amqp.timeout();
    let select = channel.confirm_select(ConfirmSelectOptions::default());
    with_timeout(t, "confirm.select", select).await?;
    let mut replayed = 0;
    let mut seen = 0usize;
    while let Some(msg) = get(&channel, config).await? {
        seen += 1;
        let d = &msg.delivery;
        let v = DeadLetterView::of(seen, d);
        if !(all || ids.contains(&v.correlation_id)) {
            continue;
        }
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let publish = channel.basic_publish(
            config.amqp.exchange.as_str().into(),
            v.routing_key.as_str().into(),
            options,
            &d.data,
            original_properties(d),
        );
        let confirm = with_timeout(t, "basic.publish", publish).await?;
        if let Err(e) = settle(confirm, t).await {
            bail!(
                "replay of {} was not confirmed and routed ({e}); it stays in the dead-letter \
                 queue",
                v.correlation_id
            );
        }
        with_timeout(t, "basic.ack", d.acker.ack(BasicAckOptions::default())).await?;
        tracing::info!(
            correlation_id = %v.correlation_id,
            routing_key = %v.routing_key,
            "Dead letter replayed."
        );
        replayed += 1;
    }
    close(conn, channel).await;
    Ok(replayed)
}

/// Puts outbox rows marked `dead` back to pending (after the cause was fixed): by id, by unit,
/// or all.
pub async fn requeue_outbox(
    config: &Config,
    id: Option<i64>,
    unit: Option<i32>,
) -> anyhow::Result<u64> {
    let pool = crate::pg::connect(&config.postgres)
        .await
        .context("connecting to PostgreSQL")?;
    let n = sqlx::query(
        "UPDATE pg_sync_outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), \
         updated_at = now(), error_log = 'requeued by operator after: ' || coalesce(error_log, '') \
         WHERE status = 'dead' AND ($1::bigint IS NULL OR id = $1) AND ($2::int IS NULL OR \
         unit_id = $2)",
    )
    .bind(id)
    .bind(unit)
    .execute(&pool)
    .await?
    .rows_affected();
    Ok(n)
}

async fn open(config: &Config) -> anyhow::Result<(Connection, Channel)> {
    let t = config.amqp.timeout();
    let connect = Connection::connect(&config.amqp.url, ConnectionProperties::default());
    let conn = with_timeout(t, "connect", connect)
        .await
        .context("connecting to RabbitMQ")?;
    let channel = with_timeout(t, "channel.open", conn.create_channel()).await?;
    Ok((conn, channel))
}

async fn get(
    channel: &Channel,
    config: &Config,
) -> anyhow::Result<Option<lapin::message::BasicGetMessage>> {
    let get = channel.basic_get(
        config.amqp.dead_queue().into(),
        BasicGetOptions { no_ack: false },
    );
    Ok(with_timeout(config.amqp.timeout(), "basic.get", get).await?)
}

/// Closing the channel returns every message we got but did not ack, in order.
async fn close(conn: Connection, channel: Channel) {
    let _ = tokio::time::timeout(Duration::from_secs(5), channel.close(200, "done".into())).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.close(200, "done".into())).await;
}
