//! Turning deliveries into changes ready for Firebird: decode the envelope, check it is meant for
//! this unit and whitelisted, and run the table's transform. Each delivery ends in exactly one
//! verdict: ready, dead (with a reason an operator can act on), or wait (no transform loaded yet).

use serde_json::value::RawValue;

use crate::amqp::DeadClass;
use crate::config::Config;
use crate::firebird::Prepared;
use crate::model::{Change, Direction, Op};
use crate::model::{Envelope, ENVELOPE_VERSION};
use crate::transform::TransformRegistry;

/// What to do with one delivery.
#[derive(Debug)]
pub enum Verdict {
    /// Translated; apply it.
    Ready(Box<Prepared>),
    /// Never applicable as it is: dead-letter with this class and reason.
    Dead {
        /// transform, refused or malformed.
        class: DeadClass,
        /// The reason.
        reason: String,
    },
    /// Not applicable yet (no transform serves its table): keep it unacked and retry later.
    Wait(String),
}

/// Identity of a decoded message, for logs and lag.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Correlation id ("" when the body did not decode).
    pub correlation_id: String,
    /// Table ("" when unknown).
    pub table: String,
    /// Outbox write time (RFC 3339).
    pub created_at: String,
}

/// Decodes and translates one delivery body for `unit`.
pub fn prepare(
    body: &[u8],
    unit: i32,
    config: &Config,
    registry: &TransformRegistry,
) -> (Meta, Verdict) {
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(env) => env,
        Err(e) => {
            return (
                Meta::default(),
                Verdict::Dead {
                    class: DeadClass::Malformed,
                    reason: format!("message body is not a ponte envelope: {e}"),
                },
            )
        }
    };
    let meta = Meta {
        correlation_id: envelope.correlation_id.clone(),
        table: envelope.table.clone(),
        created_at: envelope.created_at.clone(),
    };
    let verdict = translate(envelope, unit, config, registry);
    (meta, verdict)
}

fn translate(env: Envelope, unit: i32, config: &Config, registry: &TransformRegistry) -> Verdict {
    let dead = |class, reason: String| Verdict::Dead { class, reason };
    if env.v != ENVELOPE_VERSION {
        return dead(
            DeadClass::Malformed,
            format!(
                "envelope version {} is not supported (expected {ENVELOPE_VERSION})",
                env.v
            ),
        );
    }
    if env.unit != unit {
        return dead(
            DeadClass::Malformed,
            format!(
                "message for unit {} arrived in the queue of unit {unit}",
                env.unit
            ),
        );
    }
    if uuid::Uuid::parse_str(&env.correlation_id).is_err() {
        return dead(
            DeadClass::Malformed,
            format!("correlation id `{}` is not a UUID", env.correlation_id),
        );
    }
    let Some(op) = Op::from_code(&env.op) else {
        return dead(
            DeadClass::Malformed,
            format!("operation `{}` is not I, U or D", env.op),
        );
    };
    if !config.allows(&env.table, op) {
        return dead(
            DeadClass::Refused,
            format!(
                "table `{}` operation `{}` is not whitelisted on this host ([tables.{}] ops)",
                env.table, env.op, env.table
            ),
        );
    }
    if !is_json_object(&env.payload) {
        return dead(DeadClass::Malformed, "payload is not a JSON object".into());
    }
    let change = Change {
        table: env.table.clone(),
        op,
        direction: Direction::Downstream,
        unit,
        correlation_id: env.correlation_id.clone(),
        sequence: env.outbox_id,
        payload: env.payload.get().to_string(),
        settings: config.table_settings_json(&env.table),
    };
    let output = match registry
        .pin(&env.table)
        .and_then(|pinned| pinned.call(&change))
    {
        Ok(output) => output,
        Err(e) if e.is_not_ready() => return Verdict::Wait(e.to_string()),
        Err(e) => return dead(DeadClass::Transform, e.to_string()),
    };
    if output.row_key.is_empty() || output.row_key.chars().count() > 200 {
        return dead(
            DeadClass::Transform,
            format!(
                "row key must be 1..200 characters, got {}",
                output.row_key.len()
            ),
        );
    }
    Verdict::Ready(Box::new(Prepared {
        correlation_id: env.correlation_id,
        sequence: env.outbox_id,
        table: env.table,
        op,
        output,
    }))
}

fn is_json_object(raw: &RawValue) -> bool {
    raw.get().trim_start().starts_with('{')
}
