//! Conflicts on the real servers: PostgreSQL and unit 2 change the same rows while PostgreSQL's
//! change is still in flight to the unit. CLIENTES runs last_writer_wins (the newer change wins,
//! whichever side), PRODUTOS runs pg_wins or manual. Every row ends in the state the policy
//! promises at PostgreSQL and at both units; conflicts are counted, recorded and, for manual,
//! listed as open with both images.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::upstream::{legacy_session, upstream_env, wait_until};
use ponte_tests::{TestEnv, UnitSpec};
use rsfbclient::prelude::*;

const UNITS: [UnitSpec; 2] = [
    UnitSpec {
        id: 1,
        charset: "UTF8",
    },
    UnitSpec {
        id: 2,
        charset: "WIN1252",
    },
];

async fn pg(env: &TestEnv, sql: &str) {
    sqlx::raw_sql(sql).execute(&env.pg).await.unwrap();
}

/// (customer 501 name, customer 502 name, product 601 price) at a unit.
fn unit_state(db: &str) -> anyhow::Result<(String, String, String)> {
    let mut conn = ponte_tests::firebird::connect(db)?;
    let a: Option<(String,)> = conn.query_first("SELECT NOME FROM CLIENTES WHERE ID = 501", ())?;
    let b: Option<(String,)> = conn.query_first("SELECT NOME FROM CLIENTES WHERE ID = 502", ())?;
    let p: Option<(String,)> = conn.query_first(
        "SELECT CAST(PRECO AS VARCHAR(30)) FROM PRODUTOS WHERE ID = 601",
        (),
    )?;
    let _ = conn.close();
    let get = |v: Option<(String,)>| v.map(|(s,)| s).unwrap_or_default();
    Ok((get(a), get(b), get(p)))
}

async fn pg_state(env: &TestEnv) -> (String, String, String) {
    let a: String = sqlx::query_scalar("SELECT name FROM customers WHERE id = 501")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    let b: String = sqlx::query_scalar("SELECT name FROM customers WHERE id = 502")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    let p: String = sqlx::query_scalar("SELECT price::text FROM products WHERE id = 601")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    (a, b, p)
}

async fn run_conflicts(products_policy: &str) {
    let started = std::time::Instant::now();
    let env = upstream_env(&UNITS, products_policy)
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    let d2 = env.units[1].1.clone();
    let (running, stop) = env.start(Roles::all()).await.expect("host starts");
    pg(&env, "BEGIN; \
        INSERT INTO customers (id, name) VALUES (501, 'orig 501'), (502, 'orig 502'); \
        INSERT INTO products (id, sku, description, price, stock) VALUES (601, 'P601', 'Pão de queijo', 10.00, 5); \
        INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
          SELECT u, 'customers', 'I', to_jsonb(c) FROM customers c, unnest(ARRAY[1,2]) u WHERE c.id IN (501, 502); \
        INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
          SELECT u, 'products', 'I', to_jsonb(p) FROM products p, unnest(ARRAY[1,2]) u WHERE p.id = 601; COMMIT;").await;
    wait_until(Duration::from_secs(60), "the rows at unit 2", || {
        let d2 = d2.clone();
        async move {
            Ok(tokio::task::spawn_blocking(move || unit_state(&d2))
                .await??
                .2
                == "10.00")
        }
    })
    .await
    .unwrap();
    stop.cancel();
    running.wait().await;

    // Both sides change the same rows while the host is down: PostgreSQL's changes wait in the
    // outbox, the unit's in its SYNC_LOG.
    let update_pg = |id: i64, name: &str| {
        format!(
            "BEGIN; UPDATE customers SET name = '{name}', updated_at = clock_timestamp() WHERE id = {id}; \
             INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
             SELECT u, 'customers', 'U', to_jsonb(c) FROM customers c, unnest(ARRAY[1,2]) u WHERE c.id = {id}; COMMIT;"
        )
    };
    let unit_write = |sql: &'static str| {
        let d2 = d2.clone();
        async move {
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let mut conn = legacy_session(&d2, "WIN1252")?;
                conn.execute(sql, ())?;
                Ok(())
            })
            .await
            .unwrap()
            .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    pg(&env, &update_pg(501, "PG 501")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    unit_write("UPDATE CLIENTES SET NOME = 'Unidade 2 ção 501' WHERE ID = 501").await; // newer: the unit wins
    unit_write("UPDATE CLIENTES SET NOME = 'Unidade 2 ção 502' WHERE ID = 502").await; // older: PostgreSQL wins
    pg(&env, &update_pg(502, "PG 502")).await;
    unit_write("UPDATE PRODUTOS SET PRECO = 99.99 WHERE ID = 601").await;
    pg(&env, "BEGIN; UPDATE products SET price = 55.55 WHERE id = 601; \
        INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
        SELECT u, 'products', 'U', to_jsonb(p) FROM products p, unnest(ARRAY[1,2]) u WHERE p.id = 601; COMMIT;").await;

    // The unit's changes reach PostgreSQL first (PostgreSQL's are still in flight to the unit).
    let up_only = Roles {
        capture: true,
        upstream: true,
        ..Roles::none()
    };
    let (running, stop) = env.start(up_only).await.expect("capture + upstream start");
    wait_until(
        Duration::from_secs(60),
        "three upstream changes decided",
        || {
            let env = &env;
            async move {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ponte_inbox")
                    .fetch_one(&env.pg)
                    .await?;
                Ok(n == 3)
            }
        },
    )
    .await
    .unwrap();
    let metrics = running.metrics.render();
    stop.cancel();
    running.wait().await;
    assert!(
        metrics.contains(
            r#"ponte_upstream_conflicts_total{policy="last_writer_wins",table="CLIENTES"} 2"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            r#"ponte_upstream_conflicts_total{{policy="{products_policy}",table="PRODUTOS"}} 1"#
        )),
        "{metrics}"
    );

    // Everything flows again; every side converges on what the policies promise.
    let (running, stop) = env.start(Roles::all()).await.expect("host restarts");
    let want = (
        "Unidade 2 ção 501".to_string(),
        "PG 502".to_string(),
        "55.55".to_string(),
    );
    let d1 = env.units[0].1.clone();
    wait_until(
        Duration::from_secs(60),
        "PostgreSQL and both units converge",
        || {
            let (env, d1, d2, want) = (&env, d1.clone(), d2.clone(), want.clone());
            async move {
                let u1 = tokio::task::spawn_blocking(move || unit_state(&d1)).await??;
                let u2 = tokio::task::spawn_blocking(move || unit_state(&d2)).await??;
                Ok(pg_state(env).await == want && u1 == want && u2 == want)
            }
        },
    )
    .await
    .unwrap();
    let recorded: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT row_key, policy, resolution, status FROM ponte_conflict ORDER BY fb_table, row_key",
    )
    .fetch_all(&env.pg)
    .await
    .unwrap();
    let (resolution, status) = if products_policy == "manual" {
        ("parked", "open")
    } else {
        ("pg_kept", "resolved")
    };
    assert_eq!(
        recorded,
        vec![
            (
                "501".into(),
                "last_writer_wins".into(),
                "unit_applied".into(),
                "resolved".into()
            ),
            (
                "502".into(),
                "last_writer_wins".into(),
                "pg_kept".into(),
                "resolved".into()
            ),
            (
                "601".into(),
                products_policy.into(),
                resolution.into(),
                status.into()
            ),
        ]
    );
    let open = ponte::upstream::list_conflicts(&env.pg, false, 10)
        .await
        .unwrap();
    if products_policy == "manual" {
        assert_eq!(open.len(), 1, "manual conflicts are listed for an operator");
        let image = open[0].unit_image.clone().unwrap_or_default();
        assert_eq!(
            (open[0].fb_table.as_str(), image["PRECO"].as_str()),
            ("PRODUTOS", Some("99.99"))
        );
        assert_eq!(
            open[0].pg_image.as_ref().map(|p| p["price"].to_string()),
            Some("55.55".into())
        );
    } else {
        assert!(open.is_empty());
    }

    // The unit's newer change is overwritten at the unit by PostgreSQL's older one before the
    // capture publisher runs: the trigger kept the unit's own image, so last_writer_wins still
    // lets the newer change win, and the unit gets it back after PostgreSQL's.
    stop.cancel();
    running.wait().await;
    pg(&env, &update_pg(501, "PG again")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    unit_write("UPDATE CLIENTES SET NOME = 'Unidade tarde' WHERE ID = 501").await;
    let down_only = Roles {
        relay: true,
        apply: true,
        ..Roles::none()
    };
    let (running, stop) = env.start(down_only).await.expect("downstream roles start");
    wait_until(
        Duration::from_secs(60),
        "PostgreSQL's change applied at unit 2",
        || {
            let d2 = d2.clone();
            async move {
                Ok(tokio::task::spawn_blocking(move || unit_state(&d2))
                    .await??
                    .0
                    == "PG again")
            }
        },
    )
    .await
    .unwrap();
    stop.cancel();
    running.wait().await;
    let (running, stop) = env.start(Roles::all()).await.expect("host restarts");
    wait_until(Duration::from_secs(60), "the newer unit change won everywhere", || {
        let (env, d1, d2) = (&env, env.units[0].1.clone(), d2.clone());
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM ponte_conflict WHERE row_key = '501' AND resolution = 'unit_applied'",
            )
            .fetch_one(&env.pg)
            .await?;
            let u1 = tokio::task::spawn_blocking(move || unit_state(&d1)).await??.0;
            let u2 = tokio::task::spawn_blocking(move || unit_state(&d2)).await??.0;
            let want = "Unidade tarde";
            Ok(n == 2 && pg_state(env).await.0 == want && u1 == want && u2 == want)
        }
    })
    .await
    .unwrap();
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
    eprintln!("conflicts ({products_policy}): {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_writer_wins_and_pg_wins() {
    run_conflicts("pg_wins").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_writer_wins_and_manual() {
    run_conflicts("manual").await;
}

/// A PostgreSQL change that died in the outbox never reached the unit, so it is no base for a
/// conflict: the unit's later change of that row applies (pg_wins would otherwise drop it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_outbox_row_is_not_a_conflict() {
    let env = upstream_env(&UNITS, "pg_wins")
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    let d2 = env.units[1].1.clone();
    let (running, stop) = env.start(Roles::all()).await.expect("host starts");
    pg(&env, "BEGIN; \
        INSERT INTO products (id, sku, description, price, stock) VALUES (701, 'P701', 'Cuscuz', 10.00, 5); \
        INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
          SELECT u, 'products', 'I', to_jsonb(p) FROM products p, unnest(ARRAY[1,2]) u WHERE p.id = 701; \
        COMMIT;").await;
    let price_at = |db: String| async move {
        tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let mut conn = ponte_tests::firebird::connect(&db)?;
            let row: Option<(String,)> = conn.query_first(
                "SELECT CAST(PRECO AS VARCHAR(30)) FROM PRODUTOS WHERE ID = 701",
                (),
            )?;
            Ok(row.map(|(p,)| p).unwrap_or_default())
        })
        .await?
    };
    wait_until(Duration::from_secs(60), "product 701 at unit 2", || {
        let d2 = d2.clone();
        async move { Ok(price_at(d2).await? == "10.00") }
    })
    .await
    .unwrap();
    // A PostgreSQL change for unit 2 that the relay gave up on: it never reached the unit.
    pg(
        &env,
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload, status, error_log) \
        SELECT 2, 'products', 'U', to_jsonb(p) || '{\"price\": 11.11}', 'dead', 'given up' \
        FROM products p WHERE p.id = 701",
    )
    .await;
    let d2w = d2.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = legacy_session(&d2w, "WIN1252")?;
        conn.execute("UPDATE PRODUTOS SET PRECO = 42.00 WHERE ID = 701", ())?;
        Ok(())
    })
    .await
    .unwrap()
    .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the unit's change applied in PostgreSQL",
        || {
            let env = &env;
            async move {
                let price: String =
                    sqlx::query_scalar("SELECT price::text FROM products WHERE id = 701")
                        .fetch_one(&env.pg)
                        .await?;
                Ok(price == "42.00")
            }
        },
    )
    .await
    .unwrap();
    let conflicts: i64 = sqlx::query_scalar("SELECT count(*) FROM ponte_conflict")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    assert_eq!(conflicts, 0, "a dead outbox row was counted as a conflict");
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
