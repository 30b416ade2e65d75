//! What PostgreSQL's catalog says about a table, for `doctor` and `tables scaffold`: columns with
//! their types, lengths, precision and scale, nullability and generation, the primary key and the
//! CHECK constraints. Read-only; every query under the pool's statement timeout.

use sqlx::PgPool;

/// One PostgreSQL column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgColumn {
    /// Column name.
    pub name: String,
    /// `information_schema` data type (`integer`, `character varying`, `ARRAY`, ...).
    pub data_type: String,
    /// The type's own name (`int4`, `varchar`, `_int4`, `jsonb`).
    pub udt: String,
    /// Characters of `varchar(n)` / `char(n)`.
    pub max_len: Option<i32>,
    /// Precision of `numeric(p, s)`.
    pub precision: Option<i32>,
    /// Scale of `numeric(p, s)`.
    pub scale: Option<i32>,
    /// Allows NULL.
    pub nullable: bool,
    /// `GENERATED ALWAYS AS (...) STORED`.
    pub generated: bool,
}

/// `schema.table` -> (schema, table); a bare name is in `public`.
pub fn split_name(table: &str) -> (String, String) {
    match table.split_once('.') {
        Some((s, t)) => (s.to_string(), t.to_string()),
        None => ("public".to_string(), table.to_string()),
    }
}

type ColumnRow = (
    String,
    String,
    String,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    String,
    String,
);

/// The columns of `table` in position order (empty when it does not exist).
pub async fn columns(pool: &PgPool, table: &str) -> Result<Vec<PgColumn>, sqlx::Error> {
    let (schema, name) = split_name(table);
    let rows: Vec<ColumnRow> = sqlx::query_as(
        "SELECT column_name::text, data_type::text, udt_name::text, \
         character_maximum_length::int, numeric_precision::int, numeric_scale::int, \
         is_nullable::text, is_generated::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
    )
    .bind(&schema)
    .bind(&name)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(name, data_type, udt, max_len, precision, scale, nullable, generated)| PgColumn {
                name,
                data_type,
                udt,
                max_len,
                precision,
                scale,
                nullable: nullable == "YES",
                generated: generated == "ALWAYS",
            },
        )
        .collect())
}

/// The primary key columns of `table`, in key order.
pub async fn primary_key(pool: &PgPool, table: &str) -> Result<Vec<String>, sqlx::Error> {
    let (schema, name) = split_name(table);
    sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
         WHERE i.indisprimary AND n.nspname = $1 AND c.relname = $2 ORDER BY k.ord",
    )
    .bind(&schema)
    .bind(&name)
    .fetch_all(pool)
    .await
}

/// The CHECK constraints of `table` as `pg_get_constraintdef` writes them.
pub async fn checks(pool: &PgPool, table: &str) -> Result<Vec<String>, sqlx::Error> {
    let (schema, name) = split_name(table);
    sqlx::query_scalar(
        "SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE k.contype = 'c' AND n.nspname = $1 AND c.relname = $2",
    )
    .bind(&schema)
    .bind(&name)
    .fetch_all(pool)
    .await
}

/// The ordinary tables of the `public` schema, ponte's own left out.
pub async fn tables(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name",
    )
    .fetch_all(pool)
    .await?;
    Ok(names
        .into_iter()
        .filter(|n| !crate::model::is_own_table(n))
        .collect())
}

/// What doctor needs from PostgreSQL about one table.
#[derive(Debug, Clone, Default)]
pub struct PgFacts {
    /// Its columns (empty: the table does not exist).
    pub columns: Vec<PgColumn>,
    /// Its CHECK constraints.
    pub checks: Vec<String>,
}

/// Reads [`PgFacts`] of `table`.
pub async fn facts(pool: &PgPool, table: &str) -> Result<PgFacts, sqlx::Error> {
    Ok(PgFacts {
        columns: columns(pool, table).await?,
        checks: checks(pool, table).await?,
    })
}
