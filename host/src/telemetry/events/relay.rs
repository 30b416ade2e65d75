//! Events of the outbox relay and its janitor.

use std::time::Duration;

use crate::amqp::PublishFailure;
use crate::relay::Claimed;
use crate::telemetry::Metrics;

/// Why claimed rows went back to pending without an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandBack {
    /// The relay is stopping.
    Stopping,
    /// Over the in-flight byte budget (memory guard).
    OverBudget,
    /// They follow a row whose publish failed in the same claim.
    AfterFailure,
    /// Left in `processing` by a step that failed (database gone mid-step).
    FailedRound,
}

impl HandBack {
    /// The log and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            HandBack::Stopping => "stopping",
            HandBack::OverBudget => "over_budget",
            HandBack::AfterFailure => "after_failure",
            HandBack::FailedRound => "failed_round",
        }
    }
}

impl Metrics {
    /// Confirmed rows marked sent.
    pub fn relay_sent(&self, rows: usize) {
        self.relay_rows
            .with_label_values(&["sent"])
            .inc_by(rows as u64);
    }

    /// A row refused by the whitelist or malformed: marked dead, never published.
    pub fn relay_refused(&self, row: &Claimed, reason: &str) {
        self.relay_rows.with_label_values(&["refused"]).inc();
        tracing::warn!(
            correlation_id = %row.correlation_id,
            outbox_id = row.id,
            unit = row.unit_id,
            table = %row.table_name,
            reason,
            "Outbox row refused; marked dead."
        );
    }

    /// A publish that was returned, nacked or not confirmed: the row stays pending with backoff.
    pub fn relay_publish_failed(
        &self,
        correlation_id: uuid::Uuid,
        outbox_id: i64,
        unit: i32,
        failure: &PublishFailure,
    ) {
        self.relay_rows.with_label_values(&["retry"]).inc();
        tracing::warn!(
            correlation_id = %correlation_id,
            outbox_id,
            unit,
            error = %failure,
            "Publish failed; row stays pending with backoff."
        );
    }

    /// Rows that reached `max_attempts` (or were refused) and are now dead.
    pub fn relay_dead(&self, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        self.outbox_dead.inc_by(ids.len() as u64);
        tracing::error!(
            outbox_ids = ?ids,
            "Outbox rows marked dead; inspect error_log and replay after fixing."
        );
    }

    /// Rows handed back to pending without an attempt.
    pub fn relay_handed_back(&self, rows: u64, why: HandBack) {
        if rows == 0 {
            return;
        }
        self.relay_rows
            .with_label_values(&["handed_back"])
            .inc_by(rows);
        tracing::info!(
            rows,
            why = why.as_str(),
            "Claimed rows handed back to pending."
        );
    }

    /// The janitor moved rows stuck in `processing` back to pending.
    pub fn relay_rescued(&self, rows: u64) {
        if rows == 0 {
            return;
        }
        self.relay_rows.with_label_values(&["rescued"]).inc_by(rows);
        tracing::warn!(
            rescued = rows,
            "Janitor handed rows stuck in processing back to pending."
        );
    }

    /// A relay step failed (database or lease query); the relay backs off.
    pub fn relay_step_failed(&self, why: &str, delay: Duration) {
        tracing::warn!(
            error = why,
            retry_in_ms = delay.as_millis() as u64,
            "Relay round failed; backing off."
        );
    }

    /// The memory guard's verdict for this claim.
    pub fn relay_memory_guard(&self, pressed: bool, limit_mib: u64) {
        self.memory_pressure.set(i64::from(pressed));
        if pressed {
            tracing::warn!(limit_mib, "Memory guard: claiming paused.");
        }
    }

    /// Messages and payload bytes awaiting a confirm.
    pub fn relay_in_flight(&self, messages: usize, bytes: usize) {
        self.relay_in_flight.set(messages as i64);
        self.relay_in_flight_bytes.set(bytes as i64);
    }

    /// A flush of marks: the oldest row in it was claimed `elapsed` ago.
    pub fn relay_batch_done(&self, elapsed: Duration) {
        self.relay_batch_seconds.observe(elapsed.as_secs_f64());
    }

    /// The janitor's backlog sample: every served unit appears, with 0 where it has no rows, so
    /// a drained unit reads 0 instead of vanishing.
    pub fn outbox_backlog_sampled(&self, served: &[i32], rows: &[(i32, String, i64)]) {
        self.outbox_backlog.reset();
        for unit in served {
            for status in ["pending", "processing", "dead"] {
                self.outbox_backlog
                    .with_label_values(&[&unit.to_string(), status])
                    .set(0);
            }
        }
        for (unit, status, n) in rows {
            self.outbox_backlog
                .with_label_values(&[&unit.to_string(), status])
                .set(*n);
        }
    }
}
