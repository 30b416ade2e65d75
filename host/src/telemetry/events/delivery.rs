//! Events of the apply path (both flows): changes done, dead letters, retries, held deliveries,
//! consumers going up and down.

use std::time::{Duration, Instant};

use chrono::Utc;

use crate::telemetry::board::{DeadLetterNote, Flow, HeldState};
use crate::telemetry::Metrics;

/// What became of a change that reached its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// Its statements ran.
    Applied,
    /// Already applied (ledger / inbox): nothing done.
    Duplicate,
    /// Older than what the row already has: skipped (recorded).
    Stale,
    /// Upstream conflict: PostgreSQL's state kept.
    PgKept,
    /// Upstream conflict: the unit's change won.
    UnitWon,
    /// Upstream conflict parked for an operator.
    Parked,
}

impl ChangeOutcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOutcome::Applied => "applied",
            ChangeOutcome::Duplicate => "duplicate",
            ChangeOutcome::Stale => "stale",
            ChangeOutcome::PgKept => "pg_kept",
            ChangeOutcome::UnitWon => "unit_won",
            ChangeOutcome::Parked => "parked",
        }
    }
}

impl Flow {
    /// `downstream` or `upstream`.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Downstream => "downstream",
            Flow::Upstream => "upstream",
        }
    }
}

impl Metrics {
    /// A change was applied, skipped as a duplicate or as stale, or decided by a conflict policy.
    pub fn change_done(
        &self,
        flow: Flow,
        unit: i32,
        table: &str,
        correlation_id: &str,
        outcome: ChangeOutcome,
        lag: Option<Duration>,
    ) {
        let label = unit.to_string();
        match flow {
            Flow::Downstream => {
                self.apply_messages
                    .with_label_values(&[&label, outcome.as_str()])
                    .inc();
                if let Some(lag) = lag {
                    self.apply_lag_seconds
                        .with_label_values(&[&label])
                        .observe(lag.as_secs_f64());
                }
            }
            Flow::Upstream => {
                self.upstream_applied
                    .with_label_values(&[&label, outcome.as_str()])
                    .inc();
                if let Some(lag) = lag {
                    self.upstream_apply_lag_seconds
                        .with_label_values(&[&label])
                        .observe(lag.as_secs_f64());
                }
            }
        }
        tracing::debug!(
            correlation_id,
            unit,
            table,
            flow = flow.as_str(),
            outcome = outcome.as_str(),
            "Change handled."
        );
    }

    /// A change was set aside in the dead-letter queue (its reason is in the message headers).
    pub fn dead_lettered(
        &self,
        flow: Flow,
        unit: i32,
        table: &str,
        correlation_id: &str,
        class: &str,
        reason: &str,
    ) {
        let label = unit.to_string();
        match flow {
            Flow::Downstream => &self.apply_messages,
            Flow::Upstream => &self.upstream_applied,
        }
        .with_label_values(&[&label, "dead"])
        .inc();
        self.dead_letters
            .with_label_values(&[flow.as_str(), &label, class])
            .inc();
        self.board.note_dead_letter(DeadLetterNote {
            at: Utc::now(),
            unit,
            flow,
            table: table.to_string(),
            correlation_id: correlation_id.to_string(),
            class: class.to_string(),
            reason: reason.to_string(),
        });
        tracing::error!(
            correlation_id,
            unit,
            table,
            flow = flow.as_str(),
            class,
            reason,
            "Change dead-lettered; inspect with `ponte dlq list`, replay with `ponte dlq replay`."
        );
    }

    /// A transaction that applied changes failed transiently; the consumer retries it after
    /// its backoff.
    pub fn apply_retry(&self, flow: Flow, unit: i32, changes: usize, error: &str) {
        if flow == Flow::Downstream {
            let label = unit.to_string();
            self.apply_retries.with_label_values(&[&label]).inc();
        }
        tracing::warn!(
            unit,
            flow = flow.as_str(),
            changes,
            error,
            "Apply failed and was rolled back; retrying after a backoff."
        );
    }

    /// What a consumer holds back now (deliveries received, not settled) and why the oldest
    /// waits. Logs when a unit starts or stops holding, and when it holds its whole prefetch.
    pub fn held_state(
        &self,
        flow: Flow,
        unit: i32,
        held: usize,
        prefetch: u16,
        head: Option<(String, Option<Instant>)>,
    ) {
        let before = self.board.held(unit, flow);
        let (reason, since) = match (&head, held) {
            (_, 0) | (None, _) => (String::new(), None),
            (Some((reason, since)), _) => {
                let age = since.map(|s| s.elapsed()).unwrap_or_default();
                let since = chrono::Duration::from_std(age).ok().map(|a| Utc::now() - a);
                (reason.clone(), since)
            }
        };
        let now = HeldState {
            held,
            prefetch: usize::from(prefetch),
            reason,
            since: since.or(before.since.filter(|_| held > 0 && before.held > 0)),
        };
        let label = unit.to_string();
        self.consumer_held
            .with_label_values(&[flow.as_str(), &label])
            .set(held as i64);
        self.consumer_stalled
            .with_label_values(&[flow.as_str(), &label])
            .set(i64::from(now.stalled()));
        if now.stalled() && !before.stalled() {
            tracing::warn!(
                unit,
                flow = flow.as_str(),
                held,
                reason = %now.reason,
                "The unit holds its whole prefetch: nothing more arrives until the oldest held \
                 change is released."
            );
        } else if held > 0 && (before.held == 0 || before.reason != now.reason) {
            tracing::warn!(unit, flow = flow.as_str(), held, reason = %now.reason, "Changes held.");
        } else if held == 0 && before.held > 0 {
            tracing::info!(unit, flow = flow.as_str(), "Held changes released.");
        }
        self.board.set_held(unit, flow, now);
    }

    /// A consumer is consuming its queue.
    pub fn consumer_up(&self, flow: Flow, unit: i32, queue: &str) {
        tracing::info!(unit, flow = flow.as_str(), queue, "Consuming.");
    }

    /// A consumer could not start or lost its channel, and retries.
    pub fn consumer_down(&self, flow: Flow, unit: i32, error: &str, delay: Duration) {
        tracing::warn!(
            unit,
            flow = flow.as_str(),
            error,
            retry_in_ms = delay.as_millis() as u64,
            "Consumer not running; reopening."
        );
    }

    /// A consumer stopped (shutdown).
    pub fn consumer_stopped(&self, flow: Flow, unit: i32) {
        tracing::info!(unit, flow = flow.as_str(), "Consumer stopped.");
    }
}
