//! Helpers for the upstream suites (Firebird -> PostgreSQL): the `[upstream]` config of the demo
//! tables, capture install on every unit, a legacy-style writer (plain SQL sessions on a unit's
//! Firebird in the database's own charset, ids from INDICE, exactly what a legacy program does),
//! and readers for comparisons.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ponte::firebird::FbConn;
use rsfbclient::prelude::*;

use crate::TestEnv;

/// Id block of the suites: unit N allocates ids in [N * 1e9, (N + 1) * 1e9).
pub const ID_BLOCK: i64 = 1_000_000_000;

/// `[upstream]` for CLIENTES (last_writer_wins on updated_at) and PRODUTOS (`products_policy`),
/// both fanned out to every other unit.
pub fn upstream_toml(products_policy: &str) -> String {
    format!(
        r#"
[upstream]
poll_interval_ms = 100
unit_timezone = "UTC"
fk_retry_secs = 5
[upstream.tables.CLIENTES]
pg_table = "customers"
key = ["id"]
transform = "generic"
conflict = "last_writer_wins"
version_column = "updated_at"
fanout = "all"
[upstream.tables.CLIENTES.settings]
target = "customers"
key = ["id"]
unmapped = "ignore"
[upstream.tables.CLIENTES.settings.columns]
ID = {{ column = "id", type = "bigint" }}
NOME = {{ column = "name", type = "text", max_len = 100, required = true }}
EMAIL = {{ column = "email", type = "text", max_len = 120 }}
CIDADE = {{ column = "city", type = "text", max_len = 60 }}
ATIVO = {{ column = "active", type = "bool_char", required = true }}
LIMITE_CREDITO = {{ column = "credit_limit", type = "decimal", precision = 18, scale = 2 }}
DATA_NASCIMENTO = {{ column = "birth_date", type = "date" }}
REF_EXTERNA = {{ column = "external_ref", type = "uuid" }}
ATRIBUTOS = {{ column = "attributes", type = "json_blob" }}
[upstream.tables.PRODUTOS]
pg_table = "products"
key = ["id"]
transform = "generic"
conflict = "{products_policy}"
fanout = "all"
[upstream.tables.PRODUTOS.settings]
target = "products"
key = ["id"]
[upstream.tables.PRODUTOS.settings.columns]
ID = {{ column = "id", type = "bigint" }}
SKU = {{ column = "sku", type = "text", max_len = 30, required = true }}
DESCRICAO = {{ column = "description", type = "text", max_len = 120, required = true }}
PRECO = {{ column = "price", type = "decimal", precision = 18, scale = 2, required = true }}
ESTOQUE = {{ column = "stock", type = "integer", required = true }}
DESCONTINUADO = {{ column = "discontinued", type = "bool_smallint", required = true }}
"#
    )
}

/// A test world with the upstream config, id ranges and capture installed on every unit.
pub async fn upstream_env(
    units: &[crate::UnitSpec],
    products_policy: &str,
) -> anyhow::Result<TestEnv> {
    let mut env = TestEnv::new(units).await?;
    env.units_toml = format!("id_block = {ID_BLOCK}");
    env.extra_toml = upstream_toml(products_policy);
    env.install_transforms(&["customers", "orders", "generic"])?;
    let config = env.config()?;
    ponte::capture::run_command(&config, &config.units(), true)
        .await
        .context("capture install")?;
    Ok(env)
}

/// A legacy program's session on a unit: the database's own charset, autocommit statements.
pub fn legacy_session(db: &str, charset: &str) -> anyhow::Result<FbConn> {
    let config = ponte::config::FirebirdConfig {
        user: "SYSDBA".into(),
        password: crate::fb_password(),
        charset: charset.into(),
        timeout_ms: 30_000,
    };
    ponte::firebird::connect(db, &config).with_context(|| format!("legacy session on {db}"))
}

/// Allocates the next id of `key` the way legacy programs do (INDICE + 1).
pub fn legacy_next_id(conn: &mut FbConn, key: &str) -> anyhow::Result<i64> {
    conn.begin_transaction()?;
    conn.execute(
        "UPDATE INDICE SET ULTIMO_ID = ULTIMO_ID + 1 WHERE TABELA = ?",
        (key.to_string(),),
    )?;
    let row: Option<(i64,)> = conn.query_first(
        "SELECT ULTIMO_ID FROM INDICE WHERE TABELA = ?",
        (key.to_string(),),
    )?;
    conn.commit()?;
    row.map(|(id,)| id).context("INDICE row missing")
}

/// One CLIENTES row as compared across the databases: id, name, email, city, active, credit.
pub type Cliente = (
    i64,
    String,
    Option<String>,
    Option<String>,
    bool,
    Option<String>,
);

/// A CLIENTES row as Firebird returns it (ATIVO as 'S'/'N').
pub type FbCliente = (
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

/// CLIENTES rows with ids in `[lo, hi)`, ordered by id.
pub fn fb_clientes(db: &str, lo: i64, hi: i64) -> anyhow::Result<Vec<Cliente>> {
    let mut conn = crate::firebird::connect(db)?;
    let rows: Vec<FbCliente> = conn.query(
        "SELECT ID, NOME, EMAIL, CIDADE, ATIVO, CAST(LIMITE_CREDITO AS VARCHAR(30)) FROM CLIENTES \
         WHERE ID >= ? AND ID < ? ORDER BY ID",
        (lo, hi),
    )?;
    let _ = conn.close();
    Ok(rows
        .into_iter()
        .map(|(id, n, e, c, a, l)| (id, n, e, c, a.trim() == "S", l))
        .collect())
}

/// customers rows with ids in `[lo, hi)`, ordered by id.
pub async fn pg_customers(env: &TestEnv, lo: i64, hi: i64) -> anyhow::Result<Vec<Cliente>> {
    Ok(sqlx::query_as(
        "SELECT id, name, email, city, active, credit_limit::text FROM customers WHERE id >= $1 AND id < $2 ORDER BY id",
    )
    .bind(lo)
    .bind(hi)
    .fetch_all(&env.pg)
    .await?)
}

/// Rows left in a unit's SYNC_LOG.
pub fn sync_log_count(db: &str) -> anyhow::Result<i64> {
    crate::firebird::scalar(db, "SELECT COUNT(*) FROM SYNC_LOG")
}

/// Polls `check` (blocking work allowed) every 250 ms until it returns Ok(true) or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let started = Instant::now();
    let mut last_err = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if started.elapsed() > limit {
            bail!("{what}: not reached after {limit:?} (last error: {last_err:?})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A legacy program at unit 2 (of 1..3) inserts a customer and then sets its city; waits until
/// units 1 and 3 show it (through upstream capture, PostgreSQL and the hub fan-out). Returns
/// its id.
pub async fn unit2_customer_reaches_units_1_and_3(env: &TestEnv) -> anyhow::Result<i64> {
    let writer = env.units[1].1.clone();
    let id = tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
        let mut conn = legacy_session(&writer, "UTF8")?;
        let id = legacy_next_id(&mut conn, "CLIENTES")?;
        conn.execute(
            "INSERT INTO CLIENTES (ID, NOME, ATIVO) VALUES (?, 'Loja dois', 'S')",
            (id,),
        )?;
        conn.execute(
            "UPDATE CLIENTES SET CIDADE = 'Ribeirão' WHERE ID = ?",
            (id,),
        )?;
        let _ = conn.close();
        Ok(id)
    })
    .await??;
    let (d1, d3) = (env.units[0].1.clone(), env.units[2].1.clone());
    wait_until(
        Duration::from_secs(90),
        "the unit-2 customer at units 1 and 3",
        || {
            let (d1, d3) = (d1.clone(), d3.clone());
            async move {
                let one =
                    tokio::task::spawn_blocking(move || fb_clientes(&d1, id, id + 1)).await??;
                let three =
                    tokio::task::spawn_blocking(move || fb_clientes(&d3, id, id + 1)).await??;
                let city = |r: &Vec<Cliente>| {
                    r.first().and_then(|c| c.3.clone()) == Some("Ribeirão".into())
                };
                Ok(city(&one) && city(&three))
            }
        },
    )
    .await?;
    Ok(id)
}

/// Starts a host with every role on a runtime of its own, so that dropping the runtime
/// (`shutdown_background`) kills it mid-await: no drain, connections cut.
pub async fn start_killable(config: ponte::config::Config) -> tokio::runtime::Runtime {
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = rt
            .block_on(ponte::daemon::start(
                std::sync::Arc::new(config),
                ponte::daemon::Roles::all(),
                tokio_util::sync::CancellationToken::new(),
            ))
            .unwrap();
        drop(running);
        rt
    })
    .await
    .unwrap()
}
