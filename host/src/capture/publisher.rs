//! The capture publisher of one unit: drains SYNC_LOG in ID order, publishes each change with
//! confirms and `mandatory` (routing key `{exchange}.origin.{unit}.{table}.{op}`), and deletes a
//! log row only after its confirm, stopping at the first failure so that a row is never deleted
//! ahead of an earlier one that must be retried. A crash between confirm and delete republishes
//! with the same correlation id, which the PG inbox absorbs (at-least-once, effect once).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::log::{prune, LogReader};
use super::periodic::{periodic_tables, run_round};
use super::CaptureError;
use crate::amqp::{AmqpLink, Outgoing, Publisher, Topology};
use crate::backoff::Backoff;
use crate::config::{Config, Unit};
use crate::firebird::{classify, FbFailureKind};
use crate::firebird::{FbWorker, WorkerError};
use crate::telemetry::Metrics;

/// A failed periodic round is tried again after at most this long.
const RETRY_ROUND: Duration = Duration::from_secs(5);

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
        // Periodic tables: when each is due next, and how often it runs.
        let mut due_at: BTreeMap<String, (Instant, Duration)> = periodic_tables(&self.config)
            .into_iter()
            .map(|(table, every)| (table, (Instant::now(), every)))
            .collect();
        tracing::info!(unit = self.unit.id, "Capture publisher started.");
        while !shutdown.is_cancelled() {
            let now = Instant::now();
            let due: Vec<String> = due_at
                .iter()
                .filter(|(_, (at, _))| *at <= now)
                .map(|(table, _)| table.clone())
                .collect();
            if !due.is_empty() {
                // A round only writes SYNC_LOG and fingerprints in one transaction; stopping
                // mid-round rolls it back and the next round finds the same changes.
                let ok = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    r = self.periodic_round(&mut worker, due.clone()) => r,
                };
                for table in &due {
                    if let Some((at, every)) = due_at.get_mut(table) {
                        *at = now
                            + if ok {
                                *every
                            } else {
                                (*every).min(RETRY_ROUND)
                            };
                    }
                }
            }
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
            let next_round = due_at
                .values()
                .map(|(at, _)| *at)
                .min()
                .map(|at| at.saturating_duration_since(Instant::now()));
            let delay = next_round.map_or(delay, |d| d.min(delay));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        tracing::info!(unit = self.unit.id, "Capture publisher stopped.");
    }

    /// One periodic capture round over `due` on the unit's thread; whether it committed.
    async fn periodic_round(&self, worker: &mut FbWorker, due: Vec<String>) -> bool {
        let tables = due.join(", ");
        // A round scans whole tables inside Firebird: it gets ten times the statement timeout.
        let timeout = Duration::from_millis(self.config.firebird.timeout_ms.saturating_mul(10));
        let config = Arc::clone(&self.config);
        let started = Instant::now();
        let result = worker
            .run(timeout, move |session| {
                let result = session
                    .conn()
                    .and_then(|conn| run_round(conn, &config, &due).map_err(|e| classify(&e)));
                if matches!(&result, Err(f) if f.kind == FbFailureKind::Connection) {
                    session.reset();
                }
                result
            })
            .await;
        let unit = self.unit.id;
        let report = match result {
            Ok(Ok(report)) => report,
            Ok(Err(failure)) => {
                // An update conflict with a concurrent apply transaction is the common case.
                tracing::warn!(unit, tables = %tables, error = %failure.message, "Periodic capture round rolled back (a concurrent apply of the same rows, or the error shown); nothing was lost, retrying.");
                return false;
            }
            Err(e) => {
                if matches!(e, WorkerError::Timeout(_)) {
                    if let Ok(w) = self.worker() {
                        *worker = w;
                    }
                }
                tracing::warn!(unit, tables = %tables, error = %e, "Periodic capture round did not finish; nothing was lost, retrying.");
                return false;
            }
        };
        for table in &report.not_installed {
            tracing::error!(unit, table = %table, "Periodic capture is not installed for this table at this unit; its changes are not captured until `ponte capture install` runs.");
        }
        for (table, count) in &report.tables {
            let rows = &self.metrics.upstream_periodic_rows;
            rows.with_label_values(&[&self.label, table, "changed"])
                .inc_by(count.changed.max(0) as u64);
            rows.with_label_values(&[&self.label, table, "deleted"])
                .inc_by(count.deleted.max(0) as u64);
            if count.changed + count.deleted > 0 {
                tracing::info!(unit, table = %table, changed = count.changed, deleted = count.deleted, elapsed_ms = started.elapsed().as_millis() as u64, "Periodic capture logged changes.");
            }
        }
        self.metrics
            .upstream_periodic_round
            .with_label_values(&[&self.label])
            .set(chrono::Utc::now().timestamp());
        true
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
