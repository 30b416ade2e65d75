//! Helpers for the legacy suites: a legacy item schema with its own triggers at the units and
//! the matching PostgreSQL tables, writes through the outbox, and row-by-row readers of both
//! sides as text.

use std::time::Duration;

use anyhow::Context;
use rsfbclient::prelude::*;
use rsfbclient::Row;

use crate::TestEnv;

/// PostgreSQL side of the item schema.
pub const PG_ITEMS: &str = "
CREATE TABLE leg_items (id bigint PRIMARY KEY, name varchar(60) NOT NULL,
    price numeric(18,2) NOT NULL, stamp bigint);
CREATE TABLE leg_item_hist (id bigint PRIMARY KEY, item_id bigint NOT NULL,
    old_price numeric(18,2), new_price numeric(18,2));
CREATE TABLE leg_plain (id bigint PRIMARY KEY, name varchar(60) NOT NULL);
";

/// The unit side: a generator-fed key (only when NULL), a generator stamp on a replicated
/// column, and an AFTER UPDATE history trigger writing another replicated table.
pub const FB_ITEMS: &str = "
CREATE TABLE ITENS (ID BIGINT NOT NULL PRIMARY KEY, NAME VARCHAR(60) NOT NULL,
    PRICE NUMERIC(18,2) NOT NULL, STAMP BIGINT);
CREATE TABLE ITENS_HIST (ID BIGINT NOT NULL PRIMARY KEY, ITEM_ID BIGINT NOT NULL,
    OLD_PRICE NUMERIC(18,2), NEW_PRICE NUMERIC(18,2));
CREATE TABLE PLAIN (ID BIGINT NOT NULL PRIMARY KEY, NAME VARCHAR(60) NOT NULL);
CREATE GENERATOR GEN_ITENS;
CREATE GENERATOR GEN_STAMP;
CREATE GENERATOR GEN_HIST;
CREATE GENERATOR GEN_PLAIN;
SET TERM ^ ;
CREATE TRIGGER ITENS_BI_ID FOR ITENS ACTIVE BEFORE INSERT POSITION 0 AS
BEGIN
  IF (NEW.ID IS NULL) THEN NEW.ID = GEN_ID(GEN_ITENS, 1);
END^
CREATE TRIGGER ITENS_BIU_STAMP FOR ITENS ACTIVE BEFORE INSERT OR UPDATE POSITION 1 AS
BEGIN
  /* the vendor's change stamp */
  NEW.STAMP = GEN_ID(GEN_STAMP, 1);
END^
CREATE TRIGGER ITENS_AU_HIST FOR ITENS ACTIVE AFTER UPDATE POSITION 5 AS
  DECLARE VARIABLE N BIGINT;
BEGIN
  IF (NEW.PRICE IS DISTINCT FROM OLD.PRICE) THEN
  BEGIN
    N = GEN_ID(GEN_HIST, 1);
    INSERT INTO ITENS_HIST (ID, ITEM_ID, OLD_PRICE, NEW_PRICE)
      VALUES (:N, NEW.ID, OLD.PRICE, NEW.PRICE); -- history, Portuguese: histórico
  END
END^
CREATE TRIGGER PLAIN_BI FOR PLAIN ACTIVE BEFORE INSERT POSITION 0 AS
BEGIN
  IF (NEW.ID IS NULL) THEN NEW.ID = GEN_ID(GEN_PLAIN, 1);
END^
SET TERM ; ^
";

/// `[tables]` of the item schema (generic transform); `items_extra` goes into
/// `[tables.leg_items]`, `plain_extra` into `[tables.leg_plain]`.
pub fn items_toml(items_extra: &str, plain_extra: &str) -> String {
    format!(
        r#"
[tables.leg_items]
ops = "IUD"
transform = "generic"
{items_extra}
[tables.leg_items.settings]
target = "ITENS"
key = ["ID"]
[tables.leg_items.settings.columns]
id = {{ column = "ID", type = "bigint" }}
name = {{ column = "NAME", type = "text", max_len = 60, required = true }}
price = {{ column = "PRICE", type = "decimal", precision = 18, scale = 2, required = true }}
stamp = {{ column = "STAMP", type = "bigint" }}
[tables.leg_item_hist]
ops = "IUD"
transform = "generic"
[tables.leg_item_hist.settings]
target = "ITENS_HIST"
key = ["ID"]
[tables.leg_item_hist.settings.columns]
id = {{ column = "ID", type = "bigint" }}
item_id = {{ column = "ITEM_ID", type = "bigint", required = true }}
old_price = {{ column = "OLD_PRICE", type = "decimal", precision = 18, scale = 2 }}
new_price = {{ column = "NEW_PRICE", type = "decimal", precision = 18, scale = 2 }}
[tables.leg_plain]
ops = "IUD"
transform = "generic"
{plain_extra}
[tables.leg_plain.settings]
target = "PLAIN"
key = ["ID"]
[tables.leg_plain.settings.columns]
id = {{ column = "ID", type = "bigint" }}
name = {{ column = "NAME", type = "text", max_len = 60, required = true }}
"#
    )
}

/// Runs DDL on every unit of `env` (isql, as a vendor's script would).
pub fn unit_ddl(env: &TestEnv, ddl: &str) -> anyhow::Result<()> {
    for (_, db) in &env.units {
        let script = format!(
            "CONNECT '{db}' USER 'SYSDBA' PASSWORD '{}';\n{ddl}\nCOMMIT;\n",
            crate::fb_password()
        );
        crate::firebird::isql(&script).with_context(|| format!("DDL on {db}"))?;
    }
    Ok(())
}

/// Runs `sql` (business statements) and then, in the same transaction, `outbox` — statements
/// that write the outbox rows for every unit (`{units}` is replaced by `ARRAY[..]`).
pub async fn write(env: &TestEnv, sql: &str, outbox: &str) -> anyhow::Result<()> {
    let units: Vec<String> = env.units.iter().map(|(id, _)| id.to_string()).collect();
    let outbox = outbox.replace("{units}", &format!("ARRAY[{}]", units.join(",")));
    sqlx::raw_sql(&format!("BEGIN; {sql}; {outbox}; COMMIT;"))
        .execute(&env.pg)
        .await
        .context("PostgreSQL write")?;
    Ok(())
}

/// The outbox statement for the rows of `table` selected by `filter` (alias `t`), op `op`,
/// every unit, in `order`.
pub fn outbox_rows(table: &str, op: &str, filter: &str, order: &str) -> String {
    format!(
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT u, '{table}', '{op}', to_jsonb(t) FROM {table} t, unnest({{units}}) u \
         WHERE {filter} ORDER BY u, {order}"
    )
}

/// Rows of a PostgreSQL query, every column as text.
pub async fn pg_rows(env: &TestEnv, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    use sqlx::Row as _;
    let rows = sqlx::query(sql).fetch_all(&env.pg).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            values.push(row.try_get::<Option<String>, _>(i)?);
        }
        out.push(values);
    }
    Ok(out)
}

/// Rows of a Firebird query on `db`, every column as text (cast them in the query).
pub fn fb_rows(db: &str, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    let mut conn = crate::firebird::connect(db)?;
    let rows: Vec<Row> = conn.query(sql, ())?;
    let _ = conn.close();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values = Vec::with_capacity(row.cols.len());
        for i in 0..row.cols.len() {
            values.push(
                row.get::<Option<String>>(i)?
                    .map(|s| s.trim_end().to_string()),
            );
        }
        out.push(values);
    }
    Ok(out)
}

/// Waits until every unit's ledger holds as many changes as the outbox has rows for it.
pub async fn wait_applied(env: &TestEnv, limit: Duration) -> anyhow::Result<()> {
    env.wait_outbox_drained(limit).await?;
    for (id, db) in &env.units {
        let expected: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox WHERE unit_id = $1")
                .bind(id)
                .fetch_one(&env.pg)
                .await?;
        let db = db.clone();
        crate::upstream::wait_until(limit, &format!("unit {id} applied {expected}"), || {
            let db = db.clone();
            async move {
                let rows = fb_rows(
                    &db,
                    "SELECT CAST(COUNT(*) AS VARCHAR(20)) FROM SYNC_CONTROL",
                )?;
                let n: i64 = rows
                    .first()
                    .and_then(|r| r.first().cloned().flatten())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(-1);
                Ok(n >= expected)
            }
        })
        .await?;
    }
    Ok(())
}

/// The item rows of PostgreSQL, as the unit compares them.
pub const PG_ITEMS_SELECT: &str =
    "SELECT id::text, name, price::text, stamp::text FROM leg_items t ORDER BY t.id";
/// The item rows of a unit.
pub const FB_ITEMS_SELECT: &str = "SELECT CAST(ID AS VARCHAR(20)), NAME, \
     CAST(PRICE AS VARCHAR(30)), CAST(STAMP AS VARCHAR(20)) FROM ITENS ORDER BY ID";
/// The history rows of PostgreSQL.
pub const PG_HIST_SELECT: &str = "SELECT id::text, item_id::text, old_price::text, \
     new_price::text FROM leg_item_hist t ORDER BY t.id";
/// The history rows of a unit.
pub const FB_HIST_SELECT: &str = "SELECT CAST(ID AS VARCHAR(20)), CAST(ITEM_ID AS VARCHAR(20)), \
     CAST(OLD_PRICE AS VARCHAR(30)), CAST(NEW_PRICE AS VARCHAR(30)) FROM ITENS_HIST ORDER BY ID";
