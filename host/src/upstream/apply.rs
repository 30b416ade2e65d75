//! One upstream change in one PostgreSQL transaction: the inbox (effect once), a lock on the
//! target row, the conflict check against what PostgreSQL has sent the origin unit since the
//! unit's base version, the policy, the transform's statements, and the hub fan-out through the
//! outbox to the other units — all committed together, then the message is acked.

use serde_json::{Map, Value as Json};
use sqlx::types::Json as Jsonb;
use sqlx::{PgConnection, PgPool, Row};

use super::bind::{bind_all, numbered};
use super::UpstreamError;
use crate::capture::split_key;
use crate::config::{ConflictPolicy, Fanout, UpstreamTable};
use crate::model::Output;
use crate::model::UpstreamEnvelope;

/// Where a change goes and what the host knows about its table.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The Firebird table (message `table`).
    pub fb_table: &'a str,
    /// Its upstream binding.
    pub table: &'a UpstreamTable,
    /// PostgreSQL types of the key columns, in key order (`format_type`).
    pub key_types: &'a [String],
    /// Every configured unit (fan-out targets).
    pub units: &'a [i32],
    /// `[upstream] unit_timezone`.
    pub unit_timezone: &'a str,
    /// Whether the downstream table is whitelisted, so outbox rows for it will be relayed.
    pub downstream_ok: bool,
    /// The downstream table is periodic: record the rows written, so no round sends them back.
    pub periodic: Option<&'a crate::periodic::EchoSpec>,
}

/// What became of one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied (and fanned out).
    Applied,
    /// Already in the inbox: nothing done.
    Duplicate,
    /// Conflict; PostgreSQL's state was kept (pg_wins, or the unit lost last_writer_wins).
    PgKept,
    /// Conflict; the unit's change won last_writer_wins, was applied and sent back to its unit too.
    UnitWon,
    /// Conflict; parked in ponte_conflict for an operator (manual).
    Parked,
    /// Older than the unit's last change applied to this row (a redelivery that was overtaken).
    Stale,
}

impl Outcome {
    /// Metric label and inbox word.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::PgKept => "pg_kept",
            Outcome::UnitWon => "unit_won",
            Outcome::Parked => "parked",
            Outcome::Stale => "stale",
        }
    }

    /// Whether a conflict was detected.
    pub fn is_conflict(self) -> bool {
        matches!(self, Outcome::PgKept | Outcome::UnitWon | Outcome::Parked)
    }
}

/// Applies `env` (translated to `output`) in a transaction of its own.
pub async fn apply_change(
    pool: &PgPool,
    target: &Target<'_>,
    env: &UpstreamEnvelope,
    output: &Output,
) -> Result<Outcome, UpstreamError> {
    let mut tx = pool.begin().await?;
    begin_applying(&mut tx).await?;
    let outcome = apply_in(&mut tx, target, env, output).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Marks the transaction as ponte's own apply, so the capture triggers do not echo it.
pub async fn begin_applying(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET LOCAL ponte.applying = 'on'")
        .execute(conn)
        .await
        .map(|_| ())
}

/// Applies `env` inside the caller's transaction (which [`begin_applying`] marked); the
/// caller commits. A batch of changes shares one transaction, each change in a savepoint.
pub async fn apply_in(
    tx: &mut PgConnection,
    target: &Target<'_>,
    env: &UpstreamEnvelope,
    output: &Output,
) -> Result<Outcome, UpstreamError> {
    let t = target.table;
    let correlation = uuid::Uuid::parse_str(&env.correlation_id).map_err(|_| {
        UpstreamError::Refused(format!(
            "correlation id `{}` is not a UUID",
            env.correlation_id
        ))
    })?;
    let keys = split_key(&output.row_key);
    if keys.len() != t.key.len() || keys.len() != target.key_types.len() {
        return Err(UpstreamError::Refused(format!(
            "row key `{}` has {} part(s); [upstream.tables.{}] key has {}",
            output.row_key,
            keys.len(),
            target.fb_table,
            t.key.len()
        )));
    }
    let seen: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM ponte_inbox WHERE correlation_id = $1")
            .bind(correlation)
            .fetch_optional(&mut *tx)
            .await?;
    if seen.is_some() {
        return Ok(Outcome::Duplicate);
    }
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT log_id FROM ponte_upstream_row \
             WHERE unit_id = $1 AND table_name = $2 AND row_key = $3",
    )
    .bind(env.unit)
    .bind(target.fb_table)
    .bind(&env.row_key)
    .fetch_optional(&mut *tx)
    .await?;
    if last.is_some_and(|l| l >= env.log_id) {
        record(tx, correlation, target, env, Outcome::Stale).await?;
        return Ok(Outcome::Stale);
    }

    let cond: Vec<String> = t
        .key
        .iter()
        .zip(target.key_types)
        .enumerate()
        .map(|(i, (k, ty))| format!("t.{k} = CAST(${} AS {ty})", i + 1))
        .collect();
    let cond = cond.join(" AND ");
    let pg = &t.pg_table;
    // The lock orders this change after any PG transaction writing the row, so the outbox row
    // that transaction wrote is visible to the conflict check below.
    let before = row_image(
        tx,
        &format!("SELECT to_jsonb(t) FROM {pg} t WHERE {cond} FOR UPDATE"),
        &keys,
    )
    .await?;
    let latest = latest_sent(tx, t, env.unit, &keys).await?;
    let conflict = latest.filter(|(seq, _)| Some(*seq) > env.base_seq);
    // PostgreSQL's change already overwrote the unit's at the unit before capture read the row:
    // the image is PostgreSQL's, so whatever the policy, PostgreSQL's state is what remains.
    let overwritten = env.seq_at_publish > env.base_seq;

    let outcome = match (conflict, t.conflict) {
        (None, _) => Outcome::Applied,
        (Some(_), _) if overwritten => Outcome::PgKept,
        (Some(_), ConflictPolicy::PgWins) => Outcome::PgKept,
        (Some(_), ConflictPolicy::Manual) => Outcome::Parked,
        (Some((_, pg_at)), ConflictPolicy::LastWriterWins) => {
            let unit_newer: bool = sqlx::query_scalar(
                "SELECT (CAST($1 AS timestamp) AT TIME ZONE $2) > COALESCE(CAST($3::jsonb ->> $4 \
                 AS timestamptz), $5)",
            )
            .bind(&env.changed_at)
            .bind(target.unit_timezone)
            .bind(before.clone().map(Jsonb))
            .bind(t.version_column.as_deref().unwrap_or_default())
            .bind(pg_at)
            .fetch_one(&mut *tx)
            .await?;
            if unit_newer {
                Outcome::UnitWon
            } else {
                Outcome::PgKept
            }
        }
    };

    if matches!(outcome, Outcome::Applied | Outcome::UnitWon) {
        for st in &output.statements {
            let sql = numbered(&st.sql);
            bind_all(sqlx::query(&sql), &st.params)?
                .execute(&mut *tx)
                .await?;
        }
        let deleting = env.op == "D";
        if let (Some(vc), ConflictPolicy::LastWriterWins, false) =
            (&t.version_column, t.conflict, deleting)
        {
            let n = keys.len();
            let sql = format!(
                "UPDATE {pg} t SET {vc} = (CAST(${} AS timestamp) AT TIME ZONE ${}) WHERE {cond}",
                n + 1,
                n + 2
            );
            let mut q = sqlx::query(&sql);
            for k in &keys {
                q = q.bind(k);
            }
            q.bind(&env.changed_at)
                .bind(target.unit_timezone)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(echo) = target.periodic {
            echo.note(tx, pg, &cond, &keys, deleting).await?;
        }
        let image = if deleting {
            Some(before.clone().unwrap_or_else(|| key_object(t, &keys)))
        } else {
            row_image(
                tx,
                &format!("SELECT to_jsonb(t) FROM {pg} t WHERE {cond}"),
                &keys,
            )
            .await?
        };
        let others: Vec<i32> = match t.fanout {
            Fanout::All => target
                .units
                .iter()
                .copied()
                .filter(|&u| u != env.unit)
                .collect(),
            Fanout::None => Vec::new(),
        };
        if let (Some(image), true) = (image, target.downstream_ok) {
            let sql = "INSERT INTO pg_sync_outbox \
                       (unit_id, table_name, operation, payload, origin_unit) \
                       SELECT u, $2, $3, $4, $5 FROM unnest($1::int[]) AS u";
            let op = &env.op;
            if !others.is_empty() {
                let q = sqlx::query(sql)
                    .bind(&others)
                    .bind(t.downstream())
                    .bind(op)
                    .bind(Jsonb(image.clone()));
                q.bind(Some(env.unit)).execute(&mut *tx).await?;
            }
            // The unit won over a newer PG change that is already on its way to it: PostgreSQL
            // sends the winner after it (its own decision, not an echo), or the unit would end on
            // the loser.
            if outcome == Outcome::UnitWon {
                let q = sqlx::query(sql)
                    .bind(vec![env.unit])
                    .bind(t.downstream())
                    .bind(op)
                    .bind(Jsonb(image));
                q.bind(None::<i32>).execute(&mut *tx).await?;
            }
        }
    }
    if let Some((pg_seq, _)) = conflict {
        let (resolution, status) = match outcome {
            Outcome::UnitWon => ("unit_applied", "resolved"),
            Outcome::Parked => ("parked", "open"),
            _ if overwritten => ("overwritten", "resolved"),
            _ => ("pg_kept", "resolved"),
        };
        sqlx::query(
            "INSERT INTO ponte_conflict (correlation_id, unit_id, fb_table, pg_table, row_key, \
             operation, policy, \
             resolution, status, base_seq, pg_seq, unit_changed_at, unit_image, pg_image) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, (CAST($12 AS timestamp) AT \
             TIME ZONE $13), $14, $15)",
        )
        .bind(correlation)
        .bind(env.unit)
        .bind(target.fb_table)
        .bind(pg)
        .bind(&output.row_key)
        .bind(&env.op)
        .bind(t.conflict.as_str())
        .bind(resolution)
        .bind(status)
        .bind(env.base_seq)
        .bind(pg_seq)
        .bind(&env.changed_at)
        .bind(target.unit_timezone)
        .bind(Jsonb(env.payload.clone()))
        .bind(before.map(Jsonb))
        .execute(&mut *tx)
        .await?;
    }
    record(tx, correlation, target, env, outcome).await?;
    sqlx::query(
        "INSERT INTO ponte_upstream_row (unit_id, table_name, row_key, log_id) VALUES ($1, $2, \
         $3, $4) \
         ON CONFLICT (unit_id, table_name, row_key) DO UPDATE SET log_id = EXCLUDED.log_id, \
         updated_at = now()",
    )
    .bind(env.unit)
    .bind(target.fb_table)
    .bind(&env.row_key)
    .bind(env.log_id)
    .execute(&mut *tx)
    .await?;
    Ok(outcome)
}

/// The inbox row: this correlation id has taken effect (or was decided) once.
async fn record(
    conn: &mut PgConnection,
    correlation: uuid::Uuid,
    target: &Target<'_>,
    env: &UpstreamEnvelope,
    outcome: Outcome,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ponte_inbox (correlation_id, unit_id, table_name, operation, log_id, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(correlation)
    .bind(env.unit)
    .bind(target.fb_table)
    .bind(&env.op)
    .bind(env.log_id)
    .bind(outcome.as_str())
    .execute(conn)
    .await
    .map(|_| ())
}

async fn row_image(
    conn: &mut PgConnection,
    sql: &str,
    keys: &[String],
) -> Result<Option<Json>, sqlx::Error> {
    let mut q = sqlx::query_scalar::<_, Jsonb<Json>>(sql);
    for k in keys {
        q = q.bind(k.clone());
    }
    Ok(q.fetch_optional(conn).await?.map(|j| j.0))
}

/// The newest outbox row PostgreSQL wrote for `unit` and this row that may have reached it:
/// (id, created_at). A `dead` row never reached the unit, so it is no base for a conflict.
async fn latest_sent(
    conn: &mut PgConnection,
    t: &UpstreamTable,
    unit: i32,
    keys: &[String],
) -> Result<Option<(i64, chrono::DateTime<chrono::Utc>)>, sqlx::Error> {
    let cond: Vec<String> = t
        .key
        .iter()
        .enumerate()
        .map(|(i, k)| format!("payload ->> '{k}' = ${}", i + 3))
        .collect();
    let sql = format!(
        "SELECT id, created_at FROM pg_sync_outbox WHERE table_name = $1 AND unit_id = $2 AND {} \
         AND status <> 'dead' ORDER BY id DESC LIMIT 1",
        cond.join(" AND ")
    );
    let mut q = sqlx::query(&sql).bind(t.downstream()).bind(unit);
    for k in keys {
        q = q.bind(k.clone());
    }
    match q.fetch_optional(conn).await? {
        Some(row) => Ok(Some((row.try_get(0)?, row.try_get(1)?))),
        None => Ok(None),
    }
}

/// `{"k": "v"}` for a delete whose row PostgreSQL no longer has.
fn key_object(t: &UpstreamTable, keys: &[String]) -> Json {
    let map: Map<String, Json> = t
        .key
        .iter()
        .cloned()
        .zip(keys.iter().map(|k| Json::String(k.clone())))
        .collect();
    Json::Object(map)
}
