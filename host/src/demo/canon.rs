//! The canonical text form of each demo table on both sides: which PostgreSQL rows a unit must
//! have, the SQL that reads them on each side as text, and the normalisation that makes the two
//! comparable (exact decimals, 'S'/'N' and 0/1 flags, local timestamps with 4 fractional digits).

use std::collections::BTreeMap;

/// How a column's text is normalised before comparing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Compared exactly.
    Text,
    /// Fixed-width CHAR on the Firebird side: trailing blanks are padding.
    Char,
    /// JSON text: compared as a JSON value (key order and spacing do not matter).
    Json,
}

/// One column: its Firebird name and how it compares.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    /// Firebird column name (also the label in diffs).
    pub name: &'static str,
    /// Normalisation.
    pub kind: Kind,
}

/// Which PostgreSQL rows a unit receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every unit receives every row (customers, products).
    AllUnits,
    /// Only the unit in the row's first selected column (orders.unit_id, and items through it).
    OwnUnit,
}

/// One replicated table.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// PostgreSQL table (the `pg_sync_outbox.table_name`).
    pub pg_table: &'static str,
    /// Firebird table.
    pub fb_table: &'static str,
    /// The first `key_len` columns are the primary key.
    pub key_len: usize,
    /// Columns in the order both queries select them.
    pub cols: &'static [Col],
    /// Routing.
    pub scope: Scope,
    /// PostgreSQL: selects `unit_id` (NULL for [`Scope::AllUnits`]) then `cols` as text; `$1` (when
    /// present) is the table's time zone. Timestamps print as local time with 4 fractional
    /// digits, as Firebird's `CAST(ts AS VARCHAR(30))` does.
    pub pg_sql: &'static str,
    /// Firebird: selects `cols` as text.
    pub fb_sql: &'static str,
}

const fn col(name: &'static str) -> Col {
    Col {
        name,
        kind: Kind::Text,
    }
}

/// The demo tables, parents first.
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        pg_table: "customers",
        fb_table: "CLIENTES",
        key_len: 1,
        cols: &[
            col("ID"),
            col("NOME"),
            col("EMAIL"),
            col("CIDADE"),
            Col { name: "ATIVO", kind: Kind::Char },
            col("LIMITE_CREDITO"),
            col("DATA_NASCIMENTO"),
            Col { name: "REF_EXTERNA", kind: Kind::Char },
            Col { name: "ATRIBUTOS", kind: Kind::Json },
            col("ATUALIZADO_EM"),
        ],
        scope: Scope::AllUnits,
        pg_sql: "SELECT NULL::int, id::text, name, email, city, CASE WHEN active THEN 'S' ELSE 'N' END, \
                 credit_limit::text, to_char(birth_date, 'YYYY-MM-DD'), external_ref::text, \
                 attributes::text, \
                 to_char(updated_at AT TIME ZONE $1::text, 'YYYY-MM-DD HH24:MI:SS.FF4') FROM \
                 customers",
        fb_sql: "SELECT CAST(ID AS VARCHAR(20)), NOME, EMAIL, CIDADE, ATIVO, \
                 CAST(LIMITE_CREDITO AS VARCHAR(40)), CAST(DATA_NASCIMENTO AS VARCHAR(10)), \
                 REF_EXTERNA, ATRIBUTOS, CAST(ATUALIZADO_EM AS VARCHAR(30)) FROM CLIENTES",
    },
    TableSpec {
        pg_table: "products",
        fb_table: "PRODUTOS",
        key_len: 1,
        cols: &[
            col("ID"),
            col("SKU"),
            col("DESCRICAO"),
            col("PRECO"),
            col("ESTOQUE"),
            col("DESCONTINUADO"),
        ],
        scope: Scope::AllUnits,
        pg_sql: "SELECT NULL::int, id::text, sku, description, price::text, stock::text, \
                 CASE WHEN discontinued THEN '1' ELSE '0' END FROM products",
        fb_sql: "SELECT CAST(ID AS VARCHAR(20)), SKU, DESCRICAO, CAST(PRECO AS VARCHAR(40)), \
                 CAST(ESTOQUE AS VARCHAR(20)), CAST(DESCONTINUADO AS VARCHAR(6)) FROM PRODUTOS",
    },
    TableSpec {
        pg_table: "orders",
        fb_table: "PEDIDOS",
        key_len: 1,
        cols: &[
            col("ID"),
            col("CLIENTE_ID"),
            col("DATA_PEDIDO"),
            col("SITUACAO"),
            col("TOTAL"),
            col("OBSERVACAO"),
        ],
        scope: Scope::OwnUnit,
        pg_sql: "SELECT unit_id, id::text, customer_id::text, \
                 to_char(ordered_at AT TIME ZONE $1::text, 'YYYY-MM-DD HH24:MI:SS.FF4'), status, \
                 total::text, notes FROM orders",
        fb_sql: "SELECT CAST(ID AS VARCHAR(20)), CAST(CLIENTE_ID AS VARCHAR(20)), \
                 CAST(DATA_PEDIDO AS VARCHAR(30)), SITUACAO, CAST(TOTAL AS VARCHAR(40)), \
                 OBSERVACAO FROM PEDIDOS",
    },
    TableSpec {
        pg_table: "order_items",
        fb_table: "PEDIDO_ITENS",
        key_len: 2,
        cols: &[
            col("PEDIDO_ID"),
            col("ITEM"),
            col("PRODUTO_ID"),
            col("QUANTIDADE"),
            col("PRECO_UNITARIO"),
        ],
        scope: Scope::OwnUnit,
        pg_sql: "SELECT o.unit_id, i.order_id::text, i.line_no::text, i.product_id::text, \
                 i.quantity::text, i.unit_price::text \
                 FROM order_items i JOIN orders o ON o.id = i.order_id",
        fb_sql: "SELECT CAST(PEDIDO_ID AS VARCHAR(20)), CAST(ITEM AS VARCHAR(11)), \
                 CAST(PRODUTO_ID AS VARCHAR(20)), CAST(QUANTIDADE AS VARCHAR(40)), \
                 CAST(PRECO_UNITARIO AS VARCHAR(40)) FROM PEDIDO_ITENS",
    },
];

/// A row in canonical form: one optional text per column.
pub type Row = Vec<Option<String>>;

/// Rows keyed by their primary key text (key columns joined with `|`).
pub type RowSet = BTreeMap<String, Row>;

/// Normalises one value for comparison.
pub fn normalise(kind: Kind, value: Option<String>) -> Option<String> {
    let value = value?;
    Some(match kind {
        Kind::Text => value,
        Kind::Char => value.trim_end_matches(' ').to_string(),
        Kind::Json => match serde_json::from_str::<serde_json::Value>(&value) {
            // serde_json's map is ordered by key here, so this is a canonical compact form.
            Ok(v) => serde_json::to_string(&v).unwrap_or(value),
            Err(_) => value,
        },
    })
}

/// Normalises a whole row and returns it with its key.
pub fn keyed(spec: &TableSpec, raw: Vec<Option<String>>) -> (String, Row) {
    let row: Row = raw
        .into_iter()
        .zip(spec.cols.iter())
        .map(|(v, c)| normalise(c.kind, v))
        .collect();
    let key = row
        .iter()
        .take(spec.key_len)
        .map(|v| v.as_deref().unwrap_or("NULL"))
        .collect::<Vec<_>>()
        .join("|");
    (key, row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_compares_as_a_value() {
        let a = normalise(Kind::Json, Some(r#"{"b": 1, "a": "São"}"#.into()));
        let b = normalise(Kind::Json, Some(r#"{"a":"São","b":1}"#.into()));
        assert_eq!(a, b);
    }

    #[test]
    fn char_padding_is_ignored_and_keys_join() {
        assert_eq!(
            normalise(Kind::Char, Some("S   ".into())).as_deref(),
            Some("S")
        );
        let spec = &TABLES[3];
        let (key, _) = keyed(
            spec,
            vec![Some("10".into()), Some("2".into()), None, None, None],
        );
        assert_eq!(key, "10|2");
    }

    #[test]
    fn every_spec_selects_its_columns() {
        for t in TABLES {
            let fb_cols = t.fb_sql.matches(',').count() + 1;
            assert_eq!(fb_cols, t.cols.len(), "{}", t.fb_table);
        }
    }
}
