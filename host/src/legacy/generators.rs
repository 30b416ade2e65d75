//! Generators moved into a unit's id range by `capture install` (docs/legacy.md): like INDICE,
//! each declared generator is raised to the start of the unit's range `[low, high)` so the ids
//! the site hands out from then on are its own; one already beyond the range is refused.

use rsfbclient::prelude::*;
use rsfbclient::FbError;

use super::catalog::generator_value;
use super::targets::generators;
use crate::config::Config;
use crate::firebird::{raise_sql, FbConn};

/// A generator raised into a unit's range: (name, old value, new value).
pub type GeneratorMove = (String, i64, i64);

/// Raises every declared generator to at least `low`; refuses (before changing any) one that
/// does not exist or is at or past `high - 1`.
pub fn generators_into_range(
    conn: &mut FbConn,
    config: &Config,
    low: i64,
    high: i64,
) -> Result<Vec<GeneratorMove>, FbError> {
    let mut names: Vec<String> = generators(config).0.into_values().collect();
    names.sort();
    names.dedup();
    let mut current = Vec::with_capacity(names.len());
    for name in names {
        let value = generator_value(conn, &name)?.ok_or_else(|| {
            FbError::Other(format!(
                "generator {name} (declared in [tables]) does not exist on this unit"
            ))
        })?;
        if value >= high - 1 {
            return Err(FbError::Other(format!(
                "generator {name} is at {value}, past this unit's id range [{low}, {high}): \
                 its site has handed out ids another unit owns; raise [units] id_block or \
                 renumber, nothing was changed"
            )));
        }
        current.push((name, value));
    }
    let mut moved = Vec::new();
    for (name, value) in current {
        if value < low {
            let _: Option<(i64,)> = conn.query_first(&raise_sql(&name), (low,))?;
            moved.push((name, value, low));
        }
    }
    Ok(moved)
}
