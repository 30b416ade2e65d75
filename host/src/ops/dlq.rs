//! `ponte dlq`: inspect and replay dead letters. Messages are browsed with basic.get and returned
//! to the queue untouched (the channel closes without acking them); a replay republishes the
//! original body to its original routing key with a routed confirm and only then acks the dead copy,
//! so a replay can neither lose nor duplicate an effect (the unit's ledger absorbs repeats).
//! Outbox rows the relay marked `dead` are requeued with `requeue-outbox`.

use std::time::Duration;

use anyhow::{bail, Context};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};

use crate::amqp::with_timeout;
use crate::config::Config;

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
    /// Error class (transform, refused, malformed, firebird, broker).
    pub class: String,
    /// The reason.
    pub reason: String,
    /// When it was dead-lettered.
    pub dead_at: String,
    /// The body (JSON envelope).
    pub body: String,
}

/// Lists up to `limit` dead letters without removing them.
pub async fn list(config: &Config, limit: usize) -> anyhow::Result<Vec<DeadLetterView>> {
    let (conn, channel) = open(config).await?;
    let mut views = Vec::new();
    while views.len() < limit {
        let Some(msg) = get(&channel, config).await? else {
            break;
        };
        views.push(view(views.len() + 1, &msg.delivery));
    }
    close(conn, channel).await;
    Ok(views)
}

/// Replays the dead letters whose correlation id is in `ids` (all when `ids` is empty and `all`).
/// Returns how many were replayed.
pub async fn replay(config: &Config, ids: &[String], all: bool) -> anyhow::Result<usize> {
    if ids.is_empty() && !all {
        bail!("name correlation ids to replay, or pass --all");
    }
    let (conn, channel) = open(config).await?;
    let t = config.amqp.timeout();
    with_timeout(
        t,
        "confirm.select",
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    let mut replayed = 0;
    let mut seen = 0usize;
    while let Some(msg) = get(&channel, config).await? {
        seen += 1;
        let d = &msg.delivery;
        let v = view(seen, d);
        if !(all || ids.contains(&v.correlation_id)) {
            continue;
        }
        let mut props = d.properties.clone();
        if let Some(headers) = props.headers().clone() {
            let kept: FieldTable = headers
                .inner()
                .iter()
                .filter(|(k, _)| {
                    !k.as_str().starts_with("x-ponte-")
                        && !k.as_str().starts_with("x-death")
                        && !k.as_str().starts_with("x-first-death")
                        && !k.as_str().starts_with("x-last-death")
                        && k.as_str() != "x-delivery-count"
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into();
            props = props.with_headers(kept);
        }
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = with_timeout(
            t,
            "basic.publish",
            channel.basic_publish(
                config.amqp.exchange.as_str().into(),
                v.routing_key.as_str().into(),
                options,
                &d.data,
                props,
            ),
        )
        .await?;
        match tokio::time::timeout(t, confirm).await {
            Ok(Ok(lapin::Confirmation::Ack(None))) => {}
            other => bail!("replay of {} was not confirmed and routed ({other:?}); it stays in the dead-letter queue", v.correlation_id),
        }
        with_timeout(t, "basic.ack", d.acker.ack(BasicAckOptions::default())).await?;
        tracing::info!(correlation_id = %v.correlation_id, routing_key = %v.routing_key, "Dead letter replayed.");
        replayed += 1;
    }
    close(conn, channel).await;
    Ok(replayed)
}

/// Puts outbox rows marked `dead` back to pending (after the cause was fixed): by id, by unit, or all.
pub async fn requeue_outbox(
    config: &Config,
    id: Option<i64>,
    unit: Option<i32>,
) -> anyhow::Result<u64> {
    let pool = crate::pg::connect(&config.postgres)
        .await
        .context("connecting to PostgreSQL")?;
    let n = sqlx::query(
        "UPDATE pg_sync_outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now(), \
         error_log = 'requeued by operator after: ' || coalesce(error_log, '') \
         WHERE status = 'dead' AND ($1::bigint IS NULL OR id = $1) AND ($2::int IS NULL OR unit_id = $2)",
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
    let conn = with_timeout(
        t,
        "connect",
        Connection::connect(&config.amqp.url, ConnectionProperties::default()),
    )
    .await
    .context("connecting to RabbitMQ")?;
    let channel = with_timeout(t, "channel.open", conn.create_channel()).await?;
    Ok((conn, channel))
}

async fn get(
    channel: &Channel,
    config: &Config,
) -> anyhow::Result<Option<lapin::message::BasicGetMessage>> {
    Ok(with_timeout(
        config.amqp.timeout(),
        "basic.get",
        channel.basic_get(
            config.amqp.dead_queue().into(),
            BasicGetOptions { no_ack: false },
        ),
    )
    .await?)
}

/// Closing the channel returns every message we got but did not ack, in order.
async fn close(conn: Connection, channel: Channel) {
    let _ = tokio::time::timeout(Duration::from_secs(5), channel.close(200, "done".into())).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.close(200, "done".into())).await;
}

fn view(position: usize, d: &lapin::message::Delivery) -> DeadLetterView {
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
    let routing_key = match header("x-ponte-routing-key") {
        k if !k.is_empty() => k,
        _ => d.routing_key.to_string(),
    };
    let class = match header("x-ponte-class") {
        c if !c.is_empty() => c,
        _ => "broker (delivery limit or rejected)".to_string(),
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
        unit: header("unit"),
        class,
        reason: header("x-ponte-reason"),
        dead_at: header("x-ponte-dead-at"),
        body: String::from_utf8_lossy(&d.data).to_string(),
    }
}
