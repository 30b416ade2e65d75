//! Prometheus series of the transform platform. Label values come from bounded sets only: bound
//! tables (from the config), outcomes (fixed), and loaded transforms (files in the directory).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Call latency buckets, in seconds: a pooled call is ~10-100 us, the deadline is ~0.2 s.
const CALL_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5,
];

/// Load outcomes (`ponte_transform_loads_total{outcome}`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum LoadOutcome {
    /// A file was compiled, checked and now serves.
    Loaded,
    /// A file was refused (compile, imports, describe, self-check, routing); the previous
    /// version, if any, keeps serving.
    Refused,
    /// A served file disappeared from the directory.
    Removed,
}

impl LoadOutcome {
    fn label(self) -> &'static str {
        match self {
            LoadOutcome::Loaded => "loaded",
            LoadOutcome::Refused => "refused",
            LoadOutcome::Removed => "removed",
        }
    }
}

/// The registered series; cheap to clone (each is an `Arc` inside).
#[derive(Clone)]
pub(crate) struct Metrics {
    calls: IntCounterVec,
    seconds: HistogramVec,
    loads: IntCounterVec,
    loaded: IntGaugeVec,
}

/// Per-table handles resolved once per route, so a call does no label lookup on success.
#[derive(Clone)]
pub(crate) struct TableMetrics {
    metrics: Metrics,
    table: String,
    ok: IntCounter,
    seconds: Histogram,
}

impl Metrics {
    /// Creates the series and registers them into `registry`.
    pub(crate) fn register(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let calls = IntCounterVec::new(
            Opts::new(
                "ponte_transform_calls_total",
                "Transform calls by table and outcome",
            ),
            &["table", "outcome"],
        )?;
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "ponte_transform_call_seconds",
                "Transform call latency, validation included",
            )
            .buckets(CALL_BUCKETS.to_vec()),
            &["table"],
        )?;
        let loads = IntCounterVec::new(
            Opts::new(
                "ponte_transform_loads_total",
                "Transform files loaded, refused or removed",
            ),
            &["outcome"],
        )?;
        let loaded = IntGaugeVec::new(
            Opts::new(
                "ponte_transform_loaded",
                "1 per loaded transform version (name, sha256 prefix)",
            ),
            &["name", "sha256"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        registry.register(Box::new(loads.clone()))?;
        registry.register(Box::new(loaded.clone()))?;
        Ok(Metrics {
            calls,
            seconds,
            loads,
            loaded,
        })
    }

    /// Handles for one bound table.
    pub(crate) fn table(&self, table: &str) -> TableMetrics {
        TableMetrics {
            metrics: self.clone(),
            table: table.to_string(),
            ok: self.calls.with_label_values(&[table, "ok"]),
            seconds: self.seconds.with_label_values(&[table]),
        }
    }

    /// Counts one load event.
    pub(crate) fn load(&self, outcome: LoadOutcome) {
        self.loads.with_label_values(&[outcome.label()]).inc();
    }

    /// Marks a version as loaded (`true`) or gone (`false`).
    pub(crate) fn set_loaded(&self, name: &str, short_sha: &str, loaded: bool) {
        if loaded {
            self.loaded.with_label_values(&[name, short_sha]).set(1);
        } else {
            // Absent already is fine: the series simply does not exist.
            let _ = self.loaded.remove_label_values(&[name, short_sha]);
        }
    }
}

impl TableMetrics {
    /// Records one call: its outcome label and its duration.
    pub(crate) fn call(&self, outcome: &str, seconds: f64) {
        self.seconds.observe(seconds);
        if outcome == "ok" {
            self.ok.inc();
        } else {
            self.metrics
                .calls
                .with_label_values(&[self.table.as_str(), outcome])
                .inc();
        }
    }
}
