//! [`PgApplier`]: the PostgreSQL applier of one origin unit, on the consumer skeleton. Each
//! delivery is translated (blocking thread) and applied in order, a batch of changes per PG
//! transaction, each change in a savepoint with its own inbox entry, conflict policy, statements
//! and fan-out (`batch.rs`), and acked after the commit. A change that can
//! never apply is dead-lettered with its reason; a transient failure holds it (and the unit's
//! later changes) for the skeleton's backoff; a foreign-key failure waits a bounded time for its
//! parent; a table with no transform loaded waits, and the queue waits with it.

mod batch;
mod prune;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::message::Delivery;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use super::apply::{apply_in, Outcome, Target};
use super::prepare::{key_types, prepare, Verdict};
use super::UpstreamError;
use crate::amqp::{
    BatchHandler, Consumer, ConsumerSpec, DeadClass, Disposition, Hold, Links, Pending, Topology,
};
use crate::config::{Config, OutboxCapture, UpstreamTable};
use crate::model::{Output, UpstreamEnvelope};
use crate::periodic::EchoSpec;
use crate::telemetry::{ChangeOutcome, Flow, Metrics};
use crate::transform::TransformRegistry;
use batch::{behind, Batch};
use prune::prune;

/// A change waiting for a transform is translated again at least this often.
const RETRANSLATE_EVERY: Duration = Duration::from_secs(5);

/// The PostgreSQL applier of upstream changes of one origin unit.
pub struct PgApplier {
    unit: i32,
    config: Arc<Config>,
    links: Links,
    registry: TransformRegistry,
    pool: PgPool,
    metrics: Metrics,
}

impl PgApplier {
    /// The applier of `unit`'s upstream changes, on `pool`.
    pub fn new(
        unit: i32,
        config: Arc<Config>,
        links: Links,
        registry: TransformRegistry,
        pool: PgPool,
        metrics: Metrics,
    ) -> Self {
        // Every table's conflict counter exists from the start (at 0), so `increase()` in an
        // alert or a dashboard sees the first conflict instead of a series appearing from nowhere.
        for (table, t) in &config.upstream.tables {
            metrics
                .upstream_conflicts
                .with_label_values(&[table.as_str(), t.conflict.as_str()]);
        }
        PgApplier {
            unit,
            config,
            links,
            registry,
            pool,
            metrics,
        }
    }

    /// Consumes until `shutdown`; prunes the inbox by age meanwhile.
    pub async fn run(self, shutdown: CancellationToken) {
        let amqp = &self.config.amqp;
        let spec = ConsumerSpec {
            unit: self.unit,
            flow: Flow::Upstream,
            queue: amqp.upstream_queue(self.unit),
            topology: Topology::upstream(amqp, self.unit),
            prefetch: self.config.upstream.prefetch,
            batch_size: usize::from(self.config.upstream.prefetch),
            batch_wait: Duration::from_millis(20),
        };
        let pruning = tokio::spawn(prune(
            self.pool.clone(),
            self.config.clone(),
            shutdown.clone(),
        ));
        let handler = PgHandler {
            unit: self.unit,
            config: self.config.clone(),
            registry: self.registry.clone(),
            pool: self.pool.clone(),
            metrics: self.metrics.clone(),
            key_types: HashMap::new(),
            echo: HashMap::new(),
        };
        Consumer::new(
            spec,
            amqp.clone(),
            self.links.clone(),
            self.metrics.clone(),
            handler,
        )
        .run(shutdown)
        .await;
        let _ = pruning.await;
    }
}

/// One upstream delivery as the applier sees it.
pub struct UpItem {
    verdict: Verdict,
    table: String,
    correlation_id: String,
    generation: u64,
    made_at: Instant,
    fk_since: Option<Instant>,
}

struct PgHandler {
    unit: i32,
    config: Arc<Config>,
    registry: TransformRegistry,
    pool: PgPool,
    metrics: Metrics,
    key_types: HashMap<String, Vec<String>>,
    /// Per upstream table whose downstream table is periodic: how its writes are recorded.
    echo: HashMap<String, Option<EchoSpec>>,
}

impl PgHandler {
    async fn translate(&self, bodies: Vec<Vec<u8>>) -> Vec<Verdict> {
        let (config, registry) = (self.config.clone(), self.registry.clone());
        let count = bodies.len();
        let done = tokio::task::spawn_blocking(move || {
            bodies
                .iter()
                .map(|b| prepare(b, &config, &registry))
                .collect::<Vec<_>>()
        })
        .await;
        match done {
            Ok(verdicts) => verdicts,
            Err(e) => (0..count)
                .map(|_| Verdict::Wait(format!("transform task failed: {e}")))
                .collect(),
        }
    }

    fn item(&self, verdict: Verdict, body: &[u8]) -> UpItem {
        let (table, correlation_id) = match &verdict {
            Verdict::Ready(ready) => (ready.0.table.clone(), ready.0.correlation_id.clone()),
            _ => identity_of(body),
        };
        UpItem {
            verdict,
            table,
            correlation_id,
            generation: self.registry.generation(),
            made_at: Instant::now(),
            fk_since: None,
        }
    }

    async fn apply(
        &mut self,
        conn: &mut PgConnection,
        env: &UpstreamEnvelope,
        output: &Output,
    ) -> Result<Outcome, UpstreamError> {
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
        if !self.echo.contains_key(&env.table) {
            // Not knowing the spec costs an echo (the same image sent back), never a change.
            match self.echo_spec(table).await {
                Ok(spec) => {
                    self.echo.insert(env.table.clone(), spec);
                }
                Err(e) => tracing::warn!(
                    table = %table.downstream(),
                    error = %format!("{e:#}"),
                    "Periodic table not resolved; this change's row is not recorded."
                ),
            }
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
            periodic: self.echo.get(&env.table).and_then(Option::as_ref),
        };
        apply_in(conn, &target, env, output).await
    }

    /// The echo spec of `table` when its downstream table is periodic: that one table's key
    /// and routing from the catalog (not every periodic table's full check).
    async fn echo_spec(&self, table: &UpstreamTable) -> anyhow::Result<Option<EchoSpec>> {
        let downstream = table.downstream();
        let periodic = self
            .config
            .tables
            .get(downstream)
            .is_some_and(|t| t.outbox == OutboxCapture::Periodic);
        if !periodic {
            return Ok(None);
        }
        let names = [downstream.to_string()];
        let found = crate::lifecycle::catalog::resolve(&self.pool, &self.config, &names).await?;
        let spec = found.first().and_then(|t| EchoSpec::new(t, &table.key));
        if spec.is_none() {
            tracing::warn!(
                table = %downstream,
                "Upstream writes to this periodic table are not recorded (the upstream key is not \
                 its primary key): the next round sends them to every unit again."
            );
        }
        Ok(spec)
    }

    fn record(&self, env: &UpstreamEnvelope, output: &Output, outcome: Outcome) {
        let done = match outcome {
            Outcome::Applied => ChangeOutcome::Applied,
            Outcome::Duplicate => ChangeOutcome::Duplicate,
            Outcome::PgKept => ChangeOutcome::PgKept,
            Outcome::UnitWon => ChangeOutcome::UnitWon,
            Outcome::Parked => ChangeOutcome::Parked,
            Outcome::Stale => ChangeOutcome::Stale,
        };
        if outcome.is_conflict() {
            if let Some(t) = self.config.upstream.tables.get(&env.table) {
                self.metrics
                    .upstream_conflicts
                    .with_label_values(&[&env.table, t.conflict.as_str()])
                    .inc();
                tracing::warn!(
                    correlation_id = %env.correlation_id,
                    unit = env.unit,
                    table = %env.table,
                    row_key = %output.row_key,
                    policy = t.conflict.as_str(),
                    outcome = outcome.as_str(),
                    "Conflict detected: the unit changed a row PostgreSQL had changed since."
                );
            }
        }
        let lag = change_age(env);
        let (id, table) = (&env.correlation_id, &env.table);
        self.metrics
            .change_done(Flow::Upstream, self.unit, table, id, done, lag);
    }
}

impl BatchHandler for PgHandler {
    type Item = UpItem;

    async fn prepare(&mut self, deliveries: &[Delivery]) -> Vec<UpItem> {
        let bodies: Vec<Vec<u8>> = deliveries.iter().map(|d| d.data.clone()).collect();
        let verdicts = self.translate(bodies.clone()).await;
        verdicts
            .into_iter()
            .zip(&bodies)
            .map(|(v, body)| self.item(v, body))
            .collect()
    }

    async fn handle(
        &mut self,
        pending: &mut [Pending<UpItem>],
        shutdown: &CancellationToken,
    ) -> Vec<Disposition> {
        let generation = self.registry.generation();
        let mut out = Vec::with_capacity(pending.len());
        let mut batch = Batch::default();
        let mut blocked: Option<Hold> = None;
        for (i, p) in pending.iter_mut().enumerate() {
            if let Some(head) = &blocked {
                out.push(Disposition::Hold(head.clone()));
                continue;
            }
            let waiting = matches!(p.item.verdict, Verdict::Wait(_));
            if waiting
                && (p.item.generation != generation
                    || p.item.made_at.elapsed() >= RETRANSLATE_EVERY)
            {
                let verdict = self.translate(vec![p.delivery.data.clone()]).await;
                if let Some(v) = verdict.into_iter().next() {
                    p.item = self.item(v, &p.delivery.data);
                }
            }
            let disposition = match &p.item.verdict {
                Verdict::Dead(class, reason) => Disposition::Dead {
                    class: *class,
                    reason: reason.clone(),
                },
                Verdict::Wait(why) => Disposition::Hold(Hold::Transform(why.clone())),
                Verdict::Ready(_) => match self.apply_in_batch(&mut batch, i, p, shutdown).await {
                    Some(d) => d,
                    None => Disposition::Hold(Hold::Stopping),
                },
            };
            if let Disposition::Hold(hold) = &disposition {
                // The origin unit's later changes wait behind this one.
                blocked = Some(behind(hold, &p.item.correlation_id));
            }
            out.push(disposition);
        }
        self.commit(batch, pending, &mut out, shutdown).await;
        out
    }

    fn identity(item: &UpItem) -> (&str, &str) {
        (&item.table, &item.correlation_id)
    }

    fn wake(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.registry.subscribe())
    }
}

impl PgHandler {
    fn failed(&self, item: &mut UpItem, e: UpstreamError) -> Disposition {
        let limit = Duration::from_secs(self.config.upstream.fk_retry_secs);
        if e.is_foreign_key() {
            let since = *item.fk_since.get_or_insert_with(Instant::now);
            if since.elapsed() < limit {
                return Disposition::Hold(Hold::Parent(e.to_string()));
            }
            return Disposition::Dead {
                class: DeadClass::Postgres,
                reason: format!("foreign key still failing after {}s: {e}", limit.as_secs()),
            };
        }
        if e.is_retriable() {
            self.metrics
                .apply_retry(Flow::Upstream, self.unit, 1, &e.to_string());
            return Disposition::Hold(Hold::Retry(e.to_string()));
        }
        Disposition::Dead {
            class: DeadClass::Postgres,
            reason: e.to_string(),
        }
    }
}

/// `(table, correlation id)` of a body that did not translate, for log lines.
fn identity_of(body: &[u8]) -> (String, String) {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |k: &str| {
        json.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    (text("table"), text("correlation_id"))
}

/// How long ago the unit changed the row (by the unit's clock at capture), when known.
fn change_age(env: &UpstreamEnvelope) -> Option<Duration> {
    let at = chrono::DateTime::parse_from_rfc3339(env.changed_at_utc.as_deref()?).ok()?;
    (chrono::Utc::now() - at.to_utc()).to_std().ok()
}
