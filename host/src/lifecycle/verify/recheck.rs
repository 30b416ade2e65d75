//! No false positives while rows change: every suspect of the first pass is checked again, up to
//! [`ROUNDS`] times. A round reads PostgreSQL's rows (R1), waits until the unit has applied its
//! newest outbox row (so everything R1 reflects has reached it), reads the unit's rows, and
//! reads PostgreSQL again (R2). A key whose unit row equals R1 is fine; one where R1 and R2
//! differ changed meanwhile and goes to the next round; the others are real differences.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::fb::FbSlot;
use super::mapping::{CanonRow, FbKey, Mapping};
use super::pass::Suspect;
use super::pg;
use super::unit;
use crate::lifecycle::catalog::PgTable;
use crate::transform::Pinned;

/// Rechecks before a still-changing row is given up as unsettled.
pub const ROUNDS: usize = 3;

/// A confirmed difference.
#[derive(Debug, Clone)]
pub enum Finding {
    /// PostgreSQL has the row, the unit not.
    Missing(Box<CanonRow>, Vec<String>),
    /// The unit has a row PostgreSQL does not.
    Extra(FbKey),
    /// Both have it; values differ: (PostgreSQL's, the unit's, PostgreSQL key).
    Differs(Box<CanonRow>, Box<CanonRow>, Vec<String>),
}

/// What the rechecks decided.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Real differences.
    pub findings: Vec<Finding>,
    /// Keys still changing after every round.
    pub unsettled: u64,
    /// PostgreSQL rows the transform refused during the recheck.
    pub unmappable: Vec<(Vec<String>, String)>,
    /// A note (the unit did not catch up in time).
    pub note: Option<String>,
}

/// Context of one table's recheck.
pub struct Recheck<'a> {
    /// Hub.
    pub pool: &'a PgPool,
    /// The table.
    pub table: &'a PgTable,
    /// Its mapping.
    pub mapping: &'a Mapping,
    /// Its transform.
    pub pinned: &'a Pinned,
    /// The unit.
    pub unit: i32,
    /// How long to wait for the unit to catch up, per round.
    pub wait: Duration,
    /// Whether PostgreSQL keys equal unit keys (extra rows can be looked up in PostgreSQL).
    pub identity: bool,
}

type Expected = HashMap<FbKey, (CanonRow, Vec<String>)>;

impl Recheck<'_> {
    async fn expected(&self, keys: &[Vec<String>], out: &mut Outcome) -> anyhow::Result<Expected> {
        let rows = pg::by_keys(self.pool, self.table, self.unit, keys).await?;
        let (mapping, pinned, unit) = (self.mapping.clone(), self.pinned.clone(), self.unit);
        let mapped = tokio::task::spawn_blocking(move || {
            rows.into_iter()
                .map(|(k, image)| (mapping.expected(&pinned, unit, &image), k))
                .collect::<Vec<_>>()
        })
        .await?;
        let mut map = HashMap::new();
        for (row, pg_key) in mapped {
            match row {
                Ok(row) => {
                    map.insert(row.key.clone(), (row, pg_key));
                }
                Err(e) => out.unmappable.push((pg_key, e)),
            }
        }
        Ok(map)
    }

    /// Waits (until `deadline`) for the unit's ledger to hold its newest outbox row; false when
    /// it did not get there in time.
    async fn caught_up(
        &self,
        fb: &mut FbSlot,
        deadline: Instant,
        out: &mut Outcome,
    ) -> anyhow::Result<bool> {
        let Some((id, cid)) = pg::horizon(self.pool, self.unit).await? else {
            return Ok(true);
        };
        loop {
            let probe = cid.clone();
            if fb
                .run(move |c| unit::applied(c, &probe).map_err(|e| e.to_string()))
                .await
                .map_err(anyhow::Error::msg)?
            {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                out.note = Some(format!(
                    "unit {} had not applied outbox row {id} within {:?}: rows that differ while \
                     changes are still queued are counted as unsettled, not as differences (is \
                     `ponte run` applying this unit? run verify again once it caught up)",
                    self.unit, self.wait
                ));
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs the rounds over `suspects`.
    pub async fn run(
        &self,
        fb: &mut FbSlot,
        mut suspects: Vec<Suspect>,
    ) -> anyhow::Result<Outcome> {
        let mut out = Outcome::default();
        let deadline = Instant::now() + self.wait;
        for _ in 0..ROUNDS {
            if suspects.is_empty() {
                break;
            }
            let pg_keys: Vec<Vec<String>> = suspects
                .iter()
                .filter(|s| !s.guessed || self.identity)
                .filter_map(|s| s.pg_key.clone())
                .collect();
            let first = self.expected(&pg_keys, &mut out).await?;
            let caught = self.caught_up(fb, deadline, &mut out).await?;
            let keys: Vec<FbKey> = suspects.iter().map(|s| s.key.clone()).collect();
            let mapping = self.mapping.clone();
            let theirs: HashMap<FbKey, CanonRow> = fb
                .run(move |c| unit::rows_by_keys(c, &mapping, &keys).map_err(|e| e.to_string()))
                .await
                .map_err(anyhow::Error::msg)?
                .into_iter()
                .map(|r| (r.key.clone(), r))
                .collect();
            let second = self.expected(&pg_keys, &mut out).await?;
            let mut again = Vec::new();
            for s in suspects {
                let (want, got) = (first.get(&s.key), theirs.get(&s.key));
                if want.map(|(r, _)| &r.values) == got.map(|r| &r.values) {
                    continue;
                }
                // Changed meanwhile, or the unit has not applied what PostgreSQL had: in flight.
                if !caught
                    || want.map(|(r, _)| &r.values) != second.get(&s.key).map(|(r, _)| &r.values)
                {
                    again.push(s);
                    continue;
                }
                out.findings.push(match (want, got) {
                    (Some((w, k)), None) => Finding::Missing(Box::new(w.clone()), k.clone()),
                    (None, Some(_)) => Finding::Extra(s.key.clone()),
                    (Some((w, k)), Some(g)) => {
                        Finding::Differs(Box::new(w.clone()), Box::new(g.clone()), k.clone())
                    }
                    (None, None) => continue,
                });
            }
            suspects = again;
        }
        out.unsettled = suspects.len() as u64;
        Ok(out)
    }
}
