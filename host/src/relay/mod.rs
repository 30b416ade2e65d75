//! The outbox relay: claims a unit's pending rows in order (one holder per unit), publishes them
//! with confirms and `mandatory`, marks them sent only after a routed ack, and otherwise records
//! the failure with backoff. A janitor rescues rows stuck in `processing`; a clean stop hands every
//! unconfirmed row back within the drain budget.

mod lease;
mod outbox;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::amqp::{AmqpLink, PublishFailure, Publisher};
use crate::backoff::{delay_for, Backoff};
use crate::config::Config;
use crate::model::Op;
use crate::model::{Envelope, ENVELOPE_VERSION};
use crate::telemetry::{rss_bytes, Metrics};

pub use outbox::{backlog, rescue_stuck};

/// How long a stopping relay may keep waiting for confirms before handing rows back.
const DRAIN_CONFIRMS: Duration = Duration::from_secs(3);

/// One relay instance.
pub struct Relay {
    pool: PgPool,
    link: AmqpLink,
    config: Arc<Config>,
    metrics: Metrics,
    instance: String,
}

impl Relay {
    /// A relay with a unique instance id (`hostname:pid:random`).
    pub fn new(pool: PgPool, link: AmqpLink, config: Arc<Config>, metrics: Metrics) -> Relay {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let instance = format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        Relay {
            pool,
            link,
            config,
            metrics,
            instance,
        }
    }

    /// This instance's id as stored in `claimed_by` and the lease table.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Runs until `shutdown`, then hands back what it holds and releases its leases.
    pub async fn run(self, shutdown: CancellationToken) {
        let units: Vec<i32> = self.config.units().iter().map(|u| u.id).collect();
        let relay_cfg = &self.config.relay;
        let mut leases = lease::Leases::new(
            &self.instance,
            Duration::from_secs(relay_cfg.lease_secs),
            units.clone(),
        );
        let mut publisher = Publisher::new(self.link.clone(), self.config.amqp.clone(), units);
        let mut listener: Option<PgListener> = None;
        let mut errors = Backoff::default();
        let mut last_refresh: Option<Instant> = None;
        let mut orphans = false;
        tracing::info!(instance = %self.instance, "Relay started.");
        while !shutdown.is_cancelled() {
            let refresh_due = last_refresh.is_none_or(|t| {
                t.elapsed()
                    >= Duration::from_secs(relay_cfg.lease_secs / 3).max(Duration::from_secs(1))
            });
            if refresh_due {
                if let Err(e) = leases.refresh(&self.pool).await {
                    self.pause(
                        &shutdown,
                        &mut errors,
                        &format!("lease refresh failed: {e}"),
                    )
                    .await;
                    continue;
                }
                last_refresh = Some(Instant::now());
            }
            // A failed round (database gone mid-round) leaves its rows in `processing` under this
            // instance, where they would not block this instance's next claim: hand them back
            // first, so they go out again in order now instead of after the janitor's timeout.
            if orphans {
                match outbox::hand_back(&self.pool, None, &self.instance).await {
                    Ok(n) => {
                        orphans = false;
                        if n > 0 {
                            self.metrics
                                .relay_rows
                                .with_label_values(&["handed_back"])
                                .inc_by(n);
                            tracing::info!(
                                rows = n,
                                "Rows of the failed round handed back to pending."
                            );
                        }
                    }
                    Err(e) => {
                        self.pause(
                            &shutdown,
                            &mut errors,
                            &format!("handing back the failed round's rows failed: {e}"),
                        )
                        .await;
                        continue;
                    }
                }
            }
            if listener.is_none() {
                listener = listen(&self.pool).await;
            }
            if !self.link.is_connected().await || leases.held().is_empty() || self.memory_pressed()
            {
                wait_for_work(
                    &mut listener,
                    Duration::from_millis(relay_cfg.poll_interval_ms),
                    &shutdown,
                )
                .await;
                continue;
            }
            match self.round(&mut publisher, leases.held(), &shutdown).await {
                Ok(0) => {
                    errors.reset();
                    wait_for_work(
                        &mut listener,
                        Duration::from_millis(relay_cfg.poll_interval_ms),
                        &shutdown,
                    )
                    .await;
                }
                Ok(_) => errors.reset(),
                Err(e) => {
                    orphans = true;
                    self.pause(&shutdown, &mut errors, &format!("outbox query failed: {e}"))
                        .await;
                }
            }
        }
        self.stop(&mut leases).await;
    }

    async fn pause(&self, shutdown: &CancellationToken, backoff: &mut Backoff, why: &str) {
        let delay = backoff.next_delay();
        tracing::warn!(
            error = why,
            retry_in_ms = delay.as_millis() as u64,
            "Relay round failed; backing off."
        );
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(delay) => {}
        }
    }

    fn memory_pressed(&self) -> bool {
        let limit = self.config.relay.max_rss_mib * 1024 * 1024;
        let pressed = rss_bytes().is_some_and(|rss| rss > limit);
        self.metrics.memory_pressure.set(i64::from(pressed));
        if pressed {
            tracing::warn!(
                limit_mib = self.config.relay.max_rss_mib,
                "Memory guard: claiming paused."
            );
        }
        pressed
    }

    /// One claim -> publish -> mark round. Returns the rows claimed.
    async fn round(
        &self,
        publisher: &mut Publisher,
        units: &[i32],
        shutdown: &CancellationToken,
    ) -> Result<usize, sqlx::Error> {
        let cfg = &self.config.relay;
        let started = Instant::now();
        let mut rows =
            outbox::claim(&self.pool, units, i64::from(cfg.batch_size), &self.instance).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let claimed = rows.len();
        self.trim_to_byte_budget(&mut rows).await?;
        let mut failed = Vec::new();
        let mut to_publish = Vec::with_capacity(rows.len());
        for row in &rows {
            match self.envelope(row) {
                Ok(env) => to_publish.push((row, env)),
                Err(reason) => {
                    tracing::warn!(correlation_id = %row.correlation_id, outbox_id = row.id, unit = row.unit_id, table = %row.table_name, reason = %reason, "Outbox row refused; marked dead.");
                    self.metrics
                        .relay_rows
                        .with_label_values(&["refused"])
                        .inc();
                    failed.push(outbox::Failed {
                        id: row.id,
                        error: reason,
                        retry_in_secs: 0.0,
                        dead_now: true,
                    });
                }
            }
        }
        let bytes: usize = to_publish.iter().map(|(r, _)| r.payload.len()).sum();
        self.metrics.relay_in_flight_bytes.set(bytes as i64);
        let messages = to_publish
            .iter()
            .map(|(_, env)| {
                let body = serde_json::to_vec(env).unwrap_or_default();
                (
                    env.routing_key(&self.config.amqp.exchange),
                    env.properties(),
                    body,
                )
            })
            .collect();
        let publishing = publisher.publish_all(messages, self.link.timeout());
        tokio::pin!(publishing);
        let results = tokio::select! {
            results = &mut publishing => results,
            _ = shutdown.cancelled() => {
                // Stop requested mid-batch: give the confirms a short grace, then hand back.
                match tokio::time::timeout(DRAIN_CONFIRMS, &mut publishing).await {
                    Ok(results) => results,
                    Err(_) => vec![Err(PublishFailure::Unconfirmed("relay stopping".into())); to_publish.len()],
                }
            }
        };
        let mut sent = Vec::new();
        let mut unconfirmed_on_stop = Vec::new();
        for ((row, _), result) in to_publish.iter().zip(results) {
            match result {
                Ok(()) => sent.push(row.id),
                Err(PublishFailure::Unconfirmed(_)) if shutdown.is_cancelled() => {
                    unconfirmed_on_stop.push(row.id)
                }
                Err(failure) => {
                    let retry = delay_for(
                        Duration::from_secs(1),
                        Duration::from_secs(60),
                        row.attempts.max(0) as u32,
                    );
                    tracing::warn!(correlation_id = %row.correlation_id, outbox_id = row.id, unit = row.unit_id, error = %failure, "Publish failed; row stays pending with backoff.");
                    self.metrics.relay_rows.with_label_values(&["retry"]).inc();
                    failed.push(outbox::Failed {
                        id: row.id,
                        error: failure.to_string(),
                        retry_in_secs: retry.as_secs_f64(),
                        dead_now: false,
                    });
                }
            }
        }
        outbox::mark_sent(&self.pool, &sent, &self.instance).await?;
        self.metrics
            .relay_rows
            .with_label_values(&["sent"])
            .inc_by(sent.len() as u64);
        let dead =
            outbox::mark_failed(&self.pool, &failed, &self.instance, cfg.max_attempts).await?;
        if !dead.is_empty() {
            self.metrics.outbox_dead.inc_by(dead.len() as u64);
            tracing::error!(outbox_ids = ?dead, "Outbox rows marked dead; inspect error_log and replay after fixing.");
        }
        if !unconfirmed_on_stop.is_empty() {
            let n =
                outbox::hand_back(&self.pool, Some(&unconfirmed_on_stop), &self.instance).await?;
            self.metrics
                .relay_rows
                .with_label_values(&["handed_back"])
                .inc_by(n);
        }
        self.metrics.relay_in_flight_bytes.set(0);
        self.metrics
            .relay_batch_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(claimed)
    }

    /// The memory guard on claimed bytes: rows past the budget go straight back to pending.
    async fn trim_to_byte_budget(
        &self,
        rows: &mut Vec<outbox::Claimed>,
    ) -> Result<(), sqlx::Error> {
        let budget = self.config.relay.max_in_flight_bytes;
        let mut total = 0usize;
        let keep = rows
            .iter()
            .position(|r| {
                total += r.payload.len();
                total > budget
            })
            .map(|i| i.max(1))
            .unwrap_or(rows.len());
        if keep < rows.len() {
            let tail: Vec<i64> = rows[keep..].iter().map(|r| r.id).collect();
            outbox::hand_back(&self.pool, Some(&tail), &self.instance).await?;
            tracing::warn!(
                kept = keep,
                handed_back = tail.len(),
                budget,
                "Claimed bytes over budget; tail handed back."
            );
            rows.truncate(keep);
        }
        Ok(())
    }

    /// The envelope of a row, or why it is refused (whitelist, malformed row).
    fn envelope(&self, row: &outbox::Claimed) -> Result<Envelope, String> {
        let op = Op::from_code(&row.operation)
            .ok_or_else(|| format!("refused: operation `{}` is not I, U or D", row.operation))?;
        if !self.config.allows(&row.table_name, op) {
            return Err(format!(
                "refused: table `{}` operation `{}` is not whitelisted (add it to [tables.{}] ops in the config, then replay)",
                row.table_name, row.operation, row.table_name
            ));
        }
        let payload = RawValue::from_string(row.payload.clone())
            .map_err(|e| format!("refused: payload is not JSON: {e}"))?;
        Ok(Envelope {
            v: ENVELOPE_VERSION,
            correlation_id: row.correlation_id.to_string(),
            outbox_id: row.id,
            unit: row.unit_id,
            table: row.table_name.clone(),
            op: op.code().to_string(),
            origin: row.origin_unit,
            created_at: row.created_at.to_rfc3339(),
            payload,
        })
    }

    async fn stop(&self, leases: &mut lease::Leases) {
        let handed = outbox::hand_back(&self.pool, None, &self.instance).await;
        let released = leases.release_all(&self.pool).await;
        match (handed, released) {
            (Ok(n), Ok(())) => {
                tracing::info!(instance = %self.instance, handed_back = n, "Relay stopped cleanly.")
            }
            (h, r) => {
                tracing::error!(instance = %self.instance, hand_back = ?h.err(), release = ?r.err(), "Relay stop could not reach PostgreSQL; the janitor or a lease takeover will rescue its rows.")
            }
        }
    }
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen("ponte_outbox").await.ok()?;
    Some(listener)
}

/// Waits for a NOTIFY, the poll interval, or shutdown; drops a broken listener (re-made later).
async fn wait_for_work(
    listener: &mut Option<PgListener>,
    poll: Duration,
    shutdown: &CancellationToken,
) {
    match listener {
        Some(l) => {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(poll) => {}
                got = l.recv() => if got.is_err() { *listener = None; },
            }
        }
        None => {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}

/// The janitor and the backlog sampler, until `shutdown`.
pub async fn janitor(
    pool: PgPool,
    config: Arc<Config>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let every = Duration::from_secs(config.relay.janitor_interval_secs.max(1));
    let mut unserved = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match rescue_stuck(&pool, config.relay.processing_timeout_secs as f64).await {
            Ok(0) => {}
            Ok(n) => {
                metrics.relay_rows.with_label_values(&["rescued"]).inc_by(n);
                tracing::warn!(
                    rescued = n,
                    "Janitor handed rows stuck in processing back to pending."
                );
            }
            Err(e) => tracing::warn!(error = %e, "Janitor query failed."),
        }
        if let Ok(rows) = backlog(&pool).await {
            metrics.outbox_backlog.reset();
            for (unit, status, n) in &rows {
                metrics
                    .outbox_backlog
                    .with_label_values(&[&unit.to_string(), status])
                    .set(*n);
            }
            unserved = warn_unserved(&config, &rows, unserved);
        }
    }
}

/// Pending rows for a unit missing from `[units]` wait (another instance may serve it, or the
/// unit is about to be added): they are neither lost nor refused, but an operator must see them.
/// Warns when that backlog changes; returns it for the next round.
fn warn_unserved(
    config: &Config,
    rows: &[(i32, String, i64)],
    before: Vec<(i32, i64)>,
) -> Vec<(i32, i64)> {
    let served: Vec<i32> = config.units().iter().map(|u| u.id).collect();
    let now: Vec<(i32, i64)> = rows
        .iter()
        .filter(|(unit, status, _)| status == "pending" && !served.contains(unit))
        .map(|(unit, _, n)| (*unit, *n))
        .collect();
    if !now.is_empty() && now != before {
        tracing::warn!(
            units = ?now,
            "Outbox rows are pending for units this instance does not serve (not in [units]); they wait for a relay configured with those units."
        );
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_rows_of_unserved_units_are_reported() {
        let config = Config::parse(
            "[postgres]\nurl='postgres://x'\n[amqp]\nurl='amqp://x'\n[firebird]\npassword='x'\n[units]\nids='1-2'\ndatabase='127.0.0.1:/u{id}.fdb'\n[transforms]\ndir='/tmp'\n",
        )
        .unwrap();
        let rows = vec![
            (1, "pending".to_string(), 5),
            (9, "pending".to_string(), 3),
            (9, "dead".to_string(), 1),
        ];
        assert_eq!(warn_unserved(&config, &rows, Vec::new()), vec![(9, 3)]);
        assert_eq!(
            warn_unserved(&config, &rows[..1], vec![(9, 3)]),
            Vec::<(i32, i64)>::new()
        );
    }
}
