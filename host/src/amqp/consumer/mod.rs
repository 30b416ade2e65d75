//! The one consumer skeleton of every role that applies changes from a queue (the unit appliers,
//! the PostgreSQL appliers): a supervised channel on the consume connection with the topology
//! declared and a prefetch, a batch cut (size and wait), and the settlement of every delivery
//! with one [`Disposition`]: acked, dead-lettered (with its reason, then acked), or held in its
//! place (waiting for a transform or a parent, retried after a transient failure, or left for the
//! broker to redeliver when the host stops). Reconnects with backoff; a delivery is acked only
//! after the role says its effect is durable.
//!
//! The role implements [`BatchHandler`]: `prepare` decodes fresh deliveries (the transforms run
//! there), `handle` gets every unsettled delivery oldest first and returns one disposition each.
//! Order is the role's rule to keep: it sees held deliveries before later ones, every time.

mod settle;

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::Channel;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::deadletter::{DeadClass, DeadLetterWriter};
use super::link::{with_timeout, AmqpError, Links};
use super::topology::Topology;
use crate::backoff::Backoff;
use crate::config::AmqpConfig;
use crate::telemetry::{Flow, Metrics};

/// Why a delivery stays unacked, in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// No transform serves its table yet, or it is behind one that waits for one: offered again
    /// when the transforms change and every few seconds.
    Transform(String),
    /// Its parent row may still be in flight (a foreign key failed): offered again with the
    /// next batch, for a bounded time the role keeps.
    Parent(String),
    /// A transient failure (lock conflict, a database or broker blip): offered again after a
    /// backoff (200 ms .. 60 s).
    Retry(String),
    /// The host is stopping: left unacked; the broker redelivers it when the channel closes.
    Stopping,
}

impl Hold {
    /// The sentence shown in the board, the log and `ponte status`.
    pub fn reason(&self) -> String {
        match self {
            Hold::Transform(why) => format!("waits for a transform: {why}"),
            Hold::Parent(why) => format!("waits for its parent row: {why}"),
            Hold::Retry(why) => format!("retrying after: {why}"),
            Hold::Stopping => "stopping".into(),
        }
    }
}

/// What becomes of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Its effect is durable (applied, or a duplicate, or stale): ack it.
    Ack,
    /// It can never apply as it is: dead-letter it with the reason, then ack it.
    Dead {
        /// Error class.
        class: DeadClass,
        /// A sentence an operator can act on (names the table, the column, the value).
        reason: String,
    },
    /// Keep it unacked, in its place.
    Hold(Hold),
}

/// A delivery not settled yet and the role's decoded form of it.
pub struct Pending<T> {
    /// The delivery (acked by the skeleton).
    pub delivery: Delivery,
    /// What the role made of it.
    pub item: T,
    /// Since when it is held (None: fresh).
    pub held_since: Option<Instant>,
}

/// A role's side of the skeleton.
pub trait BatchHandler: Send {
    /// The decoded form of a delivery.
    type Item: Send;

    /// Decodes fresh deliveries, one item each, in order (runs the transforms).
    fn prepare(&mut self, deliveries: &[Delivery]) -> impl Future<Output = Vec<Self::Item>> + Send;

    /// Handles every unsettled delivery, oldest first; returns one disposition each, in order.
    /// When `shutdown` fires it must give up quickly (cancel and roll back) and hold the rest.
    fn handle(
        &mut self,
        pending: &mut [Pending<Self::Item>],
        shutdown: &CancellationToken,
    ) -> impl Future<Output = Vec<Disposition>> + Send;

    /// `(table, correlation id)` of an item ("" when the body did not decode).
    fn identity(item: &Self::Item) -> (&str, &str);

    /// A signal that held deliveries may be ready now (the transforms changed).
    fn wake(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// Where and how a consumer reads.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// The unit (downstream: target; upstream: origin).
    pub unit: i32,
    /// Direction, for telemetry.
    pub flow: Flow,
    /// The queue.
    pub queue: String,
    /// What to declare before consuming.
    pub topology: Topology,
    /// Unacked deliveries the broker may send.
    pub prefetch: u16,
    /// Fresh deliveries per batch at most.
    pub batch_size: usize,
    /// How long a batch waits to fill after its first delivery.
    pub batch_wait: Duration,
}

/// How often held deliveries are offered again without a signal.
const REOFFER_EVERY: Duration = Duration::from_secs(1);
/// How often a unit's consumer samples its queue's depth (`ponte_queue_backlog`).
const DEPTH_EVERY: Duration = Duration::from_secs(5);

/// A consumer: a spec, a handler and the links.
pub struct Consumer<H: BatchHandler> {
    spec: ConsumerSpec,
    config: AmqpConfig,
    links: Links,
    metrics: Metrics,
    handler: H,
    dead: DeadLetterWriter,
}

impl<H: BatchHandler> Consumer<H> {
    /// A consumer of `spec.queue` on `links.consume`, dead-lettering on `links.publish`.
    pub fn new(
        spec: ConsumerSpec,
        config: AmqpConfig,
        links: Links,
        metrics: Metrics,
        handler: H,
    ) -> Self {
        let dead = DeadLetterWriter::new(links.publish.clone(), &config);
        Consumer {
            spec,
            config,
            links,
            metrics,
            handler,
            dead,
        }
    }

    /// Consumes until `shutdown`; reopens the channel with backoff after a broker failure.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let (channel, stream) = match self.open().await {
                Ok(pair) => pair,
                Err(e) => {
                    let delay = backoff.next_delay();
                    self.metrics.consumer_down(
                        self.spec.flow,
                        self.spec.unit,
                        &e.to_string(),
                        delay,
                    );
                    sleep_or_stop(delay, &shutdown).await;
                    continue;
                }
            };
            backoff.reset();
            self.metrics
                .consumer_up(self.spec.flow, self.spec.unit, &self.spec.queue);
            let ended = self.consume(&channel, stream, &shutdown).await;
            // Closing the channel returns every unacked delivery to the queue, in order.
            let close = channel.close(200, "ponte consumer stopping".into());
            let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
            self.metrics
                .held_state(self.spec.flow, self.spec.unit, 0, self.spec.prefetch, None);
            if let Err(e) = ended {
                let delay = backoff.next_delay();
                self.metrics
                    .consumer_down(self.spec.flow, self.spec.unit, &e.to_string(), delay);
                sleep_or_stop(delay, &shutdown).await;
            }
        }
        self.metrics
            .consumer_stopped(self.spec.flow, self.spec.unit);
    }

    async fn open(&self) -> Result<(Channel, lapin::Consumer), AmqpError> {
        let t = self.config.timeout();
        let channel = self.links.consume.channel(t).await?;
        let qos = channel.basic_qos(self.spec.prefetch, BasicQosOptions::default());
        with_timeout(t, "basic.qos", qos).await?;
        self.spec.topology.declare(&channel, &self.config).await?;
        let tag = format!(
            "ponte-{}-{}-{}",
            self.spec.flow.as_str(),
            self.spec.unit,
            std::process::id()
        );
        let consume = channel.basic_consume(
            self.spec.queue.as_str().into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        );
        let stream = with_timeout(t, "basic.consume", consume).await?;
        Ok((channel, stream))
    }

    /// Sets `ponte_queue_backlog` for the unit: the messages ready in its queue (a passive
    /// declare; a failure only skips the sample, the consume loop notices a broken channel).
    async fn sample_depth(&self, channel: &Channel) {
        let options = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let declare = channel.queue_declare(
            self.spec.queue.as_str().into(),
            options,
            FieldTable::default(),
        );
        match with_timeout(self.config.timeout(), "queue.declare", declare).await {
            Ok(queue) => self
                .metrics
                .queue_backlog
                .with_label_values(&[&self.spec.unit.to_string()])
                .set(i64::from(queue.message_count())),
            Err(e) => {
                tracing::debug!(unit = self.spec.unit, error = %e, "Queue depth not sampled.")
            }
        }
    }

    /// Batches deliveries and settles them until shutdown (Ok) or a broker failure (Err).
    async fn consume(
        &mut self,
        channel: &Channel,
        mut stream: lapin::Consumer,
        shutdown: &CancellationToken,
    ) -> Result<(), AmqpError> {
        let mut pending: Vec<Pending<H::Item>> = Vec::new();
        let mut wake = self.handler.wake();
        let mut retry = Backoff::new(Duration::from_millis(200), Duration::from_secs(60));
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut depth_at: Option<Instant> = None;
        loop {
            if self.spec.flow == Flow::Downstream
                && depth_at.is_none_or(|t| t.elapsed() >= DEPTH_EVERY)
            {
                depth_at = Some(Instant::now());
                self.sample_depth(channel).await;
            }
            let retry_sleep = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let first = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = stream.next() => Some(received(next)?),
                _ = changed(&mut wake) => None,
                _ = retry_sleep => {
                    retry_at = None;
                    None
                }
                _ = tokio::time::sleep(REOFFER_EVERY) => {
                    if !channel.status().connected() {
                        return Err(AmqpError::Timeout("channel no longer connected"));
                    }
                    None
                }
            };
            let mut fresh: Vec<Delivery> = first.into_iter().collect();
            let deadline = tokio::time::Instant::now() + self.spec.batch_wait;
            while !fresh.is_empty() && fresh.len() < self.spec.batch_size {
                match tokio::time::timeout_at(deadline, stream.next()).await {
                    Ok(next) => fresh.push(received(next)?),
                    Err(_) => break,
                }
            }
            if !fresh.is_empty() {
                let items = self.handler.prepare(&fresh).await;
                let mut items = items.into_iter();
                for delivery in fresh {
                    match items.next() {
                        Some(item) => pending.push(Pending {
                            delivery,
                            item,
                            held_since: None,
                        }),
                        // A handler bug: hold nothing unknown; the broker redelivers it.
                        None => return Err(AmqpError::Timeout("prepare returned too few items")),
                    }
                }
            }
            if pending.is_empty() || retry_at.is_some() {
                continue;
            }
            let dispositions = self.handler.handle(&mut pending, shutdown).await;
            let outcome = self.settle(&mut pending, dispositions).await?;
            if outcome.retry {
                retry_at = Some(tokio::time::Instant::now() + retry.next_delay());
            } else if outcome.progressed {
                retry.reset();
            }
            let head = outcome.head_hold.as_ref().map(Hold::reason);
            let since = pending.first().and_then(|p| p.held_since);
            self.metrics.held_state(
                self.spec.flow,
                self.spec.unit,
                pending.len(),
                self.spec.prefetch,
                head.map(|reason| (reason, since)),
            );
            if shutdown.is_cancelled() {
                return Ok(());
            }
        }
    }
}

fn received(next: Option<lapin::Result<Delivery>>) -> Result<Delivery, AmqpError> {
    match next {
        Some(Ok(d)) => Ok(d),
        Some(Err(source)) => Err(AmqpError::Lapin {
            op: "consume",
            source,
        }),
        None => Err(AmqpError::Timeout("consumer stream ended")),
    }
}

/// Resolves when the watched value changes; never when there is nothing to watch (or its sender
/// is gone).
async fn changed(wake: &mut Option<watch::Receiver<u64>>) {
    match wake {
        Some(rx) => {
            if rx.changed().await.is_err() {
                *wake = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Sleeps `delay` unless stopped first; true when stopped.
pub async fn sleep_or_stop(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}
