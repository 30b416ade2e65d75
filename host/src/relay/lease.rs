//! Unit leases: one relay instance holds a unit at a time, so a unit's stream is published by one
//! holder in order. Instances heartbeat, each takes a fair share of the units, and a unit whose
//! holder stopped renewing is taken over, its rows left in `processing` handed back first.

use std::time::Duration;

use rand::seq::SliceRandom;
use sqlx::PgPool;

/// This instance's view of its leases.
pub struct Leases {
    instance: String,
    lease: Duration,
    units: Vec<i32>,
    held: Vec<i32>,
}

impl Leases {
    /// No leases yet.
    pub fn new(instance: &str, lease: Duration, units: Vec<i32>) -> Leases {
        Leases {
            instance: instance.to_string(),
            lease,
            units,
            held: Vec::new(),
        }
    }

    /// Units held after the last refresh.
    pub fn held(&self) -> &[i32] {
        &self.held
    }

    /// Heartbeat, renew, give back a surplus, take free or expired units up to a fair share.
    /// Call between batches only (a released unit must have nothing in flight).
    pub async fn refresh(&mut self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let secs = self.lease.as_secs_f64();
        sqlx::query(
            "INSERT INTO ponte_relay_instance (instance_id, seen_at) VALUES ($1, now()) \
             ON CONFLICT (instance_id) DO UPDATE SET seen_at = now()",
        )
        .bind(&self.instance)
        .execute(pool)
        .await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM ponte_relay_instance WHERE seen_at > now() - make_interval(secs => $1)",
        )
        .bind(secs)
        .fetch_one(pool)
        .await?;
        let mut held: Vec<i32> = sqlx::query_scalar(
            "UPDATE ponte_unit_lease SET expires_at = now() + make_interval(secs => $2) \
             WHERE holder = $1 AND unit_id = ANY($3) RETURNING unit_id",
        )
        .bind(&self.instance)
        .bind(secs)
        .bind(&self.units)
        .fetch_all(pool)
        .await?;
        let share = self.units.len().div_ceil(live.max(1) as usize);
        if held.len() > share {
            held.sort_unstable();
            let surplus = held.split_off(share);
            sqlx::query("DELETE FROM ponte_unit_lease WHERE holder = $1 AND unit_id = ANY($2)")
                .bind(&self.instance)
                .bind(&surplus)
                .execute(pool)
                .await?;
            tracing::info!(units = ?surplus, "Released unit leases to share with other relays.");
        }
        let mut candidates: Vec<i32> = self
            .units
            .iter()
            .copied()
            .filter(|u| !held.contains(u))
            .collect();
        candidates.shuffle(&mut rand::rng());
        for unit in candidates {
            if held.len() >= share {
                break;
            }
            let taken: Option<i32> = sqlx::query_scalar(
                "INSERT INTO ponte_unit_lease (unit_id, holder, expires_at) \
                 VALUES ($1, $2, now() + make_interval(secs => $3)) \
                 ON CONFLICT (unit_id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
                 WHERE ponte_unit_lease.expires_at < now() RETURNING unit_id",
            )
            .bind(unit)
            .bind(&self.instance)
            .bind(secs)
            .fetch_optional(pool)
            .await?;
            if taken.is_some() {
                // The previous holder is gone: what it left in flight goes back to pending so this
                // instance republishes it in order (duplicates are absorbed by the unit's ledger).
                let rescued = sqlx::query(
                    "UPDATE pg_sync_outbox SET status = 'pending', claimed_by = NULL, claimed_at = NULL, \
                     updated_at = now(), error_log = 'handed back on lease takeover from ' || claimed_by \
                     WHERE unit_id = $1 AND status = 'processing' AND claimed_by IS DISTINCT FROM $2",
                )
                .bind(unit)
                .bind(&self.instance)
                .execute(pool)
                .await?
                .rows_affected();
                if rescued > 0 {
                    tracing::warn!(
                        unit,
                        rescued,
                        "Took over a unit lease; rows in flight were handed back."
                    );
                }
                held.push(unit);
            }
        }
        held.sort_unstable();
        if held != self.held {
            tracing::info!(instance = %self.instance, units = ?held, live_relays = live, "Unit leases changed.");
        }
        self.held = held;
        Ok(())
    }

    /// Gives up every lease and the heartbeat (clean stop).
    pub async fn release_all(&mut self, pool: &PgPool) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM ponte_unit_lease WHERE holder = $1")
            .bind(&self.instance)
            .execute(pool)
            .await?;
        sqlx::query("DELETE FROM ponte_relay_instance WHERE instance_id = $1")
            .bind(&self.instance)
            .execute(pool)
            .await?;
        self.held.clear();
        Ok(())
    }
}
