//! The observable events of `load`, `verify` and `repair`, each in one place: the log line and the
//! metric together. Label values: unit ids, configured table names, fixed kind words. The CLI
//! commands register these on a registry of their own; the `[verify] every` schedule in `run`
//! registers them on the host's, so `/metrics` carries the last verify of every unit and table.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::lifecycle::TableVerify;

/// The lifecycle metric families.
#[derive(Clone)]
pub struct LifecycleMetrics {
    /// Rows written to the outbox by load chunks and repairs, by unit, table and kind.
    pub rows_queued: IntCounterVec,
    /// The last verify, by unit, table and kind (expected, found, missing, extra, differing,
    /// unsettled).
    pub verify_rows: IntGaugeVec,
    /// 1 when the last verify of the unit and table found no difference.
    pub verify_clean: IntGaugeVec,
    /// Unix time of the last verify, by unit and table.
    pub verify_time: IntGaugeVec,
    /// Extra unit rows deleted, by unit and table.
    pub extras_deleted: IntCounterVec,
}

impl LifecycleMetrics {
    /// Registers the families on `registry`.
    pub fn register(registry: &Registry) -> Result<LifecycleMetrics, prometheus::Error> {
        let m = LifecycleMetrics {
            rows_queued: IntCounterVec::new(
                Opts::new(
                    "ponte_lifecycle_rows_queued_total",
                    "Rows queued by load and repair",
                ),
                &["unit", "table", "kind"],
            )?,
            verify_rows: IntGaugeVec::new(
                Opts::new("ponte_verify_rows", "Rows per kind at the last verify"),
                &["unit", "table", "kind"],
            )?,
            verify_clean: IntGaugeVec::new(
                Opts::new(
                    "ponte_verify_clean",
                    "1 when the last verify found no difference",
                ),
                &["unit", "table"],
            )?,
            verify_time: IntGaugeVec::new(
                Opts::new("ponte_verify_timestamp_seconds", "When the last verify ran"),
                &["unit", "table"],
            )?,
            extras_deleted: IntCounterVec::new(
                Opts::new(
                    "ponte_verify_extras_deleted_total",
                    "Extra unit rows deleted",
                ),
                &["unit", "table"],
            )?,
        };
        registry.register(Box::new(m.rows_queued.clone()))?;
        registry.register(Box::new(m.verify_rows.clone()))?;
        registry.register(Box::new(m.verify_clean.clone()))?;
        registry.register(Box::new(m.verify_time.clone()))?;
        registry.register(Box::new(m.extras_deleted.clone()))?;
        Ok(m)
    }

    /// On a registry nobody reads (one-shot commands).
    pub fn detached() -> Result<LifecycleMetrics, prometheus::Error> {
        LifecycleMetrics::register(&Registry::new())
    }

    /// A load chunk committed to the outbox.
    pub fn load_chunk(&self, unit: i32, table: &str, run: i64, rows: u64) {
        tracing::debug!(unit, table, run, rows, "Load chunk queued.");
        self.rows_queued
            .with_label_values(&[&unit.to_string(), table, "load"])
            .inc_by(rows);
    }

    /// A repair re-sent rows.
    pub fn repaired(&self, unit: i32, table: &str, rows: u64) {
        tracing::info!(
            unit,
            table,
            rows,
            "Repair re-sent rows through the pipeline."
        );
        self.rows_queued
            .with_label_values(&[&unit.to_string(), table, "repair"])
            .inc_by(rows);
    }

    /// Extra rows were deleted at a unit.
    pub fn extras_deleted(&self, unit: i32, table: &str, rows: u64) {
        tracing::info!(
            unit,
            table,
            rows,
            "Extra unit rows deleted (--delete-extra)."
        );
        self.extras_deleted
            .with_label_values(&[&unit.to_string(), table])
            .inc_by(rows);
    }

    /// A table of a unit was verified.
    pub fn verified(&self, unit: i32, r: &TableVerify) {
        let label = unit.to_string();
        if let Some(error) = &r.error {
            tracing::warn!(unit, table = %r.table, %error, "Verify could not check the table.");
        } else if r.is_clean() {
            let (rows, seconds) = (r.expected, r.seconds);
            tracing::info!(unit, table = %r.table, rows, seconds, "Verify: the unit matches.");
        } else {
            tracing::warn!(unit, table = %r.table, missing = r.missing, extra = r.extra,
                differing = r.differing, first = ?r.samples.first(), "Verify: the unit differs.");
        }
        for (kind, n) in [
            ("expected", r.expected),
            ("found", r.found),
            ("missing", r.missing),
            ("extra", r.extra),
            ("differing", r.differing),
            ("unsettled", r.unsettled),
        ] {
            self.verify_rows
                .with_label_values(&[&label, &r.table, kind])
                .set(n as i64);
        }
        self.verify_clean
            .with_label_values(&[&label, &r.table])
            .set(i64::from(r.is_clean()));
        self.verify_time
            .with_label_values(&[&label, &r.table])
            .set(chrono::Utc::now().timestamp());
    }
}
