//! The outbox queries of the relay: the ordered claim, marking results, handing rows back, and the
//! janitor's rescue. Every query is bounded by the pool's statement timeout.

use std::sync::LazyLock;

use sqlx::PgPool;

/// A claimed outbox row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    /// Outbox id.
    pub id: i64,
    /// Correlation id.
    pub correlation_id: uuid::Uuid,
    /// Target unit.
    pub unit_id: i32,
    /// Source table.
    pub table_name: String,
    /// `I`, `U` or `D`.
    pub operation: String,
    /// Row image as JSON text.
    pub payload: String,
    /// Failed attempts so far.
    pub attempts: i32,
    /// Written at.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Origin unit for fan-out.
    pub origin_unit: Option<i32>,
}

/// The commit horizon (xid8): the oldest transaction that still runs and has inserted outbox
/// rows (it holds the shared advisory lock of migration 0007, taken by every outbox insert
/// statement), or the next transaction id when none does. Only such a transaction can still
/// commit an outbox id below the rows a claim sees; one that writes no outbox row (an idle
/// session, a long report) holds nothing back. pg_locks gives 32-bit xids: each is placed in the
/// epoch of the snapshot's xmax (a running transaction is less than 2^31 ids old).
const HORIZON: &str = "coalesce( \
    (SELECT min(x.xmax8 - ((x.xmax8 % 4294967296) - t.transactionid::text::bigint \
                + 4294967296) % 4294967296) \
     FROM pg_locks a \
     JOIN pg_locks t ON t.virtualtransaction = a.virtualtransaction \
         AND t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock' AND t.granted \
     CROSS JOIN (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax8) x \
     WHERE a.locktype = 'advisory' AND a.classid = 1886350964 AND a.objid = 1 \
         AND a.objsubid = 2 AND a.granted \
         AND a.database = (SELECT oid FROM pg_database WHERE datname = current_database())), \
    pg_snapshot_xmax(pg_current_snapshot())::text::bigint)::text::xid8";

/// The claim statement, built once (it embeds [`HORIZON`]).
static CLAIM_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH h AS (SELECT {HORIZON} AS xmin), \
         held AS ( \
             SELECT unit_id FROM ponte_unit_lease \
             WHERE holder = $3 AND expires_at > now() AND unit_id = ANY($1)), \
         win AS ( \
             SELECT w.id, w.unit_id, w.blocker FROM held CROSS JOIN h CROSS JOIN LATERAL ( \
                 SELECT o.id, o.unit_id, \
                     (o.next_attempt_at > now() OR o.txid >= h.xmin) AS blocker \
                 FROM pg_sync_outbox o WHERE o.status = 'pending' AND o.unit_id = held.unit_id \
                 ORDER BY o.unit_id, o.id LIMIT $2) w \
             ORDER BY w.id LIMIT $2), \
         heads AS MATERIALIZED ( \
             SELECT w.unit_id, min(w.id) FILTER (WHERE w.blocker) AS pending_head, \
                 (SELECT p.id FROM pg_sync_outbox p WHERE p.unit_id = w.unit_id \
                  AND p.status = 'processing' AND p.claimed_by IS DISTINCT FROM $3 \
                  ORDER BY p.unit_id, p.id LIMIT 1) AS foreign_head \
             FROM win w GROUP BY w.unit_id), \
         free AS ( \
             SELECT array_agg(w.id) AS ids FROM win w JOIN heads hd ON hd.unit_id = w.unit_id \
             WHERE NOT w.blocker \
               AND (hd.pending_head IS NULL OR w.id < hd.pending_head) \
               AND (hd.foreign_head IS NULL OR w.id < hd.foreign_head)), \
         picked AS ( \
             SELECT o.id FROM pg_sync_outbox o \
             WHERE o.id = ANY((SELECT ids FROM free)::bigint[]) AND o.status = 'pending' \
             ORDER BY o.id FOR UPDATE OF o) \
         UPDATE pg_sync_outbox o SET status = 'processing', claimed_by = $3, claimed_at = now(), \
             updated_at = now() \
         WHERE o.id = ANY(ARRAY(SELECT id FROM picked)) AND o.status = 'pending' \
         RETURNING o.id, o.correlation_id, o.unit_id, o.table_name, o.operation, \
             o.payload::text AS payload, o.attempts, o.created_at, o.origin_unit"
    )
});

/// Claims up to `limit` pending rows of the units this instance holds a lease on (checked in the
/// statement itself: a claim that starts after its lease ended claims nothing), in id order,
/// without overtaking. The window is the oldest `limit` pending rows of the held units, taken
/// from each held unit's oldest `limit` (one ordered range of `pg_sync_outbox_pending (unit_id,
/// id)` per unit: the `ORDER BY unit_id, id` only that index serves); `heads` is computed once.
/// Each unit stops at its first row that may not go yet — one waiting for its backoff, or written
/// by a transaction at or above the commit horizon (an older transaction still runs, so rows may
/// still appear below it) — and before a row another instance still has in flight.
///
/// The rows are then locked and updated by id (`id = ANY(..)`, an index lookup of at most
/// `limit` keys), never by a join the planner may turn around. The statement is planned at each
/// claim (`persistent(false)`): a plan cached while the outbox was nearly empty walked every
/// pending row once per window row when a backlog came (5 s per claim with 35k pending).
pub async fn claim(
    pool: &PgPool,
    units: &[i32],
    limit: i64,
    instance: &str,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let mut rows: Vec<Claimed> = sqlx::query_as(CLAIM_SQL.as_str())
        .persistent(false)
        .bind(units)
        .bind(limit)
        .bind(instance)
        .fetch_all(pool)
        .await?;
    rows.sort_unstable_by_key(|r| r.id);
    Ok(rows)
}

/// Marks confirmed rows sent (only while this instance still holds them).
pub async fn mark_sent(pool: &PgPool, ids: &[i64], instance: &str) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        "UPDATE pg_sync_outbox SET status = 'sent', sent_at = now(), updated_at = now(), \
         claimed_by = NULL \
         WHERE id = ANY($1) AND claimed_by = $2 AND status = 'processing'",
    )
    .bind(ids)
    .bind(instance)
    .execute(pool)
    .await?
    .rows_affected())
}

/// A row that failed: its error and the delay before the next attempt.
pub struct Failed {
    /// Outbox id.
    pub id: i64,
    /// What went wrong.
    pub error: String,
    /// Seconds until it may be claimed again.
    pub retry_in_secs: f64,
    /// Mark dead now, whatever the attempts (refused by the whitelist).
    pub dead_now: bool,
}

/// Records failures: attempts + 1, error_log, backoff; `dead` at `max_attempts`. Returns the ids
/// that became dead.
pub async fn mark_failed(
    pool: &PgPool,
    failed: &[Failed],
    instance: &str,
    max_attempts: i32,
) -> Result<Vec<i64>, sqlx::Error> {
    if failed.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = failed.iter().map(|f| f.id).collect();
    let errors: Vec<String> = failed.iter().map(|f| f.error.clone()).collect();
    let delays: Vec<f64> = failed.iter().map(|f| f.retry_in_secs).collect();
    let dead: Vec<bool> = failed.iter().map(|f| f.dead_now).collect();
    sqlx::query_scalar(
        "UPDATE pg_sync_outbox o SET \
             status = CASE WHEN f.dead OR o.attempts + 1 >= $5 THEN 'dead' ELSE 'pending' END, \
             attempts = o.attempts + 1, \
             error_log = 'attempt ' || (o.attempts + 1) || ': ' || f.err, \
             next_attempt_at = now() + make_interval(secs => f.delay), \
             claimed_by = NULL, claimed_at = NULL, updated_at = now() \
         FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::bool[]) AS f(id, err, delay, \
         dead) \
         WHERE o.id = f.id AND o.claimed_by = $6 AND o.status = 'processing' \
         RETURNING CASE WHEN o.status = 'dead' THEN o.id END",
    )
    .bind(&ids)
    .bind(&errors)
    .bind(&delays)
    .bind(&dead)
    .bind(max_attempts)
    .bind(instance)
    .fetch_all(pool)
    .await
    .map(|rows: Vec<Option<i64>>| rows.into_iter().flatten().collect())
}

/// Hands this instance's claimed rows back to pending (shutdown, memory guard) without an attempt.
pub async fn hand_back(
    pool: &PgPool,
    ids: Option<&[i64]>,
    instance: &str,
) -> Result<u64, sqlx::Error> {
    let query = match ids {
        Some(ids) => sqlx::query(
            "UPDATE pg_sync_outbox SET status = 'pending', claimed_by = NULL, claimed_at = NULL, \
             updated_at = now() \
             WHERE claimed_by = $1 AND status = 'processing' AND id = ANY($2)",
        )
        .bind(instance)
        .bind(ids.to_vec()),
        None => sqlx::query(
            "UPDATE pg_sync_outbox SET status = 'pending', claimed_by = NULL, claimed_at = NULL, \
             updated_at = now() \
             WHERE claimed_by = $1 AND status = 'processing'",
        )
        .bind(instance),
    };
    Ok(query.execute(pool).await?.rows_affected())
}

/// The janitor: rows in `processing` longer than `timeout_secs` go back to pending.
pub async fn rescue_stuck(pool: &PgPool, timeout_secs: f64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE pg_sync_outbox SET status = 'pending', \
             error_log = 'rescued by the janitor from ' || coalesce(claimed_by, '?'), \
             claimed_by = NULL, claimed_at = NULL, updated_at = now() \
         WHERE status = 'processing' AND claimed_at < now() - make_interval(secs => $1)",
    )
    .bind(timeout_secs)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Outbox rows not yet sent, by unit and status, for the backlog gauges.
pub async fn backlog(pool: &PgPool) -> Result<Vec<(i32, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT unit_id, 'pending'::text, count(*) FROM pg_sync_outbox WHERE status = 'pending' \
         GROUP BY 1 \
         UNION ALL SELECT unit_id, 'processing', count(*) FROM pg_sync_outbox WHERE status = \
         'processing' GROUP BY 1 \
         UNION ALL SELECT unit_id, 'dead', count(*) FROM pg_sync_outbox WHERE status = 'dead' \
         GROUP BY 1",
    )
    .fetch_all(pool)
    .await
}
