//! No echo for periodic tables: when the upstream applier writes a row of a periodic table (a
//! change made at a unit), it records the row's new version in `ponte_periodic_row` in the same
//! transaction. The next round then sees the version as sent — the applier's fan-out already
//! carried it to the other units — and sends nothing, least of all back to the unit it came from.

use sqlx::PgConnection;

use crate::lifecycle::catalog::PgTable;

/// How the upstream applier records its writes to one periodic table.
#[derive(Debug, Clone)]
pub struct EchoSpec {
    /// The `[tables]` name (the shadow's `table_name`).
    table: String,
    /// `ARRAY[t."a"::text, ...]` in primary-key order.
    key_array: String,
    /// `ARRAY[CAST($i AS type)::text, ...]`: the same from the upstream key parameters.
    key_params: String,
    /// The unit a row goes to (`NULL::int`: every unit).
    unit_int: String,
}

impl EchoSpec {
    /// The spec for `table`, whose upstream key columns are `upstream_key` (the order of the
    /// applier's `$1..$n`); `None` when that key does not hold the whole primary key.
    pub fn new(table: &PgTable, upstream_key: &[String]) -> Option<EchoSpec> {
        let mut params = Vec::with_capacity(table.key.len());
        for k in &table.key {
            let i = upstream_key
                .iter()
                .position(|u| u.eq_ignore_ascii_case(&k.name))?;
            params.push(format!("CAST(${} AS {})::text", i + 1, k.sql_type));
        }
        Some(EchoSpec {
            table: table.name.clone(),
            key_array: table.key_text_array(),
            key_params: format!("ARRAY[{}]", params.join(", ")),
            unit_int: match &table.unit_expr {
                Some(expr) => {
                    format!("CASE WHEN ({expr})::text ~ '^-?[0-9]+$' THEN ({expr})::int END")
                }
                None => "NULL::int".into(),
            },
        })
    }

    /// Records the row the applier just wrote (`relation` aliased `t`, found by `cond` over
    /// `keys` as `$1..$n`), or forgets it when the change deleted it.
    pub async fn note(
        &self,
        conn: &mut PgConnection,
        relation: &str,
        cond: &str,
        keys: &[String],
        deleted: bool,
    ) -> Result<(), sqlx::Error> {
        let n = keys.len() + 1;
        let sql = if deleted {
            format!(
                "DELETE FROM ponte_periodic_row WHERE table_name = ${n} AND row_key = {}",
                self.key_params
            )
        } else {
            format!(
                "INSERT INTO ponte_periodic_row (table_name, row_key, row_xmin, unit_id) \
                 SELECT ${n}, {}, t.xmin::text::bigint, {} FROM {relation} t WHERE {cond} \
                 ON CONFLICT (table_name, row_key) DO UPDATE \
                     SET row_xmin = EXCLUDED.row_xmin, unit_id = EXCLUDED.unit_id",
                self.key_array, self.unit_int
            )
        };
        let mut q = sqlx::query(&sql);
        for k in keys {
            q = q.bind(k);
        }
        q.bind(&self.table).execute(conn).await.map(|_| ())
    }
}
