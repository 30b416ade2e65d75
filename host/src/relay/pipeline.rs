//! The relay's publish pipeline: claimed rows go out on one confirm channel in claim order while
//! earlier confirms are still outstanding (at most `max_in_flight` messages, at most
//! `max_in_flight_bytes` of payload); confirms are settled in publish order and the marks are
//! written in batches. So the broker never idles between claims.
//!
//! Order: one channel keeps the publish order, and the claim never takes a unit's row past one
//! that failed and waits for its backoff — a failure is written before the next claim. Rows of
//! that unit already in flight behind the failed one may still be confirmed: such a row reaches
//! the unit ahead of the retried one, where the row-version guard keeps a stale image from
//! overwriting a newer one and a child that arrives before its parent is held (docs/delivery.md).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesOrdered, StreamExt};
use sqlx::PgPool;

use super::outbox::{self, Claimed, Failed};
use crate::amqp::{settle, Outgoing, PublishFailure, Publisher};
use crate::backoff::delay_for;
use crate::telemetry::{HandBack, Metrics};

/// Marks are written at least this often while confirms arrive...
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// ...or as soon as this many are waiting.
const FLUSH_AT: usize = 500;

type Confirming = Pin<Box<dyn Future<Output = (Sent, Result<(), PublishFailure>)> + Send>>;

/// A published row awaiting its confirm.
struct Sent {
    id: i64,
    unit: i32,
    attempts: i32,
    correlation_id: uuid::Uuid,
    bytes: usize,
    claimed: Instant,
}

/// Rows published and not yet marked, and the marks not yet written.
pub struct Pipeline {
    publisher: Publisher,
    confirms: FuturesOrdered<Confirming>,
    /// The ids in `confirms`, in the same (publish) order.
    order: VecDeque<i64>,
    in_flight_bytes: usize,
    sent: Vec<i64>,
    failed: Vec<Failed>,
    oldest: Option<Instant>,
    last_flush: Instant,
    confirm_timeout: Duration,
}

impl Pipeline {
    /// An empty pipeline on `publisher`; confirms time out after `confirm_timeout`.
    pub fn new(publisher: Publisher, confirm_timeout: Duration) -> Pipeline {
        Pipeline {
            publisher,
            confirms: FuturesOrdered::new(),
            order: VecDeque::new(),
            in_flight_bytes: 0,
            sent: Vec::new(),
            failed: Vec::new(),
            oldest: None,
            last_flush: Instant::now(),
            confirm_timeout,
        }
    }

    /// Messages awaiting a confirm.
    pub fn in_flight(&self) -> usize {
        self.confirms.len()
    }

    /// Payload bytes awaiting a confirm.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes
    }

    /// Nothing in flight and nothing left to mark.
    pub fn is_idle(&self) -> bool {
        self.confirms.is_empty() && self.sent.is_empty() && self.failed.is_empty()
    }

    /// A failure must reach the database before the next claim (it is the unit's barrier).
    pub fn must_flush_before_claim(&self) -> bool {
        !self.failed.is_empty()
    }

    /// Publishes `rows` in order. A refused row is recorded dead; after a publish that could not
    /// be handed to the broker nothing more of the claim is sent: the remaining rows are returned
    /// to be handed back (they follow the failed row, which now waits for its backoff).
    pub async fn publish(
        &mut self,
        rows: Vec<Claimed>,
        messages: Vec<Result<Outgoing, String>>,
        wait_for_broker: Duration,
        metrics: &Metrics,
    ) -> Vec<i64> {
        let mut rest = Vec::new();
        let mut broken = false;
        for (row, message) in rows.into_iter().zip(messages) {
            if broken {
                rest.push(row.id);
                continue;
            }
            let message = match message {
                Ok(m) => m,
                Err(reason) => {
                    metrics.relay_refused(&row, &reason);
                    self.failed.push(Failed {
                        id: row.id,
                        error: reason,
                        retry_in_secs: 0.0,
                        dead_now: true,
                    });
                    continue;
                }
            };
            let sent = Sent {
                id: row.id,
                unit: row.unit_id,
                attempts: row.attempts,
                correlation_id: row.correlation_id,
                bytes: row.payload.len(),
                claimed: Instant::now(),
            };
            self.in_flight_bytes += sent.bytes;
            let confirming: Confirming = match self.publisher.send(&message, wait_for_broker).await
            {
                Ok(confirm) => {
                    let timeout = self.confirm_timeout;
                    Box::pin(async move { (sent, settle(confirm, timeout).await) })
                }
                Err(failure) => {
                    broken = true;
                    Box::pin(async move { (sent, Err(failure)) })
                }
            };
            self.order.push_back(row.id);
            self.confirms.push_back(confirming);
        }
        metrics.relay_in_flight(self.in_flight(), self.in_flight_bytes);
        rest
    }

    /// Waits for the next confirm (or the flush interval), then takes every confirm already
    /// there.
    pub async fn settle_some(&mut self, metrics: &Metrics) {
        let wait = FLUSH_EVERY.saturating_sub(self.last_flush.elapsed());
        let first = tokio::time::timeout(wait.max(Duration::from_millis(1)), self.confirms.next());
        if let Ok(Some((sent, result))) = first.await {
            self.record(sent, result, metrics);
            while let Some(Some((sent, result))) =
                futures_util::FutureExt::now_or_never(self.confirms.next())
            {
                self.record(sent, result, metrics);
            }
        }
        metrics.relay_in_flight(self.in_flight(), self.in_flight_bytes);
    }

    /// Settles what is in flight for at most `budget` (a stopping relay); returns the ids whose
    /// confirm did not come, to be handed back.
    pub async fn drain(&mut self, budget: Duration, metrics: &Metrics) -> Vec<i64> {
        let deadline = tokio::time::Instant::now() + budget;
        while !self.confirms.is_empty() {
            match tokio::time::timeout_at(deadline, self.confirms.next()).await {
                Ok(Some((sent, result))) => self.record(sent, result, metrics),
                Ok(None) | Err(_) => break,
            }
        }
        // What is still unconfirmed is dropped here: its confirm would only say what a
        // republish says again (at least once; the unit's ledger removes the duplicate).
        self.confirms = FuturesOrdered::new();
        let left: Vec<i64> = self.order.drain(..).collect();
        self.in_flight_bytes = 0;
        metrics.relay_in_flight(0, 0);
        left
    }

    fn record(&mut self, sent: Sent, result: Result<(), PublishFailure>, metrics: &Metrics) {
        self.order.pop_front();
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(sent.bytes);
        self.oldest = Some(self.oldest.map_or(sent.claimed, |t| t.min(sent.claimed)));
        match result {
            Ok(()) => self.sent.push(sent.id),
            Err(failure) => {
                if matches!(failure, PublishFailure::Unconfirmed(_)) {
                    self.publisher.reset();
                }
                let retry = delay_for(
                    Duration::from_secs(1),
                    Duration::from_secs(60),
                    sent.attempts.max(0) as u32,
                );
                metrics.relay_publish_failed(sent.correlation_id, sent.id, sent.unit, &failure);
                self.failed.push(Failed {
                    id: sent.id,
                    error: failure.to_string(),
                    retry_in_secs: retry.as_secs_f64(),
                    dead_now: false,
                });
            }
        }
    }

    /// Whether the marks waiting should be written now.
    pub fn flush_due(&self) -> bool {
        let waiting = self.sent.len() + self.failed.len();
        waiting >= FLUSH_AT
            || !self.failed.is_empty()
            || (waiting > 0 && self.last_flush.elapsed() >= FLUSH_EVERY)
    }

    /// Writes the waiting marks. On an error they stay waiting (a later flush writes them), so a
    /// confirmed row is never handed back for a republish it does not need.
    pub async fn flush(
        &mut self,
        pool: &PgPool,
        instance: &str,
        max_attempts: i32,
        metrics: &Metrics,
    ) -> Result<(), sqlx::Error> {
        self.last_flush = Instant::now();
        if !self.sent.is_empty() {
            outbox::mark_sent(pool, &self.sent, instance).await?;
            metrics.relay_sent(self.sent.len());
            self.sent.clear();
        }
        if !self.failed.is_empty() {
            let dead = outbox::mark_failed(pool, &self.failed, instance, max_attempts).await?;
            metrics.relay_dead(&dead);
            self.failed.clear();
        }
        if let Some(oldest) = self.oldest.take() {
            metrics.relay_batch_done(oldest.elapsed());
        }
        Ok(())
    }
}

/// Rows handed back without an attempt (stopping, over the byte budget, after a broken publish).
pub async fn hand_back(
    pool: &PgPool,
    ids: &[i64],
    instance: &str,
    why: HandBack,
    metrics: &Metrics,
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let n = outbox::hand_back(pool, Some(ids), instance).await?;
    metrics.relay_handed_back(n, why);
    Ok(())
}

/// Splits claimed rows at the byte budget: the rows that fit (at least one when the pipeline
/// is empty, so a single large row still goes) and the ids of the tail to hand back.
pub fn fit_budget(
    mut rows: Vec<Claimed>,
    in_flight_bytes: usize,
    budget: usize,
) -> (Vec<Claimed>, Vec<i64>) {
    let mut total = in_flight_bytes;
    let keep = rows
        .iter()
        .position(|r| {
            total += r.payload.len();
            total > budget
        })
        .map(|i| if in_flight_bytes == 0 { i.max(1) } else { i })
        .unwrap_or(rows.len());
    let tail = rows.split_off(keep.min(rows.len()));
    (rows, tail.into_iter().map(|r| r.id).collect())
}
