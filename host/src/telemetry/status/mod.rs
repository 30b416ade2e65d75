//! The status page: `/` (and `/unit/N`) on the `[http]` listener, one row per unit, and
//! `/status.json`, the snapshot it renders. Everything comes from what this host exports on
//! `/metrics` (parsed back, [`exposition`]) and from its board (dead letters with their reasons,
//! held deliveries). The page is one embedded file (no build step, no CDN: the machines are
//! offline); it refreshes itself and sorts by any column. Read-only: it offers no action, only
//! the command to run.

mod exposition;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::{Board, DeadLetterNote, Flow, Metrics};
use crate::config::Config;
use exposition::{quantile, Sample};

/// The page itself.
pub const PAGE: &str = include_str!("page.html");

/// Dead letters shown per unit.
const DEAD_LETTERS_SHOWN: usize = 10;

/// What the page needs from the configuration: the units and each table's transform binding.
#[derive(Debug, Clone, Default)]
pub struct StatusSource {
    units: Vec<i32>,
    tables: Vec<(String, String)>,
}

impl StatusSource {
    /// From the host's configuration.
    pub fn new(config: &Config) -> StatusSource {
        StatusSource {
            units: config.units().iter().map(|u| u.id).collect(),
            tables: config
                .tables
                .iter()
                .map(|(name, t)| {
                    let binding = t.transform.clone().unwrap_or_else(|| "(declared)".into());
                    (name.clone(), binding)
                })
                .collect(),
        }
    }
}

/// One unit's row.
#[derive(Debug, Serialize)]
struct UnitRow {
    unit: i32,
    up: Option<bool>,
    lag_p50_s: Option<f64>,
    lag_p99_s: Option<f64>,
    applied: f64,
    outbox_pending: f64,
    outbox_processing: f64,
    outbox_dead: f64,
    queue_ready: Option<f64>,
    held: usize,
    stalled: bool,
    held_reason: String,
    dead_letters: u64,
    last_dead_reason: Option<String>,
    upstream_lag_s: Option<f64>,
    upstream_applied: f64,
    upstream_p99_s: Option<f64>,
    verify: BTreeMap<String, bool>,
    recent_dead_letters: Vec<DeadLetterNote>,
}

/// The snapshot `/status.json` serves.
pub fn snapshot(metrics: &Metrics, source: &StatusSource) -> Value {
    let samples = exposition::parse(&metrics.render());
    let board = &metrics.board;
    let units: Vec<UnitRow> = source
        .units
        .iter()
        .map(|&unit| unit_row(unit, &samples, board))
        .collect();
    let loaded: Vec<Value> = of(&samples, "ponte_transform_loaded", &[])
        .filter(|s| s.value > 0.0)
        .map(|s| json!({"name": label(s, "name"), "sha256": label(s, "sha256")}))
        .collect();
    let tables: Vec<Value> = source
        .tables
        .iter()
        .map(|(table, binding)| {
            let errors = sum(&samples, "ponte_transform_calls_total", &[("table", table)])
                - sum(
                    &samples,
                    "ponte_transform_calls_total",
                    &[("table", table), ("outcome", "ok")],
                );
            json!({"table": table, "transform": binding, "errors": errors})
        })
        .collect();
    let connected = |c: &str| sum(&samples, "ponte_amqp_connected", &[("connection", c)]) > 0.0;
    json!({
        "generated_at": chrono::Utc::now(),
        "broker": {"publish": connected("publish"), "consume": connected("consume")},
        "rss_bytes": sum(&samples, "process_resident_memory_bytes", &[]),
        "relay_in_flight": sum(&samples, "ponte_relay_in_flight", &[]),
        "tables": tables,
        "transforms": loaded,
        "units": units,
    })
}

fn unit_row(unit: i32, samples: &[Sample], board: &Board) -> UnitRow {
    let id = unit.to_string();
    let u = [("unit", id.as_str())];
    let outbox = |status: &str| {
        sum(
            samples,
            "ponte_outbox_backlog",
            &[("unit", id.as_str()), ("status", status)],
        )
    };
    let lag = buckets(samples, "ponte_apply_lag_seconds_bucket", &id);
    let upstream_lag = buckets(samples, "ponte_upstream_apply_lag_seconds_bucket", &id);
    let held = board.held(unit, Flow::Downstream);
    let dead = board.dead_letters(unit);
    let verify = of(samples, "ponte_verify_clean", &u)
        .map(|s| (label(s, "table"), s.value > 0.0))
        .collect();
    UnitRow {
        unit,
        up: first(samples, "ponte_unit_up", &u).map(|v| v > 0.0),
        lag_p50_s: quantile(&lag, 0.5),
        lag_p99_s: quantile(&lag, 0.99),
        applied: sum(
            samples,
            "ponte_apply_messages_total",
            &[("unit", id.as_str()), ("outcome", "applied")],
        ),
        outbox_pending: outbox("pending"),
        outbox_processing: outbox("processing"),
        outbox_dead: outbox("dead"),
        queue_ready: first(samples, "ponte_queue_backlog", &u),
        stalled: held.stalled(),
        held: held.held,
        held_reason: held.reason,
        dead_letters: board.dead_letter_count(unit),
        last_dead_reason: dead.first().map(|d| d.reason.clone()),
        upstream_lag_s: first(samples, "ponte_upstream_lag_seconds", &u),
        upstream_applied: sum(samples, "ponte_upstream_applied_total", &u),
        upstream_p99_s: quantile(&upstream_lag, 0.99),
        verify,
        recent_dead_letters: dead.into_iter().take(DEAD_LETTERS_SHOWN).collect(),
    }
}

/// The samples of `name` whose labels include every `(key, value)` of `want`.
fn of<'a>(
    samples: &'a [Sample],
    name: &'a str,
    want: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = &'a Sample> + 'a {
    samples.iter().filter(move |s| {
        s.name == name
            && want
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    // A fold from +0.0: `Iterator::sum` of no f64 is -0.0, which the page would show as "-0".
    of(samples, name, want).fold(0.0, |total, s| total + s.value)
}

fn first(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    of(samples, name, want).map(|s| s.value).next()
}

fn label(sample: &Sample, key: &str) -> String {
    sample.labels.get(key).cloned().unwrap_or_default()
}

/// A unit's cumulative histogram buckets `(le, count)`.
fn buckets(samples: &[Sample], name: &str, unit: &str) -> Vec<(f64, f64)> {
    of(samples, name, &[("unit", unit)])
        .map(|s| {
            let le = s
                .labels
                .get("le")
                .map_or(f64::INFINITY, |v| v.parse().unwrap_or(f64::INFINITY));
            (le, s.value)
        })
        .collect()
}
