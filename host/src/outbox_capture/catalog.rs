//! What trigger capture needs from PostgreSQL's catalog about one `[tables.T] outbox = "trigger"`
//! table: the relation, its primary key (the delete payload and the units' row match), and a
//! routing column or expression that exists and can hold a unit id. Read-only.

use sqlx::PgConnection;

use super::OutboxCaptureError;
use crate::config::{Config, TableConfig};
use crate::model::Op;

/// Which units receive a row's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Every configured unit.
    All,
    /// The unit named by this column of the row (`unit_column`).
    Column(String),
    /// The unit this scalar expression gives, the row aliased `t` (`unit_sql`).
    Sql(String),
}

impl Route {
    /// The config's routing of `table`.
    pub fn of(table: &TableConfig) -> Route {
        match (&table.unit_column, &table.unit_sql) {
            (Some(c), _) => Route::Column(c.clone()),
            (None, Some(sql)) => Route::Sql(sql.clone()),
            (None, None) => Route::All,
        }
    }

    /// How reports and errors name it.
    pub fn describe(&self) -> String {
        match self {
            Route::All => "every unit".into(),
            Route::Column(c) => format!("column {c}"),
            Route::Sql(sql) => format!("unit_sql ({sql})"),
        }
    }
}

/// One table as the trigger generator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The `[tables]` name (the outbox `table_name`).
    pub name: String,
    /// The quoted relation (`"public"."orders"`).
    pub relation: String,
    /// Primary key columns in key order.
    pub key: Vec<String>,
    /// Routing.
    pub route: Route,
    /// The operations the whitelist allows (the trigger fires for these only).
    pub ops: Vec<Op>,
}

/// Double-quotes an identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Single-quotes a literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn table_error(table: &str, message: String) -> OutboxCaptureError {
    OutboxCaptureError::Table {
        table: table.to_string(),
        message,
    }
}

/// The schema of `pg_sync_outbox` (unquoted), where the trigger functions go; fails when
/// ponte's PostgreSQL migrations (up to 0005) have not run.
pub async fn outbox_schema(conn: &mut PgConnection) -> Result<String, OutboxCaptureError> {
    let (schema, record): (Option<String>, bool) = sqlx::query_as(
        "SELECT (SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n \
         ON n.oid = c.relnamespace WHERE c.oid = to_regclass('pg_sync_outbox')), \
         to_regclass('ponte_outbox_trigger') IS NOT NULL",
    )
    .fetch_one(&mut *conn)
    .await?;
    match (schema, record) {
        (Some(schema), true) => Ok(schema),
        (None, _) => Err(OutboxCaptureError::NotMigrated("pg_sync_outbox".into())),
        (Some(_), false) => Err(OutboxCaptureError::NotMigrated(
            "ponte_outbox_trigger (migration 0005)".into(),
        )),
    }
}

/// Reads and checks `[tables.name]` in PostgreSQL.
pub async fn resolve(
    conn: &mut PgConnection,
    config: &Config,
    name: &str,
) -> Result<TableSpec, OutboxCaptureError> {
    let Some(table) = config.tables.get(name) else {
        return Err(table_error(
            name,
            "not a configured table ([tables.NAME])".into(),
        ));
    };
    let pg = table.pg_table(name);
    let found: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT c.oid::bigint, c.relkind::text, quote_ident(n.nspname) || '.' || \
         quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = to_regclass($1)",
    )
    .bind(pg)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((oid, kind, relation)) = found else {
        return Err(table_error(
            name,
            format!(
                "PostgreSQL has no table `{pg}` (set [tables.{name}] pg_table to the table \
                 behind it)"
            ),
        ));
    };
    if kind != "r" && kind != "p" {
        return Err(table_error(
            name,
            format!("`{pg}` is not a table (relkind {kind}); triggers capture tables only"),
        ));
    }
    let key: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i \
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = $1::bigint::oid AND i.indisprimary ORDER BY k.n",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await?;
    if key.is_empty() {
        return Err(table_error(
            name,
            format!(
                "PostgreSQL table `{pg}` has no primary key; the trigger sends the key for a \
                 delete and the units match rows by it (add one: ALTER TABLE {relation} ADD \
                 PRIMARY KEY (...))"
            ),
        ));
    }
    let route = Route::of(table);
    match &route {
        Route::All => {}
        Route::Column(column) => check_column(conn, name, pg, oid, column).await?,
        Route::Sql(sql) => {
            // The expression is evaluated against the table itself, rolled back: unknown
            // columns, tables and syntax errors surface now, not in the business transaction.
            let probe = format!("SELECT ({sql}) FROM {relation} t LIMIT 0");
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let ran = sqlx::query(&probe).execute(&mut *tx).await;
            tx.rollback().await?;
            if let Err(e) = ran {
                let why = match &e {
                    sqlx::Error::Database(d) => d.message().to_string(),
                    other => other.to_string(),
                };
                return Err(table_error(
                    name,
                    format!("unit_sql ({sql}) does not run against `{pg}` (row aliased t): {why}"),
                ));
            }
        }
    }
    Ok(TableSpec {
        name: name.to_string(),
        relation,
        key,
        route,
        ops: table.ops.0.clone(),
    })
}

async fn check_column(
    conn: &mut PgConnection,
    name: &str,
    pg: &str,
    oid: i64,
    column: &str,
) -> Result<(), OutboxCaptureError> {
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), ty.typcategory::text \
         FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid \
         WHERE a.attrelid = $1::bigint::oid AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await?;
    let Some((_, sql_type, category)) = columns.iter().find(|(n, _, _)| n == column) else {
        let names: Vec<&str> = columns.iter().map(|(n, _, _)| n.as_str()).collect();
        return Err(table_error(
            name,
            format!(
                "unit_column `{column}` is not a column of `{pg}` (its columns: {})",
                names.join(", ")
            ),
        ));
    };
    // Numbers and text can hold a unit id; anything else never names a unit.
    if category != "N" && category != "S" {
        return Err(table_error(
            name,
            format!(
                "unit_column `{column}` of `{pg}` is {sql_type}; a unit id column is an integer \
                 (or text holding one)"
            ),
        ));
    }
    Ok(())
}
