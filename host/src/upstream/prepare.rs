//! Turning an upstream delivery into a change ready for PostgreSQL: decode the envelope, check
//! it is a configured table, run its transform (direction = upstream). Each delivery ends in one
//! verdict: ready, dead (with a reason an operator can act on) or wait (no transform loaded yet).

use sqlx::PgPool;

use super::UpstreamError;
use crate::amqp::DeadClass;
use crate::config::Config;
use crate::model::{Change, Direction, Op, Output};
use crate::model::{UpstreamEnvelope, UPSTREAM_VERSION};
use crate::transform::TransformRegistry;

/// What to do with one delivery.
pub(super) enum Verdict {
    /// Translated; apply it.
    Ready(Box<(UpstreamEnvelope, Output)>),
    /// Never applicable as it is: dead-letter with this class and reason.
    Dead(DeadClass, String),
    /// Not applicable yet (no transform serves its table): retry later, the queue waits.
    Wait(String),
}

/// Decodes, checks and translates one body.
pub(super) fn prepare(body: &[u8], config: &Config, registry: &TransformRegistry) -> Verdict {
    let env: UpstreamEnvelope = match serde_json::from_slice(body) {
        Ok(env) => env,
        Err(e) => {
            return Verdict::Dead(
                DeadClass::Malformed,
                format!("not an upstream envelope: {e}"),
            )
        }
    };
    if env.v != UPSTREAM_VERSION {
        return Verdict::Dead(
            DeadClass::Malformed,
            format!(
                "upstream envelope version {} (expected {UPSTREAM_VERSION})",
                env.v
            ),
        );
    }
    let Some(op) = Op::from_code(&env.op) else {
        return Verdict::Dead(
            DeadClass::Malformed,
            format!("operation `{}` is not I, U or D", env.op),
        );
    };
    let Some(table) = config.upstream.tables.get(&env.table) else {
        return Verdict::Dead(
            DeadClass::Refused,
            format!(
                "table `{}` is not in [upstream.tables] on this host",
                env.table
            ),
        );
    };
    if !env.payload.is_object() {
        return Verdict::Dead(DeadClass::Malformed, "payload is not a JSON object".into());
    }
    let change = Change {
        table: env.table.clone(),
        op,
        direction: Direction::Upstream,
        unit: env.unit,
        correlation_id: env.correlation_id.clone(),
        sequence: env.log_id,
        payload: env.payload.to_string(),
        settings: table.settings_json(),
    };
    match registry
        .pin(&env.table)
        .and_then(|pinned| pinned.call(&change))
    {
        Ok(output) => Verdict::Ready(Box::new((env, output))),
        Err(e) if e.is_not_ready() => Verdict::Wait(e.to_string()),
        Err(e) => Verdict::Dead(DeadClass::Transform, e.to_string()),
    }
}

/// PostgreSQL types of `table`'s key columns, in key order.
pub(super) async fn key_types(
    pool: &PgPool,
    table: &str,
    key: &[String],
) -> Result<Vec<String>, UpstreamError> {
    let mut types = Vec::with_capacity(key.len());
    for column in key {
        let ty: Option<String> = sqlx::query_scalar(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = CAST($1 AS regclass) AND a.attname = $2 AND a.attnum > 0 AND NOT \
             a.attisdropped",
        )
        .bind(table)
        .bind(column)
        .fetch_optional(pool)
        .await?;
        types.push(ty.ok_or_else(|| {
            UpstreamError::Refused(format!(
                "{table} has no column {column} (check [upstream.tables] key)"
            ))
        })?);
    }
    Ok(types)
}
