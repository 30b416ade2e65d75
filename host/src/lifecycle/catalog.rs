//! What `load`, `verify` and `repair` need to know about a configured table on the PostgreSQL
//! side: its relation, primary key (names and types, in order), which unit a row goes to, and the
//! order in which tables must be loaded so parents arrive before their children.

use anyhow::{bail, Context};
use sqlx::PgPool;

use crate::config::Config;

/// One primary-key column of a PostgreSQL table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    /// Column name.
    pub name: String,
    /// Its type as `format_type` prints it (for casting bound text back).
    pub sql_type: String,
}

/// A configured table as the lifecycle commands read it.
#[derive(Debug, Clone)]
pub struct PgTable {
    /// The `[tables.X]` name (the outbox `table_name`).
    pub name: String,
    /// The quoted PostgreSQL relation (`"public"."orders"`).
    pub relation: String,
    /// Primary key columns in key order.
    pub key: Vec<KeyColumn>,
    /// SQL (row aliased `t`) giving the unit a row goes to; `None`: every unit.
    pub unit_expr: Option<String>,
}

/// Double-quotes an identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PgTable {
    /// `t."a", t."b"`.
    pub fn key_list(&self) -> String {
        self.key
            .iter()
            .map(|k| format!("t.{}", quote(&k.name)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `ARRAY[t."a"::text, ...]`.
    pub fn key_text_array(&self) -> String {
        let cols: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("t.{}::text", quote(&k.name)))
            .collect();
        format!("ARRAY[{}]", cols.join(", "))
    }

    /// `(t."a", t."b") > ($first::type_a, ...)`: the keyset condition after a key bound as text.
    pub fn after(&self, first: usize) -> String {
        let binds: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("CAST(${}::text AS {})", first + i, k.sql_type))
            .collect();
        format!("({}) > ({})", self.key_list(), binds.join(", "))
    }

    /// `(t."a", t."b") <= (...)`.
    pub fn up_to(&self, first: usize) -> String {
        self.after(first).replacen(") > (", ") <= (", 1)
    }

    /// The rows of `unit` only (`TRUE` when every unit receives every row); `$n` is the unit.
    pub fn unit_filter(&self, n: usize) -> String {
        match &self.unit_expr {
            Some(expr) => format!("({expr}) = ${n}::int"),
            None => format!("${n}::int IS NOT NULL"),
        }
    }
}

/// The configured tables named in `filter` (all when empty), each checked in PostgreSQL, parents
/// before children by the foreign keys between them.
pub async fn resolve(
    pool: &PgPool,
    config: &Config,
    filter: &[String],
) -> anyhow::Result<Vec<PgTable>> {
    for name in filter {
        if !config.tables.contains_key(name) {
            let known: Vec<&str> = config.tables.keys().map(String::as_str).collect();
            bail!(
                "--table {name}: not a configured table ([tables.{name}] is missing; \
                 configured: {})",
                known.join(", ")
            );
        }
    }
    let mut tables = Vec::new();
    for (name, t) in &config.tables {
        if !filter.is_empty() && !filter.contains(name) {
            continue;
        }
        let relation_name = t.pg_table(name);
        let oid: Option<i64> = sqlx::query_scalar("SELECT to_regclass($1)::oid::bigint")
            .bind(relation_name)
            .fetch_one(pool)
            .await
            .with_context(|| format!("looking up PostgreSQL table {relation_name}"))?;
        let Some(oid) = oid else {
            bail!(
                "table {name}: PostgreSQL has no relation `{relation_name}` (set [tables.{name}] \
                 pg_table to the PostgreSQL table behind it)"
            );
        };
        let key: Vec<(String, String)> = sqlx::query_as(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
             FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1::bigint::oid AND i.indisprimary ORDER BY k.n",
        )
        .bind(oid)
        .fetch_all(pool)
        .await
        .with_context(|| format!("reading the primary key of {relation_name}"))?;
        if key.is_empty() {
            bail!(
                "table {name}: PostgreSQL table `{relation_name}` has no primary key; load, verify \
                 and repair cut tables by primary key (add one, e.g. ALTER TABLE {relation_name} \
                 ADD PRIMARY KEY (...))"
            );
        }
        let relation: String = sqlx::query_scalar(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = $1::bigint::oid",
        )
        .bind(oid)
        .fetch_one(pool)
        .await?;
        tables.push((
            oid,
            PgTable {
                name: name.clone(),
                relation,
                key: key
                    .into_iter()
                    .map(|(name, sql_type)| KeyColumn { name, sql_type })
                    .collect(),
                unit_expr: t.unit_expr(),
            },
        ));
    }
    parents_first(pool, tables).await
}

/// Orders tables so that a table referenced by another's foreign key comes first (a cycle keeps
/// the configuration's order for the tables in it).
async fn parents_first(pool: &PgPool, tables: Vec<(i64, PgTable)>) -> anyhow::Result<Vec<PgTable>> {
    let oids: Vec<i64> = tables.iter().map(|(o, _)| *o).collect();
    let edges: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT conrelid::bigint, confrelid::bigint FROM pg_constraint \
         WHERE contype = 'f' AND conrelid::bigint = ANY($1) AND confrelid::bigint = ANY($1) \
         AND conrelid <> confrelid",
    )
    .bind(&oids)
    .fetch_all(pool)
    .await
    .context("reading foreign keys between the configured tables")?;
    let mut pending = tables;
    let mut ordered: Vec<(i64, PgTable)> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|(child, _)| {
            edges.iter().all(|(c, parent)| {
                c != child
                    || ordered.iter().any(|(o, _)| o == parent)
                    || !pending.iter().any(|(o, _)| o == parent)
            })
        });
        // A cycle: take the first remaining one.
        let next = pending.remove(ready.unwrap_or(0));
        ordered.push(next);
    }
    Ok(ordered.into_iter().map(|(_, t)| t).collect())
}
