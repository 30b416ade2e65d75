//! The statements of a round, generated per table (pure text, so they are unit-tested here).
//!
//! Every statement compares a row's `xmin` (the transaction or subtransaction that wrote the
//! version visible now) with the one recorded in `ponte_periodic_row` when it was last sent: a
//! different one is a change not sent yet, whatever its timestamps say.

use super::PeriodicTable;
use crate::lifecycle::catalog::quote;

/// `t.xmin` as a number, the form `ponte_periodic_row.row_xmin` keeps.
const XMIN: &str = "t.xmin::text::bigint";

/// The window of rows a round reads: with a change column and a low mark, the rows changed at
/// or after the mark (`$n`); otherwise every row (`$n` is still referenced so the statement
/// always has the same parameters).
fn window(table: &PeriodicTable, n: usize, windowed: bool) -> String {
    match (&table.change_column, windowed) {
        (Some(col), true) => format!("t.{} >= ${n}::timestamptz", quote(col)),
        _ => format!("(${n}::timestamptz IS NULL OR TRUE)"),
    }
}

/// `LEFT JOIN` of the recorded version, and the condition "changed since it was sent".
fn recorded(table: &PeriodicTable) -> (String, String) {
    (
        format!(
            "LEFT JOIN ponte_periodic_row s ON s.table_name = $1 AND s.row_key = {}",
            table.pg.key_text_array()
        ),
        format!("s.row_xmin IS DISTINCT FROM {XMIN}"),
    )
}

/// `jsonb_build_object('a', <img>->'a', ...)`: the key of a delete from a row image.
fn key_object(table: &PeriodicTable, img: &str) -> String {
    let pairs: Vec<String> = table
        .pg
        .key
        .iter()
        .map(|k| {
            let lit = k.name.replace('\'', "''");
            format!("'{lit}', {img}->'{lit}'")
        })
        .collect();
    format!("jsonb_build_object({})", pairs.join(", "))
}

/// One pass: up to `$2` changed rows of the window (after the key `$6..` when `after`), locked
/// `FOR SHARE` (rows another transaction holds are skipped and wait for the next round), their
/// outbox rows written and their versions recorded. Parameters: `$1` table name, `$2` limit,
/// `$3` low mark, `$4` units (int[]), `$5` units (text[]), `$6..` the last key of the previous
/// pass. Returns: candidates, routed, outbox rows written, last key (text[]), refused sample.
pub fn pass(table: &PeriodicTable, windowed: bool, after: bool) -> String {
    let (join, changed) = recorded(table);
    let after = if after {
        format!(" AND {}", table.pg.after(6))
    } else {
        String::new()
    };
    let op = table.upsert_op;
    let (unit_text, routed, unit_int) = match &table.pg.unit_expr {
        Some(expr) => (
            format!("({expr})::text"),
            "ponte_u = ANY($5::text[])".to_string(),
            "ponte_u::int".to_string(),
        ),
        None => (
            "NULL::text".to_string(),
            "TRUE".to_string(),
            "NULL::int".to_string(),
        ),
    };
    let send = match &table.pg.unit_expr {
        Some(_) => format!("SELECT ponte_u::int, $1, '{op}', ponte_img FROM ok ORDER BY ponte_n"),
        None => format!(
            "SELECT u, $1, '{op}', ponte_img FROM ok CROSS JOIN unnest($4::int[]) AS u \
             ORDER BY ponte_n, u"
        ),
    };
    // A routed row that moved to another unit: the unit it was at loses it.
    let moved = if table.pg.unit_expr.is_some() && table.deletes {
        "ponte_known AND ponte_old_u IS DISTINCT FROM ponte_u::int AND ponte_old_u = ANY($4::int[])"
    } else {
        "FALSE"
    };
    format!(
        "WITH c0 AS ( \
             SELECT t.*, to_jsonb(t) AS ponte_img, {karr} AS ponte_k, {XMIN} AS ponte_x, \
                 {unit_text} AS ponte_u, s.unit_id AS ponte_old_u, \
                 (s.row_key IS NOT NULL) AS ponte_known \
             FROM {rel} t {join} \
             WHERE {window}{after} AND {changed} \
             ORDER BY {order} LIMIT $2 FOR SHARE OF t SKIP LOCKED), \
         c AS (SELECT ponte_img, ponte_k, ponte_x, ponte_u, ponte_old_u, ponte_known, \
             row_number() OVER (ORDER BY {order}) AS ponte_n FROM c0 t), \
         ok AS (SELECT * FROM c WHERE {routed}), \
         rec AS ( \
             INSERT INTO ponte_periodic_row (table_name, row_key, row_xmin, unit_id) \
             SELECT $1, ponte_k, ponte_x, {unit_int} FROM ok \
             ON CONFLICT (table_name, row_key) DO UPDATE \
                 SET row_xmin = EXCLUDED.row_xmin, unit_id = EXCLUDED.unit_id \
             RETURNING 1), \
         gone AS ( \
             INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
             SELECT ponte_old_u, $1, 'D', {old_key} FROM ok WHERE {moved} ORDER BY ponte_n \
             RETURNING 1), \
         sent AS ( \
             INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) {send} \
             RETURNING 1) \
         SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM ok), \
             (SELECT count(*) FROM sent) + (SELECT count(*) FROM gone) \
                 + 0 * (SELECT count(*) FROM rec) + 0 * cardinality($5::text[]), \
             (SELECT ponte_k FROM c ORDER BY ponte_n DESC LIMIT 1), \
             (SELECT string_agg(array_to_string(r.ponte_k, '|') || ' -> ' \
                 || coalesce(r.ponte_u, 'NULL'), ', ') \
              FROM (SELECT ponte_k, ponte_u FROM c WHERE NOT ({routed}) ORDER BY ponte_n LIMIT 3) r)",
        karr = table.pg.key_text_array(),
        rel = table.pg.relation,
        window = window(table, 3, windowed),
        order = table.pg.key_list(),
        old_key = key_object(table, "ponte_img"),
    )
}

/// After the passes: the rows of the window still not sent (refused routing, or locked by
/// another transaction) and the earliest change column among them. `$1` table, `$2` low mark.
pub fn remaining(table: &PeriodicTable, windowed: bool) -> String {
    let (join, changed) = recorded(table);
    let earliest = match &table.change_column {
        Some(col) => format!("min(t.{})::timestamptz", quote(col)),
        None => "NULL::timestamptz".to_string(),
    };
    format!(
        "SELECT count(*), {earliest} FROM {rel} t {join} WHERE {window} AND {changed}",
        rel = table.pg.relation,
        window = window(table, 2, windowed),
    )
}

/// The recorded rows whose row is gone: deleted. With D allowed, one delete (the key) per unit
/// that had the row (every unit for an unrouted table). `$1` table, `$2` units (int[]).
/// Returns: recorded rows dropped, outbox rows written.
pub fn deletes(table: &PeriodicTable) -> String {
    let typed: Vec<String> = table
        .pg
        .key
        .iter()
        .enumerate()
        .map(|(i, k)| format!("CAST(s.row_key[{}] AS {})", i + 1, k.sql_type))
        .collect();
    let key = format!(
        "jsonb_build_object({})",
        table
            .pg
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!(
                "'{}', to_jsonb(CAST(g.row_key[{}] AS {}))",
                k.name.replace('\'', "''"),
                i + 1,
                k.sql_type
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let send = if table.deletes { "TRUE" } else { "FALSE" };
    format!(
        "WITH gone AS ( \
             DELETE FROM ponte_periodic_row s WHERE s.table_name = $1 \
             AND NOT EXISTS (SELECT 1 FROM {rel} t WHERE ({keys}) = ({typed})) \
             RETURNING s.row_key, s.unit_id), \
         outs AS ( \
             INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
             SELECT u, $1, 'D', {key} FROM gone g \
             JOIN unnest($2::int[]) AS u ON g.unit_id IS NULL OR g.unit_id = u \
             WHERE {send} ORDER BY u, g.row_key \
             RETURNING 1) \
         SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM outs)",
        rel = table.pg.relation,
        keys = table.pg.key_list(),
        typed = typed.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lifecycle::catalog::{KeyColumn, PgTable};

    fn table(unit_expr: Option<&str>, change: Option<&str>) -> PeriodicTable {
        PeriodicTable {
            pg: PgTable {
                name: "order_items".into(),
                relation: "\"public\".\"order_items\"".into(),
                key: vec![
                    KeyColumn {
                        name: "order_id".into(),
                        sql_type: "bigint".into(),
                    },
                    KeyColumn {
                        name: "line_no".into(),
                        sql_type: "integer".into(),
                    },
                ],
                unit_expr: unit_expr.map(str::to_string),
            },
            change_column: change.map(str::to_string),
            lookback: Duration::from_secs(1),
            every: Duration::from_secs(60),
            upsert_op: 'U',
            deletes: true,
        }
    }

    #[test]
    fn a_pass_skips_locked_rows_and_records_what_it_sends() {
        let sql = pass(&table(None, Some("changed_at")), true, true);
        assert!(sql.contains("FOR SHARE OF t SKIP LOCKED"), "{sql}");
        assert!(sql.contains("t.\"changed_at\" >= $3::timestamptz"), "{sql}");
        assert!(sql.contains("s.row_xmin IS DISTINCT FROM t.xmin::text::bigint"));
        assert!(sql.contains("CROSS JOIN unnest($4::int[]) AS u"));
        assert!(sql.contains("(t.\"order_id\", t.\"line_no\") > (CAST($6::text AS bigint)"));
        assert!(
            sql.contains("'D'") && sql.contains("WHERE FALSE"),
            "no moves unrouted"
        );
        let full = pass(&table(None, Some("changed_at")), false, false);
        assert!(full.contains("($3::timestamptz IS NULL OR TRUE)"));
        assert!(!full.contains("$6"));
    }

    #[test]
    fn a_routed_pass_refuses_unknown_units_and_moves_rows() {
        let sql = pass(&table(Some("t.\"unit_id\""), None), false, false);
        assert!(sql.contains("(t.\"unit_id\")::text AS ponte_u"));
        assert!(sql.contains("ok AS (SELECT * FROM c WHERE ponte_u = ANY($5::text[]))"));
        assert!(sql.contains("ponte_old_u IS DISTINCT FROM ponte_u::int"));
        assert!(sql.contains(
            "jsonb_build_object('order_id', ponte_img->'order_id', 'line_no', ponte_img->'line_no')"
        ));
    }

    #[test]
    fn deletes_send_the_typed_key_to_the_units_that_had_the_row() {
        let sql = deletes(&table(None, None));
        assert!(sql.contains(
            "(t.\"order_id\", t.\"line_no\") = (CAST(s.row_key[1] AS bigint), CAST(s.row_key[2] AS integer))"
        ));
        assert!(sql.contains("'order_id', to_jsonb(CAST(g.row_key[1] AS bigint))"));
        assert!(sql.contains("ON g.unit_id IS NULL OR g.unit_id = u"));
        let rem = remaining(&table(None, Some("changed_at")), true);
        assert!(rem.contains("min(t.\"changed_at\")::timestamptz"));
    }
}
