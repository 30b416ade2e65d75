//! Legacy key generators kept ahead of replicated ids, inside the apply transaction (like the
//! INDICE raise): for each table with a `generator`, the highest id the batch wrote (in this
//! unit's id range, when ranges are installed) pushes the generator to at least that id.
//!
//! Generators are not transactional, so the raise is one statement that can only move the
//! generator forward: `GEN_ID(G, MAXVALUE(0, id - GEN_ID(G, 0)))`. The site may allocate between
//! the read and the increment; each of its allocations only adds, and the increment is computed
//! from a value no larger than the generator's value at increment time, so the result is at least
//! `id` and never lower than before. It runs before the commit that makes the replicated rows
//! visible, so no allocation after that commit can hand out a replicated id. A rollback leaves
//! the raise in place: a gap in the site's ids, never a duplicate. Why: docs/legacy.md.

use std::collections::BTreeMap;

use rsfbclient::prelude::*;
use rsfbclient::FbError;

use super::apply::Prepared;
use super::connect::FbConn;
use crate::model::Op;

/// `[tables]` entry -> the generator that feeds its key at the units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generators(pub BTreeMap<String, String>);

impl Generators {
    /// The highest id per generator that `batch` writes (inserts and updates whose row key is
    /// one integer, or whose transform claimed ids), inside `range` when one is set.
    pub fn targets(&self, batch: &[Prepared], range: Option<(i64, i64)>) -> BTreeMap<&str, i64> {
        let mut out: BTreeMap<&str, i64> = BTreeMap::new();
        if self.0.is_empty() {
            return out;
        }
        for change in batch.iter().filter(|c| c.op != Op::Delete) {
            let Some(generator) = self.0.get(&change.table) else {
                continue;
            };
            let claimed = change.output.id_claims.iter().map(|c| c.id).max();
            let Some(id) = claimed.or_else(|| change.output.row_key.parse::<i64>().ok()) else {
                continue;
            };
            if range.is_some_and(|(low, high)| id < low || id >= high) {
                continue;
            }
            let at = out.entry(generator.as_str()).or_insert(id);
            *at = (*at).max(id);
        }
        out
    }
}

/// The statement that moves `generator` to at least the bound id, never back.
pub fn raise_sql(generator: &str) -> String {
    let g = generator.replace('"', "\"\"");
    format!(
        "SELECT GEN_ID(\"{g}\", \
         MAXVALUE(CAST(0 AS BIGINT), CAST(? AS BIGINT) - GEN_ID(\"{g}\", 0))) FROM RDB$DATABASE"
    )
}

/// Raises every generator of `batch` past its replicated ids (inside the caller's transaction).
pub fn raise_generators(
    conn: &mut FbConn,
    generators: &Generators,
    batch: &[Prepared],
    range: Option<(i64, i64)>,
) -> Result<(), FbError> {
    for (generator, id) in generators.targets(batch, range) {
        let _: Option<(i64,)> = conn.query_first(&raise_sql(generator), (id,))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IdClaim, Output};

    fn change(table: &str, op: Op, key: &str, claim: Option<i64>) -> Prepared {
        Prepared {
            correlation_id: key.into(),
            sequence: 1,
            table: table.into(),
            op,
            output: Output {
                row_key: key.into(),
                statements: vec![],
                id_claims: claim
                    .map(|id| IdClaim {
                        indice_key: "K".into(),
                        id,
                    })
                    .into_iter()
                    .collect(),
            },
        }
    }

    #[test]
    fn the_highest_written_id_per_generator_inside_the_range() {
        let g = Generators(BTreeMap::from([
            ("items".to_string(), "GEN_ITENS".to_string()),
            ("hist".to_string(), "GEN_HIST".to_string()),
        ]));
        let batch = vec![
            change("items", Op::Insert, "7", None),
            change("items", Op::Update, "12", None),
            change("items", Op::Delete, "99", None),
            change("hist", Op::Insert, "3|4", Some(40)),
            change("other", Op::Insert, "500", None),
            change("hist", Op::Insert, "a|b", None),
        ];
        let t = g.targets(&batch, None);
        assert_eq!(t.get("GEN_ITENS"), Some(&12));
        assert_eq!(t.get("GEN_HIST"), Some(&40));
        assert_eq!(t.len(), 2);
        let t = g.targets(&batch, Some((10, 20)));
        assert_eq!(t.get("GEN_ITENS"), Some(&12));
        assert_eq!(t.get("GEN_HIST"), None);
    }

    #[test]
    fn the_raise_only_moves_forward() {
        let sql = raise_sql("GEN_ITENS");
        assert!(sql
            .contains("MAXVALUE(CAST(0 AS BIGINT), CAST(? AS BIGINT) - GEN_ID(\"GEN_ITENS\", 0))"));
    }
}
