//! Unit appliers: one per unit, consuming the unit's queue and applying its changes to the unit's
//! Firebird in batches, in order, acking only after the transaction committed. A permanent failure
//! dead-letters that one message and the rest of the batch goes on; a transient one rolls back and
//! retries with backoff; a foreign-key failure waits a bounded time for its parent.

mod deadletter;
mod prepare;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tokio_util::sync::CancellationToken;

use crate::amqp::{declare_base, declare_unit_queue, AmqpError, AmqpLink};
use crate::backoff::Backoff;
use crate::config::{Config, Unit};
use crate::firebird::{
    apply_batch, BatchError, BatchOutcome, FbFailureKind, FbWorker, Prepared, WorkerError,
};
use crate::telemetry::Metrics;
use crate::transform::TransformRegistry;

pub use prepare::{prepare, Meta, Verdict};

/// A delivery with its verdict, waiting to be applied or retried.
struct Held {
    delivery: Delivery,
    meta: Meta,
    verdict: Verdict,
    /// When its foreign key first failed (bounded wait for the parent).
    fk_since: Option<Instant>,
}

/// The applier of one unit.
pub struct UnitApplier {
    unit: Unit,
    config: Arc<Config>,
    link: AmqpLink,
    registry: TransformRegistry,
    metrics: Metrics,
    label: String,
}

impl UnitApplier {
    /// An applier for `unit`.
    pub fn new(
        unit: Unit,
        config: Arc<Config>,
        link: AmqpLink,
        registry: TransformRegistry,
        metrics: Metrics,
    ) -> Self {
        let label = unit.id.to_string();
        UnitApplier {
            unit,
            config,
            link,
            registry,
            metrics,
            label,
        }
    }

    /// Consumes and applies until `shutdown`; reconnects to the broker and Firebird with backoff.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut worker = match self.new_worker() {
            Some(w) => w,
            None => return,
        };
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let (channel, consumer) = match self.open().await {
                Ok(pair) => pair,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(unit = self.unit.id, error = %e, retry_in_ms = delay.as_millis() as u64, "Unit consumer could not start; retrying.");
                    sleep_or_stop(delay, &shutdown).await;
                    continue;
                }
            };
            backoff.reset();
            tracing::info!(unit = self.unit.id, queue = %self.config.amqp.unit_queue(self.unit.id), "Unit applier consuming.");
            let ended = self
                .consume(&channel, consumer, &mut worker, &shutdown)
                .await;
            // Closing the channel returns every unacked delivery to the queue.
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                channel.close(200, "ponte unit applier stopping".into()),
            )
            .await;
            if let Err(e) = ended {
                let delay = backoff.next_delay();
                tracing::warn!(unit = self.unit.id, error = %e, retry_in_ms = delay.as_millis() as u64, "Unit consumer lost; reopening.");
                sleep_or_stop(delay, &shutdown).await;
            }
        }
        tracing::info!(unit = self.unit.id, "Unit applier stopped.");
    }

    fn new_worker(&self) -> Option<FbWorker> {
        match FbWorker::spawn(
            self.unit.id,
            self.unit.database.clone(),
            self.config.firebird.clone(),
        ) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(unit = self.unit.id, error = %e, "Cannot start the Firebird thread; unit not applied.");
                None
            }
        }
    }

    async fn open(&self) -> Result<(Channel, Consumer), AmqpError> {
        let cfg = &self.config.amqp;
        let t = cfg.timeout();
        let channel = self.link.channel(t).await?;
        crate::amqp::with_timeout(
            t,
            "confirm.select",
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        crate::amqp::with_timeout(
            t,
            "basic.qos",
            channel.basic_qos(cfg.prefetch, BasicQosOptions::default()),
        )
        .await?;
        declare_base(&channel, cfg).await?;
        declare_unit_queue(&channel, cfg, self.unit.id).await?;
        let tag = format!("ponte-unit-{}-{}", self.unit.id, std::process::id());
        let consumer = crate::amqp::with_timeout(
            t,
            "basic.consume",
            channel.basic_consume(
                cfg.unit_queue(self.unit.id).into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        Ok((channel, consumer))
    }

    /// Batches deliveries and applies them until shutdown (Ok) or a broker failure (Err).
    async fn consume(
        &self,
        channel: &Channel,
        mut consumer: Consumer,
        worker: &mut FbWorker,
        shutdown: &CancellationToken,
    ) -> Result<(), AmqpError> {
        let apply_cfg = &self.config.apply;
        let mut held: Vec<Held> = Vec::new();
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = consumer.next() => match next {
                    Some(Ok(d)) => Some(d),
                    Some(Err(source)) => return Err(AmqpError::Lapin { op: "consume", source }),
                    None => return Err(AmqpError::Timeout("consumer stream ended")),
                },
                // Every second: retry what waits, and notice a dead channel (a consumer whose
                // connection died can stay pending forever instead of ending).
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    if !channel.status().connected() {
                        return Err(AmqpError::Timeout("channel no longer connected"));
                    }
                    if held.is_empty() {
                        continue;
                    }
                    None
                }
            };
            let mut fresh: Vec<Delivery> = first.into_iter().collect();
            let deadline =
                tokio::time::Instant::now() + Duration::from_millis(apply_cfg.batch_wait_ms);
            while !fresh.is_empty() && fresh.len() + held.len() < apply_cfg.batch_size {
                match tokio::time::timeout_at(deadline, consumer.next()).await {
                    Ok(Some(Ok(d))) => fresh.push(d),
                    Ok(Some(Err(source))) => {
                        return Err(AmqpError::Lapin {
                            op: "consume",
                            source,
                        })
                    }
                    Ok(None) => return Err(AmqpError::Timeout("consumer stream ended")),
                    Err(_) => break,
                }
            }
            let mut batch = std::mem::take(&mut held);
            batch.extend(self.prepare_all(fresh).await);
            held = self.process(channel, worker, batch, shutdown).await?;
        }
    }

    /// Runs the transforms off the async threads (a hostile one may use its whole deadline).
    async fn prepare_all(&self, deliveries: Vec<Delivery>) -> Vec<Held> {
        let config = self.config.clone();
        let registry = self.registry.clone();
        let unit = self.unit.id;
        let bodies: Vec<Vec<u8>> = deliveries.iter().map(|d| d.data.clone()).collect();
        let verdicts = tokio::task::spawn_blocking(move || {
            bodies
                .iter()
                .map(|b| prepare(b, unit, &config, &registry))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        deliveries
            .into_iter()
            .zip(
                verdicts
                    .into_iter()
                    .map(Some)
                    .chain(std::iter::repeat_with(|| None)),
            )
            .map(|(delivery, verdict)| {
                let (meta, verdict) = verdict.unwrap_or_else(|| {
                    (
                        Meta::default(),
                        Verdict::Wait("transform task failed".into()),
                    )
                });
                Held {
                    delivery,
                    meta,
                    verdict,
                    fk_since: None,
                }
            })
            .collect()
    }

    /// Dead-letters what must be, applies the ready ones in one transaction (re-running without a
    /// message that failed permanently), acks, and returns what must wait.
    async fn process(
        &self,
        channel: &Channel,
        worker: &mut FbWorker,
        batch: Vec<Held>,
        shutdown: &CancellationToken,
    ) -> Result<Vec<Held>, AmqpError> {
        let mut waiting = Vec::new();
        let mut ready: Vec<Held> = Vec::new();
        for item in batch {
            match &item.verdict {
                Verdict::Dead { class, reason } => {
                    self.dead_letter(channel, &item, class, reason).await?
                }
                Verdict::Wait(why) => {
                    tracing::warn!(unit = self.unit.id, correlation_id = %item.meta.correlation_id, table = %item.meta.table, reason = %why, "Change waits for a transform.");
                    waiting.push(item);
                }
                Verdict::Ready(_) => ready.push(item),
            }
        }
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(60));
        while !ready.is_empty() {
            let prepared: Vec<Prepared> = ready
                .iter()
                .filter_map(|h| match &h.verdict {
                    Verdict::Ready(p) => Some((**p).clone()),
                    _ => None,
                })
                .collect();
            let started = Instant::now();
            let attempt = worker
                .run(
                    Duration::from_millis(self.config.firebird.timeout_ms),
                    move |session| {
                        let result = session
                            .conn()
                            .map_err(|failure| BatchError {
                                index: None,
                                failure,
                            })
                            .and_then(|conn| apply_batch(conn, &prepared));
                        if matches!(&result, Err(e) if e.failure.kind == FbFailureKind::Connection)
                        {
                            session.reset();
                        }
                        result
                    },
                )
                .await;
            match attempt {
                Ok(Ok(outcomes)) => {
                    self.metrics
                        .unit_up
                        .with_label_values(&[&self.label])
                        .set(1);
                    self.metrics
                        .apply_batch_seconds
                        .with_label_values(&[&self.label])
                        .observe(started.elapsed().as_secs_f64());
                    for (item, outcome) in ready.iter().zip(outcomes) {
                        self.record(item, outcome);
                        ack(&item.delivery, self.config.amqp.timeout()).await?;
                    }
                    return Ok(waiting);
                }
                Ok(Err(BatchError {
                    index: Some(i),
                    failure,
                })) if failure.kind == FbFailureKind::Permanent => {
                    let item = ready.remove(i);
                    self.dead_letter(channel, &item, "firebird", &failure.message)
                        .await?;
                }
                Ok(Err(BatchError {
                    index: Some(i),
                    failure,
                })) if failure.kind == FbFailureKind::ForeignKey => {
                    let mut item = ready.remove(i);
                    let since = *item.fk_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= Duration::from_secs(self.config.apply.fk_retry_secs) {
                        let reason = format!(
                            "foreign key still failing after {}s: {}",
                            self.config.apply.fk_retry_secs, failure.message
                        );
                        self.dead_letter(channel, &item, "firebird", &reason)
                            .await?;
                    } else {
                        tracing::info!(unit = self.unit.id, correlation_id = %item.meta.correlation_id, "Foreign key failed; the parent may be in flight, retrying later.");
                        waiting.push(item);
                    }
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        Err(WorkerError::Timeout(t)) => {
                            // A hung call: abandon that thread and its connection.
                            if let Some(w) = self.new_worker() {
                                *worker = w;
                            }
                            format!("Firebird call timed out after {t:?}")
                        }
                        Err(e) => e.to_string(),
                        Ok(Ok(_)) => String::new(),
                    };
                    self.metrics
                        .unit_up
                        .with_label_values(&[&self.label])
                        .set(0);
                    self.metrics
                        .apply_retries
                        .with_label_values(&[&self.label])
                        .inc();
                    let delay = backoff.next_delay();
                    tracing::warn!(unit = self.unit.id, error = %why, batch = ready.len(), retry_in_ms = delay.as_millis() as u64, "Apply failed; rolled back, retrying.");
                    if sleep_or_stop(delay, shutdown).await {
                        // Stopping: nothing of this batch was committed or acked; the broker requeues it.
                        return Ok(Vec::new());
                    }
                }
            }
        }
        Ok(waiting)
    }

    fn record(&self, item: &Held, outcome: BatchOutcome) {
        let word = match outcome {
            BatchOutcome::Applied => "applied",
            BatchOutcome::Duplicate => "duplicate",
            BatchOutcome::Stale => "stale",
        };
        self.metrics
            .apply_messages
            .with_label_values(&[&self.label, word])
            .inc();
        if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&item.meta.created_at) {
            let lag = chrono::Utc::now().signed_duration_since(at);
            let secs = lag.num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e6;
            self.metrics
                .apply_lag_seconds
                .with_label_values(&[&self.label])
                .observe(secs);
        }
        tracing::debug!(unit = self.unit.id, correlation_id = %item.meta.correlation_id, table = %item.meta.table, outcome = word, "Change handled.");
    }

    async fn dead_letter(
        &self,
        channel: &Channel,
        item: &Held,
        class: &'static str,
        reason: &str,
    ) -> Result<(), AmqpError> {
        tracing::error!(unit = self.unit.id, correlation_id = %item.meta.correlation_id, table = %item.meta.table, class, reason, "Change dead-lettered; inspect with `ponte dlq list`.");
        deadletter::publish(
            channel,
            &self.config.amqp,
            deadletter::DeadLetter {
                body: &item.delivery.data,
                properties: &item.delivery.properties,
                routing_key: item.delivery.routing_key.as_str(),
                unit: self.unit.id,
                reason,
                class,
            },
        )
        .await?;
        self.metrics
            .apply_messages
            .with_label_values(&[&self.label, "dead"])
            .inc();
        ack(&item.delivery, self.config.amqp.timeout()).await
    }
}

async fn ack(delivery: &Delivery, timeout: Duration) -> Result<(), AmqpError> {
    crate::amqp::with_timeout(
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
