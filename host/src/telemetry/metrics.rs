//! The metric families, registered once per process into one registry (no globals: tests run
//! several hosts in one process). Label values come only from bounded sets: unit ids, whitelisted
//! table names, fixed outcome words.

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry,
};

/// Cheap to clone; all clones update the same families.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders; transforms register theirs here too.
    pub registry: Registry,
    /// Per-unit notes beyond counters (recent dead letters, held deliveries).
    pub board: super::Board,
    /// Outbox rows by outcome: sent, retry, dead, refused, rescued, handed_back.
    pub relay_rows: IntCounterVec,
    /// Seconds from claim to marked, per relay batch.
    pub relay_batch_seconds: Histogram,
    /// Payload bytes claimed and awaiting confirm.
    pub relay_in_flight_bytes: IntGauge,
    /// Messages published and awaiting their confirm.
    pub relay_in_flight: IntGauge,
    /// 1 while claiming is paused by the memory guard.
    pub memory_pressure: IntGauge,
    /// Resident memory of the process.
    pub memory_rss_bytes: IntGauge,
    /// Outbox rows by unit and status (pending, processing, dead), sampled.
    pub outbox_backlog: IntGaugeVec,
    /// Messages waiting in each unit's queue, sampled.
    pub queue_backlog: IntGaugeVec,
    /// 1 while the broker connection is up.
    pub amqp_connected: IntGaugeVec,
    /// Messages handled by unit appliers, by unit and outcome (applied, duplicate, stale,
    /// dead, refused).
    pub apply_messages: IntCounterVec,
    /// Seconds per Firebird apply transaction, by unit.
    pub apply_batch_seconds: HistogramVec,
    /// Seconds from outbox write to Firebird commit of the last applied change, by unit.
    pub apply_lag_seconds: HistogramVec,
    /// 1 while the unit's Firebird is reachable.
    pub unit_up: IntGaugeVec,
    /// Apply transactions retried after a transient error, by unit.
    pub apply_retries: IntCounterVec,
    /// Dead-lettered rows since start (relay).
    pub outbox_dead: IntCounter,
    // -- upstream (Firebird -> PostgreSQL), docs/upstream.md --
    /// SYNC_LOG rows consumed by a unit's capture publisher (published or superseded).
    pub upstream_captured: IntCounterVec,
    /// Upstream messages confirmed by the broker, by unit.
    pub upstream_published: IntCounterVec,
    /// Upstream changes handled by the PG applier, by outcome (applied, duplicate, pg_kept,
    /// parked, dead).
    pub upstream_applied: IntCounterVec,
    /// Conflicts detected, by Firebird table and policy.
    pub upstream_conflicts: IntCounterVec,
    /// Seconds from a unit's change to its PostgreSQL commit, per change, by origin unit.
    pub upstream_apply_lag_seconds: HistogramVec,
    /// Dead letters written, by flow, unit and class.
    pub dead_letters: IntCounterVec,
    /// Deliveries a consumer holds back (received, not settled), by flow and unit.
    pub consumer_held: IntGaugeVec,
    /// 1 while a consumer holds its whole prefetch (nothing more can arrive), by flow and unit.
    pub consumer_stalled: IntGaugeVec,
    /// 1 while the broker blocks the connection (memory or disk alarm), by connection.
    pub amqp_blocked: IntGaugeVec,
    /// Age of the oldest unpublished SYNC_LOG row, by unit (0 when the log is empty).
    pub upstream_lag_seconds: IntGaugeVec,
    /// Rows periodic capture logged (I/U as `changed`, D as `deleted`), by unit and table.
    pub upstream_periodic_rows: IntCounterVec,
    /// Unix time of a unit's last completed periodic capture round.
    pub upstream_periodic_round: IntGaugeVec,
}

impl Metrics {
    /// Registers every family into a fresh registry.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let gauge_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
                let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(g.clone()))?;
                Ok(g)
            };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let buckets = exponential_buckets(0.001, 2.0, 16)?;
        let relay_batch_seconds = Histogram::with_opts(
            HistogramOpts::new("ponte_relay_batch_seconds", "Relay batch: claim to marked")
                .buckets(buckets.clone()),
        )?;
        registry.register(Box::new(relay_batch_seconds.clone()))?;
        let apply_batch_seconds = HistogramVec::new(
            HistogramOpts::new("ponte_apply_batch_seconds", "Firebird apply transaction")
                .buckets(buckets),
            &["unit"],
        )?;
        registry.register(Box::new(apply_batch_seconds.clone()))?;
        // Lag from 1 ms to ~9 min: p50/p99 per unit come from these buckets.
        let lag_buckets = exponential_buckets(0.001, 2.0, 20)?;
        let apply_lag_seconds = HistogramVec::new(
            HistogramOpts::new(
                "ponte_apply_lag_seconds",
                "Outbox write to Firebird commit, per change",
            )
            .buckets(lag_buckets),
            &["unit"],
        )?;
        registry.register(Box::new(apply_lag_seconds.clone()))?;
        let upstream_apply_lag_seconds = HistogramVec::new(
            HistogramOpts::new(
                "ponte_upstream_apply_lag_seconds",
                "A unit's change to its PostgreSQL commit, per change",
            )
            .buckets(exponential_buckets(0.001, 2.0, 20)?),
            &["unit"],
        )?;
        registry.register(Box::new(upstream_apply_lag_seconds.clone()))?;
        let outbox_dead = IntCounter::new("ponte_outbox_dead_total", "Outbox rows marked dead")?;
        registry.register(Box::new(outbox_dead.clone()))?;
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, ...
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            relay_rows: counter_vec(
                "ponte_relay_rows_total",
                "Outbox rows by outcome",
                &["outcome"],
            )?,
            relay_batch_seconds,
            relay_in_flight: gauge(
                "ponte_relay_in_flight",
                "Messages published and awaiting their confirm",
            )?,
            relay_in_flight_bytes: gauge(
                "ponte_relay_in_flight_bytes",
                "Payload bytes awaiting confirm",
            )?,
            memory_pressure: gauge(
                "ponte_memory_pressure",
                "1 while the memory guard pauses claiming",
            )?,
            memory_rss_bytes: gauge("ponte_memory_rss_bytes", "Resident set size")?,
            outbox_backlog: gauge_vec(
                "ponte_outbox_backlog",
                "Outbox rows by unit and status",
                &["unit", "status"],
            )?,
            queue_backlog: gauge_vec(
                "ponte_queue_backlog",
                "Messages ready in a unit queue",
                &["unit"],
            )?,
            amqp_connected: gauge_vec(
                "ponte_amqp_connected",
                "1 while the connection (publish or consume) is up",
                &["connection"],
            )?,
            apply_messages: counter_vec(
                "ponte_apply_messages_total",
                "Messages by unit and outcome",
                &["unit", "outcome"],
            )?,
            apply_batch_seconds,
            apply_lag_seconds,
            unit_up: gauge_vec(
                "ponte_unit_up",
                "1 while the unit's Firebird is reachable",
                &["unit"],
            )?,
            apply_retries: counter_vec(
                "ponte_apply_retries_total",
                "Apply transactions retried",
                &["unit"],
            )?,
            outbox_dead,
            upstream_captured: counter_vec(
                "ponte_upstream_captured_total",
                "SYNC_LOG rows consumed",
                &["unit"],
            )?,
            upstream_published: counter_vec(
                "ponte_upstream_published_total",
                "Upstream messages confirmed",
                &["unit"],
            )?,
            upstream_applied: counter_vec(
                "ponte_upstream_applied_total",
                "Upstream changes by origin unit and outcome",
                &["unit", "outcome"],
            )?,
            upstream_conflicts: counter_vec(
                "ponte_upstream_conflicts_total",
                "Upstream conflicts",
                &["table", "policy"],
            )?,
            upstream_apply_lag_seconds,
            dead_letters: counter_vec(
                "ponte_dead_letters_total",
                "Dead letters written, by flow, unit and class",
                &["flow", "unit", "class"],
            )?,
            consumer_held: gauge_vec(
                "ponte_consumer_held",
                "Deliveries held back (received, not settled)",
                &["flow", "unit"],
            )?,
            consumer_stalled: gauge_vec(
                "ponte_consumer_stalled",
                "1 while a consumer holds its whole prefetch",
                &["flow", "unit"],
            )?,
            amqp_blocked: gauge_vec(
                "ponte_amqp_blocked",
                "1 while the broker blocks the connection (alarm)",
                &["connection"],
            )?,
            upstream_lag_seconds: gauge_vec(
                "ponte_upstream_lag_seconds",
                "Oldest unpublished SYNC_LOG row",
                &["unit"],
            )?,
            upstream_periodic_rows: counter_vec(
                "ponte_upstream_periodic_rows_total",
                "Rows periodic capture logged at a unit, by table and kind",
                &["unit", "table", "kind"],
            )?,
            upstream_periodic_round: gauge_vec(
                "ponte_upstream_periodic_round_timestamp_seconds",
                "Unix time of the unit's last completed periodic capture round",
                &["unit"],
            )?,
            registry,
            board: super::Board::default(),
        })
    }

    /// Renders the text exposition format.
    pub fn render(&self) -> String {
        self.memory_rss_bytes.set(rss_bytes().unwrap_or(0) as i64);
        let mut out = String::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode_utf8(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "Metrics could not be encoded.");
        }
        out
    }
}

/// Resident set size (`VmRSS` of /proc/self/status, Linux; None elsewhere): in kB there, so
/// right whatever the page size. The exported process metrics come from prometheus'
/// process collector (`process_resident_memory_bytes`, `process_cpu_seconds_total`, ...).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_are_exported() {
        let metrics = Metrics::new().unwrap_or_else(|e| panic!("metrics: {e}"));
        let text = metrics.render();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "ponte_memory_rss_bytes",
        ] {
            assert!(text.contains(name), "/metrics lacks {name}");
        }
        let rss = rss_bytes().unwrap_or(0);
        assert!(
            rss > 1024 * 1024,
            "a running test has more than 1 MiB resident: {rss}"
        );
    }
}
