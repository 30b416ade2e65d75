//! The outbox relay: claims a unit's pending rows in order (one holder per unit), publishes them
//! with confirms and `mandatory` through a pipeline that keeps claiming while confirms are
//! outstanding, marks them sent only after a routed ack, and otherwise records the failure with
//! backoff. A janitor rescues rows stuck in `processing`; a clean stop hands every unconfirmed
//! row back within the drain budget.

mod envelope;
mod janitor;
mod lease;
mod outbox;
mod pipeline;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::amqp::{AmqpLink, Publisher, Topology};
use crate::backoff::Backoff;
use crate::config::Config;
use crate::telemetry::{rss_bytes, HandBack, Metrics};
use pipeline::Pipeline;

pub use janitor::janitor;
pub use outbox::{backlog, claim, hand_back, rescue_stuck, Claimed};

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

/// What one step of the loop did.
enum Step {
    /// Nothing to claim and nothing in flight: wait for a NOTIFY or the poll interval.
    Idle,
    /// Work was done; go on at once.
    Busy,
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
        let lease_ttl = Duration::from_secs(self.config.relay.lease_secs);
        let refresh_every = (lease_ttl / 3).max(Duration::from_secs(1));
        let mut leases = lease::Leases::new(&self.instance, lease_ttl, units.clone());
        // Every configured unit's queue is declared, so a change is routable before its applier
        // ever ran (a mandatory publish to no queue comes back).
        let mut topology = Topology::base(&self.config.amqp);
        for &unit in &units {
            topology.merge(Topology::unit(&self.config.amqp, unit));
        }
        let publisher = Publisher::new(self.link.clone(), self.config.amqp.clone(), topology);
        let mut pipeline = Pipeline::new(publisher, self.link.timeout());
        let poll = Duration::from_millis(self.config.relay.poll_interval_ms);
        let mut listener: Option<PgListener> = None;
        let mut errors = Backoff::default();
        let mut last_refresh: Option<Instant> = None;
        let mut orphans = false;
        tracing::info!(instance = %self.instance, "Relay started.");
        while !shutdown.is_cancelled() {
            if last_refresh.is_none_or(|t| t.elapsed() >= refresh_every) {
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
            if listener.is_none() {
                listener = listen(&self.pool).await;
            }
            match self.step(&mut pipeline, leases.held(), &mut orphans).await {
                Ok(Step::Busy) => errors.reset(),
                Ok(Step::Idle) => {
                    errors.reset();
                    wait_for_work(&mut listener, poll, &shutdown).await;
                }
                Err(e) => {
                    orphans = true;
                    self.pause(&shutdown, &mut errors, &format!("outbox query failed: {e}"))
                        .await;
                }
            }
        }
        self.stop(&mut pipeline, &mut leases).await;
    }

    /// Marks what settled, claims and publishes what fits, and waits a little for confirms.
    async fn step(
        &self,
        pipeline: &mut Pipeline,
        held: &[i32],
        orphans: &mut bool,
    ) -> Result<Step, sqlx::Error> {
        let cfg = &self.config.relay;
        if pipeline.flush_due() {
            pipeline
                .flush(&self.pool, &self.instance, cfg.max_attempts, &self.metrics)
                .await?;
        }
        // A failed step (database gone) may leave rows in `processing` under this instance,
        // where they would not block its next claim: once everything in flight is marked, hand
        // them back, so they go out again in order now instead of after the janitor's timeout.
        if *orphans && pipeline.is_idle() {
            let n = outbox::hand_back(&self.pool, None, &self.instance).await?;
            self.metrics.relay_handed_back(n, HandBack::FailedRound);
            *orphans = false;
        }
        let claimed = if *orphans || pipeline.must_flush_before_claim() {
            0
        } else {
            self.claim_and_publish(pipeline, held).await?
        };
        if claimed == 0 && pipeline.is_idle() {
            return Ok(Step::Idle);
        }
        pipeline.settle_some(&self.metrics).await;
        Ok(Step::Busy)
    }

    /// Claims as many rows as the pipeline has room for and publishes them. Returns the rows
    /// claimed.
    async fn claim_and_publish(
        &self,
        pipeline: &mut Pipeline,
        held: &[i32],
    ) -> Result<usize, sqlx::Error> {
        let cfg = &self.config.relay;
        let room = cfg.max_in_flight.saturating_sub(pipeline.in_flight());
        let batch = cfg.batch_size as usize;
        // Claim in batches, not in drips: a claim costs a round trip however few rows it takes.
        let worth = room >= batch.min(cfg.max_in_flight).div_ceil(2) || pipeline.in_flight() == 0;
        if held.is_empty()
            || !worth
            || pipeline.in_flight_bytes() >= cfg.max_in_flight_bytes
            || !self.link.is_connected().await
            || self.memory_pressed()
        {
            return Ok(0);
        }
        let limit = room.min(batch).max(1) as i64;
        let rows = outbox::claim(&self.pool, held, limit, &self.instance).await?;
        let claimed = rows.len();
        if claimed == 0 {
            return Ok(0);
        }
        let (rows, over) =
            pipeline::fit_budget(rows, pipeline.in_flight_bytes(), cfg.max_in_flight_bytes);
        pipeline::hand_back(
            &self.pool,
            &over,
            &self.instance,
            HandBack::OverBudget,
            &self.metrics,
        )
        .await?;
        let messages = rows
            .iter()
            .map(|row| envelope::outgoing(&self.config, row))
            .collect();
        let rest = pipeline
            .publish(rows, messages, self.link.timeout(), &self.metrics)
            .await;
        pipeline::hand_back(
            &self.pool,
            &rest,
            &self.instance,
            HandBack::AfterFailure,
            &self.metrics,
        )
        .await?;
        Ok(claimed)
    }

    async fn pause(&self, shutdown: &CancellationToken, backoff: &mut Backoff, why: &str) {
        let delay = backoff.next_delay();
        self.metrics.relay_step_failed(why, delay);
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(delay) => {}
        }
    }

    fn memory_pressed(&self) -> bool {
        let limit = self.config.relay.max_rss_mib * 1024 * 1024;
        let pressed = rss_bytes().is_some_and(|rss| rss > limit);
        self.metrics
            .relay_memory_guard(pressed, self.config.relay.max_rss_mib);
        pressed
    }

    /// Settles what is in flight within the drain budget, writes the marks, hands back the
    /// rest and releases the leases.
    async fn stop(&self, pipeline: &mut Pipeline, leases: &mut lease::Leases) {
        let cfg = &self.config.relay;
        let unconfirmed = pipeline.drain(DRAIN_CONFIRMS, &self.metrics).await;
        let marked = pipeline
            .flush(&self.pool, &self.instance, cfg.max_attempts, &self.metrics)
            .await;
        let handed = outbox::hand_back(&self.pool, None, &self.instance).await;
        let released = leases.release_all(&self.pool).await;
        match (marked, handed, released) {
            (Ok(()), Ok(n), Ok(())) => {
                self.metrics.relay_handed_back(n, HandBack::Stopping);
                tracing::info!(
                    instance = %self.instance,
                    handed_back = n,
                    unconfirmed = unconfirmed.len(),
                    "Relay stopped cleanly."
                )
            }
            (m, h, r) => tracing::error!(
                instance = %self.instance,
                mark = ?m.err(),
                hand_back = ?h.err(),
                release = ?r.err(),
                "Relay stop could not reach PostgreSQL; the janitor or a lease takeover will \
                 rescue its rows."
            ),
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
