//! [`UnitHandler`]: the unit applier's side of the consumer skeleton. Deliveries are translated
//! once (a change that waits for a transform is translated again when the transforms change, or
//! every few seconds), walked oldest first — nothing after a waiting change is applied, so a
//! unit's order holds — and the ready ones applied in one Firebird transaction per batch. A
//! change at fault is set aside and the rest re-run; a transient failure holds the batch for the
//! skeleton's backoff; a stop cancels the transaction at the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::message::Delivery;
use tokio_util::sync::CancellationToken;

use super::prepare::{prepare, Meta, Verdict};
use crate::amqp::{BatchHandler, DeadClass, Disposition, Hold, Pending};
use crate::config::{Config, Unit};
use crate::firebird::{
    apply_batch_with, BatchError, BatchOutcome, FbFailureKind, FbSession, FbWorker, Prepared,
    WorkerError,
};
use crate::telemetry::{ChangeOutcome, Flow, Metrics};
use crate::transform::TransformRegistry;

/// A change waiting for a transform is translated again at least this often.
const RETRANSLATE_EVERY: Duration = Duration::from_secs(5);
/// How long a stopping applier waits for a cancelled transaction to come back.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// One delivery as the unit applier sees it.
pub struct UnitItem {
    meta: Meta,
    verdict: Verdict,
    /// The transforms' generation the verdict was made under.
    generation: u64,
    made_at: Instant,
    /// When its foreign key first failed (bounded wait for the parent).
    fk_since: Option<Instant>,
}

/// Applies one unit's deliveries to its Firebird.
pub struct UnitHandler {
    unit: Unit,
    config: Arc<Config>,
    registry: TransformRegistry,
    metrics: Metrics,
    worker: FbWorker,
}

impl UnitHandler {
    /// A handler that applies through `worker`, the unit's Firebird thread.
    pub fn new(
        unit: Unit,
        config: Arc<Config>,
        registry: TransformRegistry,
        metrics: Metrics,
        worker: FbWorker,
    ) -> UnitHandler {
        UnitHandler {
            unit,
            config,
            registry,
            metrics,
            worker,
        }
    }

    /// Translates bodies off the async threads (a hostile transform may use its whole deadline).
    async fn translate(&self, bodies: Vec<Vec<u8>>) -> Vec<(Meta, Verdict)> {
        let (config, registry, unit) = (self.config.clone(), self.registry.clone(), self.unit.id);
        let count = bodies.len();
        let done = tokio::task::spawn_blocking(move || {
            bodies
                .iter()
                .map(|b| prepare(b, unit, &config, &registry))
                .collect::<Vec<_>>()
        })
        .await;
        match done {
            Ok(verdicts) => verdicts,
            Err(e) => (0..count)
                .map(|_| {
                    (
                        Meta::default(),
                        Verdict::Wait(format!("transform task failed: {e}")),
                    )
                })
                .collect(),
        }
    }

    /// Translates again the waiting changes whose transforms may have arrived.
    async fn retranslate(&self, pending: &mut [Pending<UnitItem>]) {
        let generation = self.registry.generation();
        let due: Vec<usize> = pending
            .iter()
            .enumerate()
            .filter(|(_, p)| matches!(p.item.verdict, Verdict::Wait(_)))
            .filter(|(_, p)| {
                p.item.generation != generation || p.item.made_at.elapsed() >= RETRANSLATE_EVERY
            })
            .map(|(i, _)| i)
            .collect();
        if due.is_empty() {
            return;
        }
        let bodies = due
            .iter()
            .map(|&i| pending[i].delivery.data.clone())
            .collect();
        let verdicts = self.translate(bodies).await;
        for (&i, (meta, verdict)) in due.iter().zip(verdicts) {
            let item = &mut pending[i].item;
            item.meta = meta;
            item.verdict = verdict;
            item.generation = generation;
            item.made_at = Instant::now();
        }
    }

    /// Runs one batch on the unit's thread, racing a stop: on shutdown the transaction is
    /// cancelled at the server (it rolls back) and given a moment to come back.
    async fn run_batch(
        &mut self,
        batch: Vec<Prepared>,
        shutdown: &CancellationToken,
    ) -> Result<Result<Vec<BatchOutcome>, BatchError>, WorkerError> {
        let timeout = Duration::from_millis(self.config.firebird.timeout_ms);
        let hooks = crate::firebird::UnitHooks::of(&self.config);
        let unit = self.unit.id;
        let job = self.worker.run(timeout, move |session| {
            let attempt = |session: &mut FbSession| {
                session
                    .conn_and_columns()
                    .map_err(|failure| BatchError {
                        index: None,
                        failure,
                    })
                    .and_then(|(conn, columns)| {
                        apply_batch_with(conn, &batch, &hooks, columns)
                    })
            };
            let mut result = attempt(session);
            if matches!(&result, Err(e) if e.needs_new_connection()) {
                // Its cached statements would still run the unit's old trigger bodies.
                tracing::info!(unit, "The unit's triggers changed (ponte unit-triggers); applying on a new connection.");
                session.reset();
                result = attempt(session);
            }
            if matches!(&result, Err(e) if e.failure.kind == FbFailureKind::Connection) {
                session.reset();
            }
            result
        });
        tokio::pin!(job);
        tokio::select! {
            result = &mut job => result,
            _ = shutdown.cancelled() => {
                self.worker.cancel().await;
                match tokio::time::timeout(CANCEL_GRACE, &mut job).await {
                    Ok(result) => result,
                    Err(_) => Err(WorkerError::Timeout(CANCEL_GRACE)),
                }
            }
        }
    }

    fn record(&self, item: &UnitItem, outcome: BatchOutcome) {
        let outcome = match outcome {
            BatchOutcome::Applied => ChangeOutcome::Applied,
            BatchOutcome::Duplicate => ChangeOutcome::Duplicate,
            BatchOutcome::Stale => ChangeOutcome::Stale,
        };
        let lag = chrono::DateTime::parse_from_rfc3339(&item.meta.created_at)
            .ok()
            .and_then(|at| (chrono::Utc::now() - at.to_utc()).to_std().ok());
        let m = &item.meta;
        self.metrics.change_done(
            Flow::Downstream,
            self.unit.id,
            &m.table,
            &m.correlation_id,
            outcome,
            lag,
        );
    }

    /// Applies `ready` (indices into `pending`, in order) and sets their dispositions.
    async fn apply(
        &mut self,
        pending: &mut [Pending<UnitItem>],
        mut ready: Vec<usize>,
        out: &mut [Disposition],
        shutdown: &CancellationToken,
    ) {
        while !ready.is_empty() {
            let batch: Vec<Prepared> = ready
                .iter()
                .filter_map(|&i| match &pending[i].item.verdict {
                    Verdict::Ready(p) => Some((**p).clone()),
                    _ => None,
                })
                .collect();
            let started = Instant::now();
            let label = self.unit.id.to_string();
            match self.run_batch(batch, shutdown).await {
                Ok(Ok(outcomes)) => {
                    self.metrics.unit_up.with_label_values(&[&label]).set(1);
                    self.metrics
                        .apply_batch_seconds
                        .with_label_values(&[&label])
                        .observe(started.elapsed().as_secs_f64());
                    for (&i, outcome) in ready.iter().zip(outcomes) {
                        self.record(&pending[i].item, outcome);
                        out[i] = Disposition::Ack;
                    }
                    return;
                }
                Ok(Err(BatchError {
                    index: Some(k),
                    failure,
                })) if failure.kind == FbFailureKind::Permanent => {
                    let i = ready.remove(k);
                    out[i] = Disposition::Dead {
                        class: DeadClass::Firebird,
                        reason: failure.message,
                    };
                }
                Ok(Err(BatchError {
                    index: Some(k),
                    failure,
                })) if failure.kind == FbFailureKind::ForeignKey => {
                    let i = ready.remove(k);
                    let limit = Duration::from_secs(self.config.apply.fk_retry_secs);
                    let since = *pending[i].item.fk_since.get_or_insert_with(Instant::now);
                    out[i] = if since.elapsed() >= limit {
                        Disposition::Dead {
                            class: DeadClass::Firebird,
                            reason: format!(
                                "foreign key still failing after {}s: {}",
                                limit.as_secs(),
                                failure.message
                            ),
                        }
                    } else {
                        Disposition::Hold(Hold::Parent(failure.message))
                    };
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        Err(WorkerError::Timeout(t)) => {
                            // A hung call: abandon that thread and its connection.
                            if let Ok(w) = FbWorker::spawn(
                                self.unit.id,
                                self.unit.database.clone(),
                                self.config.firebird.clone(),
                            ) {
                                self.worker = w;
                            }
                            format!("Firebird call timed out after {t:?}")
                        }
                        Err(e) => e.to_string(),
                        Ok(Ok(_)) => String::new(),
                    };
                    let hold = if shutdown.is_cancelled() {
                        Hold::Stopping
                    } else {
                        self.metrics.unit_up.with_label_values(&[&label]).set(0);
                        self.metrics
                            .apply_retry(Flow::Downstream, self.unit.id, ready.len(), &why);
                        Hold::Retry(why)
                    };
                    for &i in &ready {
                        out[i] = Disposition::Hold(hold.clone());
                    }
                    return;
                }
            }
        }
    }
}

impl BatchHandler for UnitHandler {
    type Item = UnitItem;

    async fn prepare(&mut self, deliveries: &[Delivery]) -> Vec<UnitItem> {
        let generation = self.registry.generation();
        let bodies = deliveries.iter().map(|d| d.data.clone()).collect();
        self.translate(bodies)
            .await
            .into_iter()
            .map(|(meta, verdict)| UnitItem {
                meta,
                verdict,
                generation,
                made_at: Instant::now(),
                fk_since: None,
            })
            .collect()
    }

    async fn handle(
        &mut self,
        pending: &mut [Pending<UnitItem>],
        shutdown: &CancellationToken,
    ) -> Vec<Disposition> {
        self.retranslate(pending).await;
        let mut out = vec![Disposition::Hold(Hold::Stopping); pending.len()];
        let mut ready = Vec::new();
        let mut waiting: Option<String> = None;
        for (i, p) in pending.iter().enumerate() {
            out[i] = match (&p.item.verdict, &waiting) {
                (Verdict::Dead { class, reason }, _) => Disposition::Dead {
                    class: *class,
                    reason: reason.clone(),
                },
                (Verdict::Wait(why), None) => {
                    waiting = Some(format!(
                        "{} (change {} of table `{}`)",
                        why, p.item.meta.correlation_id, p.item.meta.table
                    ));
                    Disposition::Hold(Hold::Transform(why.clone()))
                }
                // Behind a waiting change: nothing overtakes it.
                (_, Some(head)) => Disposition::Hold(Hold::Transform(format!("behind {head}"))),
                (Verdict::Ready(_), None) => {
                    ready.push(i);
                    continue;
                }
            };
        }
        let mut retrying = false;
        for chunk in ready.chunks(self.config.apply.batch_size.max(1)) {
            if retrying {
                // Behind a batch that is retried: they must not overtake it.
                for &i in chunk {
                    out[i] = Disposition::Hold(Hold::Retry("behind a batch being retried".into()));
                }
                continue;
            }
            if shutdown.is_cancelled() {
                break;
            }
            self.apply(pending, chunk.to_vec(), &mut out, shutdown)
                .await;
            retrying = chunk
                .iter()
                .any(|&i| matches!(out[i], Disposition::Hold(Hold::Retry(_))));
        }
        out
    }

    fn identity(item: &UnitItem) -> (&str, &str) {
        (&item.meta.table, &item.meta.correlation_id)
    }

    fn wake(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.registry.subscribe())
    }
}
