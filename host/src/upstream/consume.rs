//! [`PgApplier`]: the consume loop of the upstream queue. One delivery at a time, in order:
//! translate (blocking thread), apply in one PG transaction, ack after commit. A change that can
//! never apply is dead-lettered with its reason; a transient failure is retried with backoff; a
//! foreign-key failure waits a bounded time for its parent; a table with no transform loaded
//! waits (it is not the change's fault).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Confirmation, Consumer};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::apply::{apply_change, Target};
use super::prepare::{key_types, prepare, Verdict};
use super::topology::declare_upstream_queue;
use super::UpstreamError;
use crate::amqp::{with_timeout, AmqpError, AmqpLink};
use crate::backoff::Backoff;
use crate::config::{Config, UpstreamConfig};
use crate::model::Output;
use crate::model::UpstreamEnvelope;
use crate::telemetry::Metrics;
use crate::transform::TransformRegistry;

/// The PostgreSQL applier of upstream changes.
pub struct PgApplier {
    unit: i32,
    config: Arc<Config>,
    link: AmqpLink,
    registry: TransformRegistry,
    pool: PgPool,
    metrics: Metrics,
    key_types: HashMap<String, Vec<String>>,
}

impl PgApplier {
    /// The applier of `unit`'s upstream changes, on `pool`.
    pub fn new(
        unit: i32,
        config: Arc<Config>,
        link: AmqpLink,
        registry: TransformRegistry,
        pool: PgPool,
        metrics: Metrics,
    ) -> Self {
        PgApplier {
            unit,
            config,
            link,
            registry,
            pool,
            metrics,
            key_types: HashMap::new(),
        }
    }

    /// Consumes until `shutdown`; reopens the channel with backoff after a broker failure.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let (channel, consumer) = match self.open().await {
                Ok(pair) => pair,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "Upstream consumer could not start; retrying.");
                    sleep_or_stop(delay, &shutdown).await;
                    continue;
                }
            };
            backoff.reset();
            tracing::info!(unit = self.unit, queue = %UpstreamConfig::queue(&self.config.amqp.exchange, self.unit), "PG applier consuming.");
            let ended = self.consume(&channel, consumer, &shutdown).await;
            // Closing the channel returns an unacked delivery to the queue.
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                channel.close(200, "ponte PG applier stopping".into()),
            )
            .await;
            if let Err(e) = ended {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "Upstream consumer lost; reopening.");
                sleep_or_stop(delay, &shutdown).await;
            }
        }
        tracing::info!("PG applier stopped.");
    }

    async fn open(&self) -> Result<(Channel, Consumer), AmqpError> {
        let cfg = &self.config.amqp;
        let t = cfg.timeout();
        let channel = self.link.channel(t).await?;
        with_timeout(
            t,
            "confirm.select",
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        with_timeout(
            t,
            "basic.qos",
            channel.basic_qos(self.config.upstream.prefetch, BasicQosOptions::default()),
        )
        .await?;
        declare_upstream_queue(&channel, cfg, self.unit).await?;
        let tag = format!("ponte-upstream-{}-{}", self.unit, std::process::id());
        let queue = UpstreamConfig::queue(&cfg.exchange, self.unit);
        let consumer = with_timeout(
            t,
            "basic.consume",
            channel.basic_consume(
                queue.as_str().into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        Ok((channel, consumer))
    }

    async fn consume(
        &mut self,
        channel: &Channel,
        mut consumer: Consumer,
        shutdown: &CancellationToken,
    ) -> Result<(), AmqpError> {
        let mut prune = tokio::time::interval(Duration::from_secs(600));
        loop {
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = prune.tick() => {
                    self.prune().await;
                    continue;
                }
                next = consumer.next() => match next {
                    Some(Ok(d)) => d,
                    Some(Err(source)) => return Err(AmqpError::Lapin { op: "consume", source }),
                    None => return Err(AmqpError::Timeout("consumer stream ended")),
                },
            };
            // Stopping mid-change rolls its transaction back; the unacked delivery returns to
            // the queue when the channel closes.
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = self.handle(channel, &delivery, shutdown) => r?,
            }
        }
    }

    /// Translates and applies one delivery; returns without acking when stopping.
    async fn handle(
        &mut self,
        channel: &Channel,
        delivery: &Delivery,
        shutdown: &CancellationToken,
    ) -> Result<(), AmqpError> {
        let mut waited = false;
        let (env, output) = loop {
            let (config, registry, body) = (
                self.config.clone(),
                self.registry.clone(),
                delivery.data.clone(),
            );
            let verdict = tokio::task::spawn_blocking(move || prepare(&body, &config, &registry))
                .await
                .unwrap_or_else(|e| Verdict::Wait(format!("transform task failed: {e}")));
            match verdict {
                Verdict::Ready(ready) => break *ready,
                Verdict::Dead(class, reason) => {
                    return self.dead_letter(channel, delivery, class, &reason).await
                }
                Verdict::Wait(why) => {
                    if !waited {
                        tracing::warn!(reason = %why, "Upstream change waits for a transform; the queue waits with it.");
                        waited = true;
                    }
                    if sleep_or_stop(Duration::from_secs(1), shutdown).await {
                        return Ok(());
                    }
                }
            }
        };
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let fk_since = Instant::now();
        loop {
            let result = self.apply(&env, &output).await;
            let e = match result {
                Ok(outcome) => {
                    self.metrics
                        .upstream_applied
                        .with_label_values(&[&self.unit.to_string(), outcome.as_str()])
                        .inc();
                    if outcome.is_conflict() {
                        if let Some(t) = self.config.upstream.tables.get(&env.table) {
                            self.metrics
                                .upstream_conflicts
                                .with_label_values(&[&env.table, t.conflict.as_str()])
                                .inc();
                            tracing::warn!(correlation_id = %env.correlation_id, unit = env.unit, table = %env.table, row_key = %output.row_key, policy = t.conflict.as_str(), outcome = outcome.as_str(), "Conflict detected: the unit changed a row PostgreSQL had changed since.");
                        }
                    }
                    tracing::debug!(correlation_id = %env.correlation_id, unit = env.unit, table = %env.table, outcome = outcome.as_str(), "Upstream change handled.");
                    return ack(delivery, self.config.amqp.timeout()).await;
                }
                Err(e) => e,
            };
            let fk_wait = e.is_foreign_key()
                && fk_since.elapsed() < Duration::from_secs(self.config.upstream.fk_retry_secs);
            if !fk_wait && !e.is_retriable() {
                return self
                    .dead_letter(channel, delivery, "postgres", &e.to_string())
                    .await;
            }
            let delay = backoff.next_delay();
            tracing::warn!(correlation_id = %env.correlation_id, unit = env.unit, error = %e, retry_in_ms = delay.as_millis() as u64, "Upstream apply failed; rolled back, retrying.");
            if sleep_or_stop(delay, shutdown).await {
                return Ok(());
            }
        }
    }

    /// Deletes inbox and row-guard entries past the retention (a redelivery that old is not
    /// expected; the broker's delivery limit ends far sooner).
    async fn prune(&self) {
        let days = f64::from(self.config.upstream.inbox_retention_days);
        for sql in [
            "DELETE FROM ponte_inbox WHERE applied_at < now() - make_interval(days => $1::float8::int)",
            "DELETE FROM ponte_upstream_row WHERE updated_at < now() - make_interval(days => $1::float8::int)",
        ] {
            match sqlx::query(sql).bind(days).execute(&self.pool).await {
                Ok(done) if done.rows_affected() > 0 => tracing::info!(rows = done.rows_affected(), "Upstream ledger pruned."),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "Upstream ledger prune failed; will retry."),
            }
        }
    }

    async fn apply(
        &mut self,
        env: &UpstreamEnvelope,
        output: &Output,
    ) -> Result<super::Outcome, UpstreamError> {
        if env.unit != self.unit {
            return Err(UpstreamError::Refused(format!(
                "a change from unit {} arrived in the upstream queue of unit {}",
                env.unit, self.unit
            )));
        }
        let Some(table) = self.config.upstream.tables.get(&env.table) else {
            return Err(UpstreamError::Refused(format!(
                "table `{}` is not in [upstream.tables]",
                env.table
            )));
        };
        if !self.key_types.contains_key(&table.pg_table) {
            let types = key_types(&self.pool, &table.pg_table, &table.key).await?;
            self.key_types.insert(table.pg_table.clone(), types);
        }
        let units: Vec<i32> = self.config.units.ids.0.clone();
        let target = Target {
            fb_table: &env.table,
            table,
            key_types: self
                .key_types
                .get(&table.pg_table)
                .map(Vec::as_slice)
                .unwrap_or_default(),
            units: &units,
            unit_timezone: &self.config.upstream.unit_timezone,
            downstream_ok: self.config.tables.contains_key(table.downstream()),
        };
        apply_change(&self.pool, &target, env, output).await
    }

    async fn dead_letter(
        &self,
        channel: &Channel,
        delivery: &Delivery,
        class: &'static str,
        reason: &str,
    ) -> Result<(), AmqpError> {
        let cfg = &self.config.amqp;
        tracing::error!(class, reason, routing_key = %delivery.routing_key, "Upstream change dead-lettered; inspect the dead-letter queue.");
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        headers.insert("x-ponte-reason".into(), text(reason));
        headers.insert("x-ponte-class".into(), text(class));
        headers.insert(
            "x-ponte-routing-key".into(),
            text(delivery.routing_key.as_str()),
        );
        headers.insert(
            "x-ponte-dead-at".into(),
            text(&chrono::Utc::now().to_rfc3339()),
        );
        let props = delivery
            .properties
            .clone()
            .with_headers(headers)
            .with_delivery_mode(2);
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = with_timeout(
            cfg.timeout(),
            "dead-letter publish",
            channel.basic_publish(
                cfg.dead_exchange().into(),
                delivery.routing_key.clone(),
                options,
                &delivery.data,
                props,
            ),
        )
        .await?;
        match with_timeout(cfg.timeout(), "dead-letter confirm", confirm).await? {
            Confirmation::Ack(None) => {}
            other => {
                return Err(AmqpError::Rejected {
                    op: "dead-letter publish",
                    detail: format!("{other:?}"),
                })
            }
        }
        self.metrics
            .upstream_applied
            .with_label_values(&[&self.unit.to_string(), "dead"])
            .inc();
        ack(delivery, cfg.timeout()).await
    }
}

async fn ack(delivery: &Delivery, timeout: Duration) -> Result<(), AmqpError> {
    with_timeout(
        timeout,
        "basic.ack",
        delivery.acker.ack(BasicAckOptions::default()),
    )
    .await
    .map(|_| ())
}

/// Sleeps `delay` unless stopped first; true when stopped.
async fn sleep_or_stop(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}
