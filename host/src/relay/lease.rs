//! Unit leases: one relay instance holds a unit at a time, so a unit's stream is published by one
//! holder in order. Instances heartbeat with the units they are configured for; each unit belongs
//! to one of the live instances that list it, chosen by rendezvous hashing (every instance
//! computes the same owner, instances with different `[units]` still cover every unit, and an
//! instance joining or leaving moves only its share). An instance renews the leases of the units
//! it owns, gives back the others, and takes its units when they are free or expired (handing
//! back what the previous holder left in flight). The claim itself checks the lease in SQL.

use std::collections::BTreeMap;
use std::time::Duration;

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

    /// Heartbeat, renew what it owns, give back what it does not, take its free or expired
    /// units. Call between rounds only (a released unit must have nothing in flight).
    pub async fn refresh(&mut self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let secs = self.lease.as_secs_f64();
        sqlx::query(
            "INSERT INTO ponte_relay_instance (instance_id, seen_at, units) VALUES ($1, now(), $2) \
             ON CONFLICT (instance_id) DO UPDATE SET seen_at = now(), units = EXCLUDED.units",
        )
        .bind(&self.instance)
        .bind(&self.units)
        .execute(pool)
        .await?;
        let live: Vec<(String, Vec<i32>)> = sqlx::query_as(
            "SELECT instance_id, units FROM ponte_relay_instance \
             WHERE seen_at > now() - make_interval(secs => $1)",
        )
        .bind(secs)
        .fetch_all(pool)
        .await?;
        let owned = owned_units(&self.instance, &self.units, &live);
        let held: Vec<i32> = sqlx::query_scalar(
            "UPDATE ponte_unit_lease SET expires_at = now() + make_interval(secs => $2) \
             WHERE holder = $1 AND unit_id = ANY($3) RETURNING unit_id",
        )
        .bind(&self.instance)
        .bind(secs)
        .bind(&owned)
        .fetch_all(pool)
        .await?;
        let given_back: Vec<i32> = sqlx::query_scalar(
            "DELETE FROM ponte_unit_lease WHERE holder = $1 AND NOT (unit_id = ANY($2)) \
             RETURNING unit_id",
        )
        .bind(&self.instance)
        .bind(&owned)
        .fetch_all(pool)
        .await?;
        if !given_back.is_empty() {
            tracing::info!(
                units = ?given_back,
                "Unit leases given back to the relays that own them."
            );
        }
        let mut held = held;
        let missing: Vec<i32> = owned
            .iter()
            .copied()
            .filter(|u| !held.contains(u))
            .collect();
        for unit in missing {
            if self.take(pool, unit, secs).await? {
                held.push(unit);
            }
        }
        held.sort_unstable();
        if held != self.held {
            tracing::info!(
                instance = %self.instance,
                units = ?held,
                live_relays = live.len(),
                "Unit leases changed."
            );
        }
        self.held = held;
        Ok(())
    }

    /// Takes `unit` if it is free or its lease expired; hands back what the previous holder left
    /// in flight, so this instance republishes it in order (the unit's ledger absorbs repeats).
    async fn take(&self, pool: &PgPool, unit: i32, secs: f64) -> Result<bool, sqlx::Error> {
        let taken: Option<i32> = sqlx::query_scalar(
            "INSERT INTO ponte_unit_lease (unit_id, holder, expires_at) \
             VALUES ($1, $2, now() + make_interval(secs => $3)) \
             ON CONFLICT (unit_id) DO UPDATE SET holder = EXCLUDED.holder, \
                 expires_at = EXCLUDED.expires_at \
             WHERE ponte_unit_lease.expires_at < now() RETURNING unit_id",
        )
        .bind(unit)
        .bind(&self.instance)
        .bind(secs)
        .fetch_optional(pool)
        .await?;
        if taken.is_none() {
            return Ok(false);
        }
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
        Ok(true)
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

/// The units of `mine` that `me` owns among the `live` instances (with their unit lists): each
/// unit goes to the live instance listing it with the highest rendezvous weight.
pub fn owned_units(me: &str, mine: &[i32], live: &[(String, Vec<i32>)]) -> Vec<i32> {
    let mut candidates: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for (instance, units) in live {
        for unit in units {
            candidates.entry(*unit).or_default().push(instance);
        }
    }
    mine.iter()
        .copied()
        .filter(|unit| {
            let here = candidates.get(unit).map(Vec::as_slice).unwrap_or_default();
            let owner = here
                .iter()
                .copied()
                .chain(std::iter::once(me))
                .max_by_key(|instance| (weight(instance, *unit), *instance));
            owner == Some(me)
        })
        .collect()
}

/// A stable 64-bit weight of (instance, unit): FNV-1a, identical in every process.
fn weight(instance: &str, unit: i32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in instance.bytes().chain(unit.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_lists_cover_every_unit() {
        let live = vec![("a".to_string(), vec![1, 2]), ("b".to_string(), vec![3, 4])];
        assert_eq!(owned_units("a", &[1, 2], &live), vec![1, 2]);
        assert_eq!(owned_units("b", &[3, 4], &live), vec![3, 4]);
    }

    #[test]
    fn identical_lists_split_every_unit_exactly_once() {
        let units: Vec<i32> = (1..=50).collect();
        let live: Vec<(String, Vec<i32>)> = ["r1", "r2", "r3"]
            .iter()
            .map(|i| (i.to_string(), units.clone()))
            .collect();
        let mut all: Vec<i32> = live
            .iter()
            .flat_map(|(me, _)| owned_units(me, &units, &live))
            .collect();
        let shares: Vec<usize> = live
            .iter()
            .map(|(me, _)| owned_units(me, &units, &live).len())
            .collect();
        all.sort_unstable();
        assert_eq!(all, units, "every unit has exactly one owner");
        assert!(
            shares.iter().all(|&n| n >= 8),
            "a share is reasonable: {shares:?}"
        );
    }

    #[test]
    fn an_instance_not_yet_seen_still_counts_itself() {
        assert_eq!(owned_units("new", &[7], &[]), vec![7]);
    }
}
