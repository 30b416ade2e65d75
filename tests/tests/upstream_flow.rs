//! Firebird -> PostgreSQL -> the other units, on the real servers: a legacy-style writer (plain
//! SQL sessions in WIN1252 on unit 2, ids from INDICE) inserts, updates and deletes customers and
//! products; PostgreSQL and units 1 and 3 converge row by row with accents intact; nothing echoes
//! (ponte's own writes are never captured, counts stop growing once quiet); ids allocated at the
//! units stay in their ranges even after replicated ids from PostgreSQL and other units arrive.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::upstream::{
    fb_clientes, legacy_next_id, legacy_session, pg_customers, sync_log_count, upstream_env,
    wait_until, Cliente, ID_BLOCK,
};
use ponte_tests::{TestEnv, UnitSpec};
use rsfbclient::prelude::*;

const UNITS: [UnitSpec; 3] = [
    UnitSpec {
        id: 1,
        charset: "UTF8",
    },
    UnitSpec {
        id: 2,
        charset: "WIN1252",
    },
    UnitSpec {
        id: 3,
        charset: "ISO8859_1",
    },
];

fn db(env: &TestEnv, unit: i32) -> String {
    env.units
        .iter()
        .find(|(id, _)| *id == unit)
        .map(|(_, d)| d.clone())
        .unwrap()
}

/// The legacy program at unit 2: 40 customers and 10 products in, 15 customers and 3 products
/// updated, 8 customers and 2 products deleted. Returns the customer ids it allocated.
fn legacy_workload(db: &str) -> anyhow::Result<Vec<i64>> {
    let mut conn = legacy_session(db, "WIN1252")?;
    let mut ids = Vec::new();
    for i in 0..40 {
        let id = legacy_next_id(&mut conn, "CLIENTES")?;
        conn.execute(
            "INSERT INTO CLIENTES (ID, NOME, EMAIL, CIDADE, ATIVO, LIMITE_CREDITO, DATA_NASCIMENTO, ATRIBUTOS) \
             VALUES (?, ?, ?, ?, 'S', ?, '1980-02-29', ?)",
            (
                id,
                format!("João Ação Müller nº{i}"),
                if i % 3 == 0 { None } else { Some(format!("joao{i}@exemplo.com.br")) },
                "São Paulo, Ribeirão".to_string(),
                format!("{i}999999999999.99"),
                format!("{{\"loja\": \"Conceição\", \"n\": {i}}}"),
            ),
        )?;
        ids.push(id);
    }
    for (i, id) in ids.iter().enumerate().take(15) {
        conn.execute(
            "UPDATE CLIENTES SET NOME = ?, ATIVO = 'N', CIDADE = NULL WHERE ID = ?",
            (format!("Åsa Ñandú atualizada {i}"), *id),
        )?;
    }
    for id in ids.iter().skip(30).take(8) {
        conn.execute("DELETE FROM CLIENTES WHERE ID = ?", (*id,))?;
    }
    let mut products = Vec::new();
    for i in 0..10 {
        let id = legacy_next_id(&mut conn, "PRODUTOS")?;
        conn.execute(
            "INSERT INTO PRODUTOS (ID, SKU, DESCRICAO, PRECO, ESTOQUE, DESCONTINUADO) VALUES (?, ?, ?, ?, ?, 0)",
            (id, format!("SKU-{i}"), format!("Café moído nº{i}"), "12.34".to_string(), i),
        )?;
        products.push(id);
    }
    for id in products.iter().take(3) {
        conn.execute(
            "UPDATE PRODUTOS SET ESTOQUE = ESTOQUE + 100, DESCONTINUADO = 1 WHERE ID = ?",
            (*id,),
        )?;
    }
    for id in products.iter().skip(8) {
        conn.execute("DELETE FROM PRODUTOS WHERE ID = ?", (*id,))?;
    }
    let _ = conn.close();
    Ok(ids)
}

async fn counts(env: &TestEnv) -> (i64, i64, Vec<i64>) {
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM ponte_inbox")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    let mut logs = Vec::new();
    for (_, d) in &env.units {
        let d = d.clone();
        logs.push(
            tokio::task::spawn_blocking(move || sync_log_count(&d))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    (outbox, inbox, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unit_changes_reach_postgres_and_the_other_units() {
    let started = std::time::Instant::now();
    let env = upstream_env(&UNITS, "pg_wins")
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    let (running, stop) = env.start(Roles::all()).await.expect("host starts");

    // A PostgreSQL customer (id below the block) and one born at unit 3 reach unit 2 first.
    sqlx::raw_sql(
        "BEGIN; INSERT INTO customers (id, name, active) VALUES (77, 'Do PostgreSQL', true); \
         INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT u, 'customers', 'I', to_jsonb(c) FROM customers c, unnest(ARRAY[1,2,3]) u WHERE c.id = 77; COMMIT;",
    )
    .execute(&env.pg)
    .await
    .unwrap();
    let d3 = db(&env, 3);
    let unit3_id = tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
        let mut conn = legacy_session(&d3, "ISO8859_1")?;
        let id = legacy_next_id(&mut conn, "CLIENTES")?;
        conn.execute(
            "INSERT INTO CLIENTES (ID, NOME, ATIVO) VALUES (?, 'Loja três', 'S')",
            (id,),
        )?;
        Ok(id)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        (3 * ID_BLOCK..4 * ID_BLOCK).contains(&unit3_id),
        "unit 3 allocates in its range: {unit3_id}"
    );
    let d2 = db(&env, 2);
    wait_until(
        Duration::from_secs(60),
        "customers 77 and the unit-3 customer at unit 2",
        || {
            let d2 = d2.clone();
            async move {
                let rows =
                    tokio::task::spawn_blocking(move || fb_clientes(&d2, 0, i64::MAX)).await??;
                Ok(rows.iter().any(|r| r.0 == 77) && rows.iter().any(|r| r.0 == unit3_id))
            }
        },
    )
    .await
    .unwrap();

    // The legacy program at unit 2.
    let d2w = d2.clone();
    let ids = tokio::task::spawn_blocking(move || legacy_workload(&d2w))
        .await
        .unwrap()
        .unwrap();
    assert!(
        ids.iter()
            .all(|id| (2 * ID_BLOCK..3 * ID_BLOCK).contains(id)),
        "unit 2 ids stay in its range: {ids:?}"
    );

    // PostgreSQL and units 1 and 3 converge with unit 2, row by row.
    let (lo, hi) = (2 * ID_BLOCK, 3 * ID_BLOCK);
    let d2r = d2.clone();
    let truth: Vec<Cliente> = tokio::task::spawn_blocking(move || fb_clientes(&d2r, lo, hi))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(truth.len(), 32);
    assert!(truth
        .iter()
        .any(|r| r.1 == "Åsa Ñandú atualizada 3" && !r.4 && r.3.is_none()));
    wait_until(
        Duration::from_secs(90),
        "PostgreSQL and units 1, 3 equal unit 2",
        || {
            let (env, truth, d1, d3) = (&env, truth.clone(), db(&env, 1), db(&env, 3));
            async move {
                let pg = pg_customers(env, lo, hi).await?;
                let u1 = tokio::task::spawn_blocking(move || fb_clientes(&d1, lo, hi)).await??;
                let u3 = tokio::task::spawn_blocking(move || fb_clientes(&d3, lo, hi)).await??;
                Ok(pg == truth && u1 == truth && u3 == truth)
            }
        },
    )
    .await
    .unwrap();
    let attrs: serde_json::Value =
        sqlx::query_scalar("SELECT attributes FROM customers WHERE id = $1")
            .bind(ids[20])
            .fetch_one(&env.pg)
            .await
            .unwrap();
    assert_eq!(
        attrs["loja"], "Conceição",
        "a WIN1252 text blob arrives intact as jsonb"
    );
    // Products come after the customers in unit 2's log.
    wait_until(Duration::from_secs(30), "8 products in PostgreSQL", || {
        let env = &env;
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM products WHERE id >= $1")
                .bind(lo)
                .fetch_one(&env.pg)
                .await?;
            Ok(n == 8)
        }
    })
    .await
    .unwrap();
    let products: Vec<(i64, String, String, i32, bool)> = sqlx::query_as(
        "SELECT id, description, price::text, stock, discontinued FROM products WHERE id >= $1 ORDER BY id",
    )
    .bind(lo)
    .fetch_all(&env.pg)
    .await
    .unwrap();
    assert_eq!(products.len(), 8);
    assert_eq!(
        (
            products[0].1.as_str(),
            products[0].2.as_str(),
            products[0].3,
            products[0].4
        ),
        ("Café moído nº0", "12.34", 100, true)
    );

    // No loop: ponte's writes at units 1 and 3 were never captured; once quiet, nothing grows.
    wait_until(
        Duration::from_secs(30),
        "outbox drained and logs empty",
        || {
            let env = &env;
            async move {
                Ok(env
                    .wait_outbox_drained(Duration::from_millis(1))
                    .await
                    .is_ok()
                    && counts(env).await.2.iter().all(|&n| n == 0))
            }
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let quiet = counts(&env).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        counts(&env).await,
        quiet,
        "outbox, inbox and SYNC_LOG counts stop growing"
    );
    let origins: Vec<(i32, i64)> =
        sqlx::query_as("SELECT unit_id, count(*) FROM ponte_inbox GROUP BY 1 ORDER BY 1")
            .fetch_all(&env.pg)
            .await
            .unwrap();
    assert_eq!(
        origins.iter().map(|o| o.0).collect::<Vec<_>>(),
        vec![2, 3],
        "only changes made at units 2 and 3 came up"
    );
    let echoes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox WHERE origin_unit = unit_id")
            .fetch_one(&env.pg)
            .await
            .unwrap();
    assert_eq!(echoes, 0, "fan-out never goes back to the origin");
    let metrics = running.metrics.render();
    assert!(
        metrics.contains("ponte_upstream_published_total{unit=\"2\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("ponte_upstream_published_total{unit=\"1\"}"),
        "unit 1 published nothing"
    );

    // Ids: replicated ids from PostgreSQL (77) and unit 3 did not move unit 2's INDICE out of its
    // range; the next legacy insert at unit 2 gets a fresh id in its own range.
    let d2i = d2.clone();
    let next = tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
        let mut conn = legacy_session(&d2i, "WIN1252")?;
        legacy_next_id(&mut conn, "CLIENTES")
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        (2 * ID_BLOCK..3 * ID_BLOCK).contains(&next) && !ids.contains(&next),
        "next unit-2 id {next}"
    );

    stop.cancel();
    running.wait().await;
    env.cleanup().await;
    eprintln!("upstream flow: {:?}", started.elapsed());
}
