//! The capture publisher of one unit: drains SYNC_LOG in ID order, publishes each change with
//! confirms and `mandatory` (routing key `{exchange}.origin.{unit}.{table}.{op}`), and deletes a
//! log row only after its confirm, stopping at the first failure so that a row is never deleted
//! ahead of an earlier one that must be retried. A crash between confirm and delete republishes
//! with the same correlation id, which the PG inbox absorbs (at-least-once, effect once).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::log::{prune, LogReader};
use super::CaptureError;
use crate::amqp::{AmqpLink, Outgoing, Publisher, Topology};
use crate::backoff::Backoff;
use crate::config::{Config, Unit};
use crate::firebird::{classify, FbFailureKind};
use crate::firebird::{FbWorker, WorkerError};
use crate::telemetry::Metrics;

/// The capture publisher of one unit.
pub struct CapturePublisher {
    unit: Unit,
    config: Arc<Config>,
    link: AmqpLink,
    metrics: Metrics,
    label: String,
}

impl CapturePublisher {
    /// A publisher for `unit`.
    pub fn new(unit: Unit, config: Arc<Config>, link: AmqpLink, metrics: Metrics) -> Self {
        let label = unit.id.to_string();
        CapturePublisher {
            unit,
            config,
            link,
            metrics,
            label,
        }
    }

    fn worker(&self) -> Result<FbWorker, CaptureError> {
        FbWorker::spawn(
            self.unit.id,
            self.unit.database.clone(),
            self.config.firebird.clone(),
        )
        .map_err(|e| CaptureError::Thread(e.to_string()))
    }

    /// Publishes until `shutdown`; every failure is retried with backoff.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut worker = match self.worker() {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(unit = self.unit.id, error = %e, "Capture publisher cannot start; this unit's changes are not published.");
                return;
            }
        };
        // The origin unit's upstream queue is declared on every new channel: a change is
        // routable before the PostgreSQL applier ever ran.
        let topology = Topology::upstream(&self.config.amqp, self.unit.id);
        let mut publisher = Publisher::new(self.link.clone(), self.config.amqp.clone(), topology);
        let downstream = self.config.upstream.tables.iter();
        let mut reader = LogReader::new(
            downstream
                .map(|(t, u)| (t.clone(), u.downstream().to_string()))
                .collect(),
        );
        let mut backoff = Backoff::default();
        let poll = Duration::from_millis(self.config.upstream.poll_interval_ms);
        tracing::info!(unit = self.unit.id, "Capture publisher started.");
        while !shutdown.is_cancelled() {
            // Stopping mid-round is safe: a log row is deleted only after its confirm, and a
            // change confirmed but not yet deleted is republished and absorbed by the inbox.
            let round = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.round(&mut worker, &mut publisher, &mut reader) => r,
            };
            let delay = match round {
                Ok(0) => {
                    backoff.reset();
                    poll
                }
                Ok(_) => {
                    backoff.reset();
                    continue;
                }
                Err(e) => {
                    if matches!(e, CaptureError::Worker(WorkerError::Timeout(_))) {
                        if let Ok(w) = self.worker() {
                            worker = w;
                        }
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(unit = self.unit.id, error = %e, retry_in_ms = delay.as_millis() as u64, "Capture round failed; nothing was lost, retrying.");
                    delay
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        tracing::info!(unit = self.unit.id, "Capture publisher stopped.");
    }

    /// One read-publish-prune round; returns the log rows consumed.
    async fn round(
        &self,
        worker: &mut FbWorker,
        publisher: &mut Publisher,
        reader: &mut LogReader,
    ) -> Result<usize, CaptureError> {
        let amqp = &self.config.amqp;
        let fb_timeout = Duration::from_millis(self.config.firebird.timeout_ms);
        let (unit, limit) = (self.unit.id, self.config.upstream.batch_size);
        let mut r = std::mem::take(reader);
        let (r, read) = worker
            .run(fb_timeout, move |session| {
                let result = session
                    .conn()
                    .and_then(|conn| r.read(conn, unit, limit).map_err(|e| classify(&e)));
                if let Err(f) = &result {
                    r.reset();
                    if f.kind == FbFailureKind::Connection {
                        session.reset();
                    }
                }
                (r, result)
            })
            .await?;
        *reader = r;
        let entries = read?;
        let lag = self
            .metrics
            .upstream_lag_seconds
            .with_label_values(&[&self.label]);
        let Some(first) = entries.first() else {
            lag.set(0);
            return Ok(0);
        };
        lag.set(first.age_ms.max(0) / 1000);
        let mut messages = Vec::with_capacity(entries.len());
        for env in entries.iter().filter_map(|e| e.envelope.as_ref()) {
            let body = serde_json::to_vec(env).map_err(|e| CaptureError::Encode(e.to_string()))?;
            messages.push(Outgoing {
                exchange: amqp.exchange.clone(),
                routing_key: env.routing_key(&amqp.exchange),
                properties: env.properties(),
                body,
            });
        }
        let mut results = publisher
            .publish_all(messages, amqp.timeout(), self.config.relay.max_in_flight)
            .await
            .into_iter();
        let (mut done, mut published, mut failure) = (Vec::new(), 0u64, None);
        for entry in &entries {
            if entry.envelope.is_some() {
                match results.next() {
                    Some(Ok(())) => published += 1,
                    Some(Err(f)) => {
                        failure = Some(f);
                        break;
                    }
                    None => break,
                }
            }
            done.push(entry.id);
        }
        let consumed = done.len();
        if !done.is_empty() {
            worker
                .run(fb_timeout, move |session| {
                    let result = session
                        .conn()
                        .and_then(|conn| prune(conn, &done).map_err(|e| classify(&e)));
                    if matches!(&result, Err(f) if f.kind == FbFailureKind::Connection) {
                        session.reset();
                    }
                    result
                })
                .await??;
        }
        self.metrics
            .upstream_captured
            .with_label_values(&[&self.label])
            .inc_by(consumed as u64);
        self.metrics
            .upstream_published
            .with_label_values(&[&self.label])
            .inc_by(published);
        tracing::debug!(
            unit = self.unit.id,
            consumed,
            published,
            "Capture round published."
        );
        match failure {
            Some(f) => Err(CaptureError::Publish(f)),
            None => Ok(consumed),
        }
    }
}
