//! Periodic capture at the units (`capture = "periodic"`: no trigger on the legacy tables), on the
//! real servers. A legacy program at unit 2 inserts, updates and deletes while the host is killed
//! twice mid-stream; PostgreSQL and units 1 and 3 then equal unit 2 row by row, each applied
//! change was fanned out exactly once, and nothing ponte wrote at a unit came back (no echo). A
//! local change that a PostgreSQL change overwrites before the next round is still captured, and
//! the table's conflict policy decides it.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::firebird::scalar;
use ponte_tests::process::HostProcess;
use ponte_tests::upstream::{
    fb_clientes, legacy_next_id, legacy_session, pg_customers, start_killable, sync_log_count,
    upstream_toml, wait_until, ID_BLOCK,
};
use ponte_tests::{TestEnv, UnitSpec};
use rsfbclient::prelude::*;

/// The suites' `[upstream]` with both tables under periodic capture every `every`.
fn periodic_toml(every: &str) -> String {
    let periodic = format!("capture = \"periodic\"\nevery = \"{every}\"\n");
    upstream_toml("pg_wins")
        .replace(
            "[upstream.tables.CLIENTES]\n",
            &format!("[upstream.tables.CLIENTES]\n{periodic}"),
        )
        .replace(
            "[upstream.tables.PRODUTOS]\n",
            &format!("[upstream.tables.PRODUTOS]\n{periodic}"),
        )
}

async fn periodic_env(units: &[UnitSpec], every: &str) -> TestEnv {
    let mut env = TestEnv::new(units)
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.units_toml = format!("id_block = {ID_BLOCK}");
    env.extra_toml = periodic_toml(every);
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    let config = env.config().unwrap();
    ponte::capture::run_command(&config, &config.units(), true)
        .await
        .expect("capture install");
    env
}

async fn pg_count(env: &TestEnv, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&env.pg).await.unwrap()
}

const BIN: &str = env!("CARGO_BIN_EXE_ponte-under-test");

/// 150 customers in (accents, exact numerics), every other one updated twice, 20 deleted; 10
/// products in, 4 of them deleted. Autocommit statements, ids from INDICE.
fn legacy_stream(db: &str) -> anyhow::Result<()> {
    let mut conn = legacy_session(db, "WIN1252")?;
    let mut ids = Vec::new();
    for i in 0..150 {
        let id = legacy_next_id(&mut conn, "CLIENTES")?;
        conn.execute(
            "INSERT INTO CLIENTES (ID, NOME, ATIVO, LIMITE_CREDITO) VALUES (?, ?, 'S', ?)",
            (id, format!("Cliente ção {i}"), format!("{i}.25")),
        )?;
        ids.push(id);
        if i % 2 == 1 {
            conn.execute(
                "UPDATE CLIENTES SET NOME = NOME || ' ü', ATIVO = 'N' WHERE ID = ?",
                (ids[i - 1],),
            )?;
            conn.execute(
                "UPDATE CLIENTES SET CIDADE = 'Maceió' WHERE ID = ?",
                (ids[i - 1],),
            )?;
        }
        if i % 7 == 6 {
            conn.execute("DELETE FROM CLIENTES WHERE ID = ?", (ids[i - 3],))?;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for i in 0..10 {
        let id = legacy_next_id(&mut conn, "PRODUTOS")?;
        conn.execute(
            "INSERT INTO PRODUTOS (ID, SKU, DESCRICAO, PRECO, ESTOQUE, DESCONTINUADO) VALUES (?, ?, 'Pão de açúcar', 3.5, 1, 0)",
            (id, format!("P2-{i}")),
        )?;
        if i % 3 == 0 {
            conn.execute("DELETE FROM PRODUTOS WHERE ID = ?", (id,))?;
        }
    }
    let _ = conn.close();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn periodic_capture_without_triggers_loses_duplicates_and_echoes_nothing() {
    let started = std::time::Instant::now();
    let units = UnitSpec::mixed(3);
    let env = periodic_env(&units, "1s").await;
    let db = |unit: i32| {
        env.units
            .iter()
            .find(|(id, _)| *id == unit)
            .unwrap()
            .1
            .clone()
    };
    for (_, d) in &env.units {
        assert_eq!(
            scalar(
                d,
                "SELECT COUNT(*) FROM RDB$TRIGGERS WHERE RDB$TRIGGER_NAME STARTING WITH 'SYNC$'"
            )
            .unwrap(),
            0,
            "no trigger at the units"
        );
        assert_eq!(
            scalar(d, "SELECT COUNT(*) FROM SYNC_PERIODIC_TABLE").unwrap(),
            2,
            "both tables under periodic capture"
        );
    }
    let d2 = db(2);
    let writer = tokio::task::spawn_blocking({
        let d2 = d2.clone();
        move || legacy_stream(&d2)
    });
    // Two kills while the writer is busy (rounds, publishes and applies cut mid-way), then a host
    // that stays.
    for wait_ms in [1_500, 2_500] {
        let rt = start_killable(env.config().unwrap()).await;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        tokio::task::spawn_blocking(move || rt.shutdown_background())
            .await
            .unwrap();
    }
    writer.await.unwrap().unwrap();
    let (running, stop) = env.start(Roles::all()).await.expect("host restarts");

    let (lo, hi) = (2 * ID_BLOCK, 3 * ID_BLOCK);
    let truth = tokio::task::spawn_blocking({
        let d2 = d2.clone();
        move || fb_clientes(&d2, lo, hi)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(truth.len(), 150 - 21, "150 in, 21 deleted");
    wait_until(
        Duration::from_secs(120),
        "PostgreSQL and units 1 and 3 equal unit 2",
        || {
            let (env, truth, d1, d3) = (&env, truth.clone(), db(1), db(3));
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
    let products = |d: String| {
        scalar(
            &d,
            &format!("SELECT COUNT(*) FROM PRODUTOS WHERE ID >= {lo} AND ID < {hi}"),
        )
        .unwrap()
    };
    assert_eq!(products(d2.clone()), 6);
    wait_until(
        Duration::from_secs(60),
        "products reach PostgreSQL and the units",
        || {
            let (env, d1, d3) = (&env, db(1), db(3));
            async move {
                let pg = pg_count(
                    env,
                    &format!("SELECT count(*) FROM products WHERE id >= {lo} AND id < {hi}"),
                )
                .await;
                Ok(pg == 6 && products(d1) == 6 && products(d3) == 6)
            }
        },
    )
    .await
    .unwrap();
    wait_until(Duration::from_secs(30), "unit 2 log drained", || {
        let d2 = d2.clone();
        async move { Ok(tokio::task::spawn_blocking(move || sync_log_count(&d2)).await?? == 0) }
    })
    .await
    .unwrap();

    // No echo: the fan-out writes at units 1 and 3 were never captured there, and quiet rounds
    // add nothing.
    let inbox = "SELECT count(*) FROM ponte_inbox";
    let before = pg_count(&env, inbox).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        pg_count(&env, inbox).await,
        before,
        "quiet rounds capture nothing"
    );
    assert_eq!(
        pg_count(&env, "SELECT count(*) FROM ponte_inbox WHERE unit_id <> 2").await,
        0,
        "nothing came back from units 1 and 3"
    );
    for unit in [1, 3] {
        assert_eq!(sync_log_count(&db(unit)).unwrap(), 0);
    }
    // Effect once: one fan-out row per applied change and target unit.
    let applied = pg_count(
        &env,
        "SELECT count(*) FROM ponte_inbox WHERE unit_id = 2 AND outcome = 'applied'",
    )
    .await;
    for unit in [1, 3] {
        let fanned = pg_count(
            &env,
            &format!(
                "SELECT count(*) FROM pg_sync_outbox WHERE origin_unit = 2 AND unit_id = {unit}"
            ),
        )
        .await;
        assert_eq!(
            applied, fanned,
            "each applied change fanned out once to unit {unit}"
        );
    }
    assert!(
        applied >= 150 - 21 + 6,
        "every surviving row applied: {applied}"
    );
    stop.cancel();
    running.wait().await;
    eprintln!("periodic capture suite: {:?}", started.elapsed());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_local_change_overwritten_before_the_round_is_still_captured() {
    let units = [UnitSpec {
        id: 2,
        charset: "WIN1252",
    }];
    // One round at start, the next an hour later: only the apply transaction can see the edit.
    let env = periodic_env(&units, "1h").await;
    let d2 = env.units[0].1.clone();
    let id = tokio::task::spawn_blocking({
        let d2 = d2.clone();
        move || -> anyhow::Result<i64> {
            let mut conn = legacy_session(&d2, "WIN1252")?;
            let id = legacy_next_id(&mut conn, "PRODUTOS")?;
            conn.execute("INSERT INTO PRODUTOS (ID, SKU, DESCRICAO, PRECO, ESTOQUE, DESCONTINUADO) VALUES (?, 'LOC-1', 'Café', 5.00, 1, 0)", (id,))?;
            Ok(id)
        }
    })
    .await
    .unwrap()
    .unwrap();
    let (running, stop) = env.start(Roles::all()).await.expect("host starts");
    let price = format!("SELECT price::text FROM products WHERE id = {id}");
    wait_until(
        Duration::from_secs(60),
        "the first round brings the product to PostgreSQL",
        || {
            let (env, price) = (&env, price.clone());
            async move {
                Ok(sqlx::query_scalar::<_, String>(&price)
                    .fetch_optional(&env.pg)
                    .await?
                    .as_deref()
                    == Some("5.00"))
            }
        },
    )
    .await
    .unwrap();
    // The site edits the price; before any round sees it, PostgreSQL changes the same row.
    tokio::task::spawn_blocking({
        let d2 = d2.clone();
        move || {
            let mut conn = legacy_session(&d2, "WIN1252").unwrap();
            conn.execute("UPDATE PRODUTOS SET PRECO = 1.11 WHERE ID = ?", (id,))
                .unwrap();
        }
    })
    .await
    .unwrap();
    sqlx::query("UPDATE products SET price = 9.99 WHERE id = $1")
        .bind(id)
        .execute(&env.pg)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) VALUES (2, 'products', 'U', $1::jsonb)",
    )
    .bind(format!(r#"{{"id": {id}, "sku": "LOC-1", "description": "Café", "price": 9.99, "stock": 1, "discontinued": false}}"#))
    .execute(&env.pg)
    .await
    .unwrap();
    let unit_price = format!("SELECT CAST(PRECO * 100 AS BIGINT) FROM PRODUTOS WHERE ID = {id}");
    wait_until(
        Duration::from_secs(60),
        "PostgreSQL's change applied at the unit",
        || {
            let (d2, sql) = (d2.clone(), unit_price.clone());
            async move { Ok(tokio::task::spawn_blocking(move || scalar(&d2, &sql)).await?? == 999) }
        },
    )
    .await
    .unwrap();
    // The overwritten edit was logged by the apply transaction and reached PostgreSQL, where
    // pg_wins kept PostgreSQL's newer state.
    let kept =
        "SELECT count(*) FROM ponte_inbox WHERE unit_id = 2 AND outcome = 'pg_kept'".to_string();
    wait_until(
        Duration::from_secs(30),
        "the site's edit decided by the conflict policy",
        || {
            let (env, kept) = (&env, kept.clone());
            async move { Ok(pg_count(env, &kept).await == 1) }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        sqlx::query_scalar::<_, String>(&price)
            .fetch_one(&env.pg)
            .await
            .unwrap(),
        "9.99"
    );
    // ponte's own write is not captured: nothing more arrives.
    let inbox = pg_count(&env, "SELECT count(*) FROM ponte_inbox").await;
    assert_eq!(sync_log_count(&d2).unwrap(), 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pg_count(&env, "SELECT count(*) FROM ponte_inbox").await,
        inbox
    );
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}

/// ITENS: a composite key (INTEGER + VARCHAR holding `|` and `\`), exact numerics, a text blob.
const ITENS_DDL: &str = "CREATE TABLE ITENS (PEDIDO INTEGER NOT NULL, LINHA VARCHAR(20) NOT NULL, \
     VALOR NUMERIC(18,2), NOTA BLOB SUB_TYPE TEXT, PRIMARY KEY (PEDIDO, LINHA));";

const ITENS_TOML: &str = r#"
[upstream.tables.ITENS]
pg_table = "items"
key = ["order_id", "line"]
capture = "periodic"
every = "1h"
"#;

type Logged = (String, String, Option<String>);

fn drain_log(conn: &mut ponte::firebird::FbConn) -> Vec<Logged> {
    let rows: Vec<(String, String, Option<String>)> = conn
        .query(
            "SELECT OP, ROW_KEY, CAST(IMAGE AS VARCHAR(2000)) FROM SYNC_LOG ORDER BY ID",
            (),
        )
        .unwrap();
    conn.execute("DELETE FROM SYNC_LOG", ()).unwrap();
    rows.into_iter()
        .map(|(o, k, i)| (o.trim().to_string(), k, i))
        .collect()
}

/// Rounds on a composite, escaped key without the host: the baseline logs nothing; inserts,
/// updates, a key change and deletes are logged once each with the exact row key and image;
/// an unchanged table logs nothing; a row ponte's apply transaction writes is not logged, and a
/// local edit it overwrites is logged first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_find_every_change_of_a_composite_key_table() {
    let units = [UnitSpec {
        id: 1,
        charset: "WIN1252",
    }];
    let mut env = TestEnv::new(&units)
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.extra_toml = ITENS_TOML.to_string();
    ponte_tests::legacy::unit_ddl(&env, ITENS_DDL).unwrap();
    let db = env.units[0].1.clone();
    let config = env.config().unwrap();
    tokio::task::spawn_blocking(move || {
        let mut legacy = legacy_session(&db, "WIN1252").unwrap();
        legacy.execute("INSERT INTO ITENS (PEDIDO, LINHA, VALOR) VALUES (1, 'antes', 1.00)", ()).unwrap();
        let mut admin = ponte_tests::firebird::connect(&db).unwrap();
        let report = ponte::capture::install_unit(&mut admin, &config, 1).unwrap();
        assert_eq!(report.periodic, vec![("ITENS".to_string(), true)]);
        assert!(report.tables.is_empty(), "no trigger: {report:?}");
        let round = |admin: &mut ponte::firebird::FbConn| {
            ponte::capture::periodic::run_round(admin, &config, &["ITENS".to_string()]).unwrap();
            drain_log(admin)
        };
        assert!(round(&mut admin).is_empty(), "the baseline is not captured");

        legacy.execute("INSERT INTO ITENS (PEDIDO, LINHA, VALOR, NOTA) VALUES (7, 'a|b\\c', 12.30, 'Pão ção')", ()).unwrap();
        legacy.execute("INSERT INTO ITENS (PEDIDO, LINHA, VALOR) VALUES (7, 'x', 0.01)", ()).unwrap();
        legacy.execute("UPDATE ITENS SET VALOR = 1.01 WHERE PEDIDO = 1", ()).unwrap();
        let logged = round(&mut admin);
        let ops: Vec<(&str, &str)> = logged.iter().map(|(o, k, _)| (o.as_str(), k.as_str())).collect();
        assert_eq!(ops.len(), 3, "{logged:?}");
        for expected in [("U", "1|antes"), ("I", "7|a\\|b\\\\c"), ("I", "7|x")] {
            assert!(ops.contains(&expected), "{expected:?} in {logged:?}");
        }
        let image = logged.iter().find(|(_, k, _)| k.starts_with("7|a")).and_then(|(_, _, i)| i.clone()).unwrap();
        let image: serde_json::Value = serde_json::from_str(&image).unwrap();
        assert_eq!((image["LINHA"].as_str(), image["VALOR"].as_str(), image["NOTA"].as_str()), (Some("a|b\\c"), Some("12.30"), Some("Pão ção")));
        assert!(round(&mut admin).is_empty(), "nothing changed since");

        // A value change of one cent, a key change and a delete of the escaped key.
        legacy.execute("UPDATE ITENS SET VALOR = 0.02 WHERE LINHA = 'x'", ()).unwrap();
        legacy.execute("UPDATE ITENS SET LINHA = 'depois' WHERE LINHA = 'antes'", ()).unwrap();
        legacy.execute("DELETE FROM ITENS WHERE PEDIDO = 7 AND LINHA = 'a|b\\c'", ()).unwrap();
        let mut ops: Vec<(String, String)> = round(&mut admin).into_iter().map(|(o, k, _)| (o, k)).collect();
        ops.sort();
        let pair = |o: &str, k: &str| (o.to_string(), k.to_string());
        assert_eq!(ops, vec![pair("D", "1|antes"), pair("D", "7|a\\|b\\\\c"), pair("I", "1|depois"), pair("U", "7|x")]);

        // ponte's own write is not captured; a local edit it overwrites is, first.
        let write = |sql: &str, key: &str, seq: i64| ponte::firebird::Prepared {
            correlation_id: format!("00000000-0000-4000-8000-{seq:012x}"),
            sequence: seq,
            table: "items".into(),
            op: ponte::model::Op::Update,
            output: ponte::model::Output {
                row_key: key.into(),
                statements: vec![ponte::model::Statement { sql: sql.into(), params: Vec::new() }],
                id_claims: Vec::new(),
            },
        };
        let hooks = ponte::firebird::UnitHooks::of(&config);
        let mut columns = ponte::firebird::TextColumns::default();
        let apply = |admin: &mut ponte::firebird::FbConn, change: ponte::firebird::Prepared, columns: &mut ponte::firebird::TextColumns| {
            ponte::firebird::apply_batch_with(admin, &[change], &hooks, columns).unwrap();
        };
        apply(&mut admin, write("INSERT INTO ITENS (PEDIDO, LINHA, VALOR) VALUES (9, 'pg', 5.00)", "9|pg", 10), &mut columns);
        apply(&mut admin, write("UPDATE ITENS SET VALOR = 3.00 WHERE PEDIDO = 7 AND LINHA = 'x'", "7|x", 11), &mut columns);
        assert!(drain_log(&mut admin).is_empty(), "the apply transaction logs nothing of its own");
        assert!(round(&mut admin).is_empty(), "and the round does not send ponte's writes back");
        legacy.execute("UPDATE ITENS SET VALOR = 4.44 WHERE PEDIDO = 9", ()).unwrap();
        apply(&mut admin, write("UPDATE ITENS SET VALOR = 6.00 WHERE PEDIDO = 9 AND LINHA = 'pg'", "9|pg", 12), &mut columns);
        let logged = drain_log(&mut admin);
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert_eq!((logged[0].0.as_str(), logged[0].1.as_str()), ("U", "9|pg"));
        assert!(logged[0].2.as_deref().unwrap_or_default().contains("\"VALOR\":\"4.44\""), "the site's value: {logged:?}");
        apply(&mut admin, write("DELETE FROM ITENS WHERE PEDIDO = 9 AND LINHA = 'pg'", "9|pg", 13), &mut columns);
        assert!(round(&mut admin).is_empty(), "ponte's delete is not captured either");
        let left: (i64,) = admin.query_first("SELECT COUNT(*) FROM SYNC_PERIODIC WHERE TABLE_NAME = 'ITENS'", ()).unwrap().unwrap();
        assert_eq!(left.0, 2, "one fingerprint per remaining row");
        let _ = legacy.close();
        let _ = admin.close();
    })
    .await
    .unwrap();
    env.cleanup().await;
}

/// The query-based capture traps, at a unit: a transaction held open for 10 rounds, 10,000 rows
/// committed at one timestamp while the host process is killed (-9) mid-round, then the lag of
/// single edits.
/// Every row reaches PostgreSQL exactly once; p99 lag stays within 2x `every`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_transaction_a_burst_and_a_kill_lose_and_repeat_nothing() {
    let units = [UnitSpec {
        id: 2,
        charset: "WIN1252",
    }];
    let env = periodic_env(&units, "1s").await;
    let d2 = env.units[0].1.clone();
    let config_path = env.write_config().unwrap();
    let log = std::env::temp_dir().join(format!("{}-host.log", env.name));
    let mut host = HostProcess::spawn(BIN, &config_path, &["run"], &log).expect("spawn host");
    // A legacy transaction opens, writes a row, and stays open for 10 s.
    let (opened_tx, opened_rx) = std::sync::mpsc::channel::<i64>();
    let long = tokio::task::spawn_blocking({
        let d2 = d2.clone();
        move || -> anyhow::Result<()> {
            let mut conn = legacy_session(&d2, "WIN1252")?;
            let id = legacy_next_id(&mut conn, "CLIENTES")?;
            conn.begin_transaction()?;
            conn.execute(
                "INSERT INTO CLIENTES (ID, NOME, ATIVO) VALUES (?, 'Tarde', 'S')",
                (id,),
            )?;
            opened_tx.send(id)?;
            std::thread::sleep(Duration::from_secs(10));
            conn.commit()?;
            Ok(())
        }
    });
    let late_id = tokio::task::spawn_blocking(move || opened_rx.recv())
        .await
        .unwrap()
        .unwrap();
    // 10,000 rows in one transaction (one CURRENT_TIMESTAMP), then a kill while rounds and
    // publishes of them run.
    let burst_lo = tokio::task::spawn_blocking({
        let d2 = d2.clone();
        move || -> anyhow::Result<i64> {
            let mut conn = legacy_session(&d2, "WIN1252")?;
            let lo = legacy_next_id(&mut conn, "CLIENTES")? + 1_000;
            conn.execute(
                "EXECUTE BLOCK (LO BIGINT = ?) AS DECLARE I INTEGER = 0; BEGIN \
                 WHILE (I < 10000) DO BEGIN \
                 INSERT INTO CLIENTES (ID, NOME, ATIVO, ATUALIZADO_EM) VALUES (:LO + :I, 'Rajada ' || :I, 'S', CURRENT_TIMESTAMP); \
                 I = I + 1; END END",
                (lo,),
            )?;
            Ok(lo)
        }
    })
    .await
    .unwrap()
    .unwrap();
    // kill -9 while the round that logs the burst runs at the unit.
    wait_until(Duration::from_secs(30), "a round at work on the burst", || {
        let d2 = d2.clone();
        async move {
            let sql = "SELECT COUNT(*) FROM MON$STATEMENTS WHERE MON$STATE = 1 \
                       AND MON$ATTACHMENT_ID <> CURRENT_CONNECTION AND MON$SQL_TEXT CONTAINING 'SYNC_PERIODIC'";
            Ok(tokio::task::spawn_blocking(move || scalar(&d2, sql)).await?? > 0)
        }
    })
    .await
    .unwrap();
    host.kill9();
    wait_until(Duration::from_secs(30), "the killed host's attachments gone", || {
        let d2 = d2.clone();
        async move {
            let sql = "SELECT COUNT(*) FROM MON$ATTACHMENTS WHERE MON$ATTACHMENT_ID <> CURRENT_CONNECTION \
                       AND MON$REMOTE_PROCESS CONTAINING 'ponte-under-test'";
            Ok(tokio::task::spawn_blocking(move || scalar(&d2, sql)).await?? == 0)
        }
    })
    .await
    .unwrap();
    // All or nothing: the killed round either committed whole or left no trace.
    let recorded = scalar(
        &d2,
        "SELECT COUNT(*) FROM SYNC_PERIODIC WHERE TABLE_NAME = 'CLIENTES'",
    )
    .unwrap();
    assert!(
        recorded == 0 || recorded == 10_000,
        "a half-done round: {recorded} fingerprints"
    );
    eprintln!(
        "kill -9 hit the round {}",
        if recorded == 0 {
            "before its commit"
        } else {
            "after its commit"
        }
    );
    let mut host = HostProcess::spawn(BIN, &config_path, &["run"], &log).expect("respawn host");
    long.await.unwrap().unwrap();
    let in_range = format!(
        "SELECT count(*) FROM customers WHERE id >= {} AND id < {}",
        2 * ID_BLOCK,
        3 * ID_BLOCK
    );
    wait_until(
        Duration::from_secs(120),
        "the burst and the late row in PostgreSQL",
        || {
            let (env, sql) = (&env, in_range.clone());
            async move { Ok(pg_count(env, &sql).await == 10_001) }
        },
    )
    .await
    .unwrap();
    let late = pg_count(
        &env,
        &format!("SELECT count(*) FROM customers WHERE id = {late_id} AND name = 'Tarde'"),
    )
    .await;
    assert_eq!(
        late, 1,
        "the row of the transaction held open for 10 rounds"
    );
    let burst = pg_count(
        &env,
        &format!(
            "SELECT count(*) FROM customers WHERE id >= {burst_lo} AND id < {}",
            burst_lo + 10_000
        ),
    )
    .await;
    assert_eq!(burst, 10_000);
    // Exactly once: one inbox entry per row (a row captured twice would be a second entry).
    wait_until(Duration::from_secs(30), "unit 2 log drained", || {
        let d2 = d2.clone();
        async move { Ok(tokio::task::spawn_blocking(move || sync_log_count(&d2)).await?? == 0) }
    })
    .await
    .unwrap();
    assert_eq!(
        pg_count(&env, "SELECT count(*) FROM ponte_inbox WHERE unit_id = 2").await,
        10_001,
        "every row captured once"
    );

    // Lag of single edits at every = 1s: the round interval, the round, publish and apply.
    let mut lags = Vec::new();
    for i in 0..20 {
        let city = format!("Cidade {i}");
        let at = std::time::Instant::now();
        tokio::task::spawn_blocking({
            let (d2, city) = (d2.clone(), city.clone());
            move || {
                let mut conn = legacy_session(&d2, "WIN1252").unwrap();
                conn.execute(
                    "UPDATE CLIENTES SET CIDADE = ? WHERE ID = ?",
                    (city, late_id),
                )
                .unwrap();
            }
        })
        .await
        .unwrap();
        let sql =
            format!("SELECT count(*) FROM customers WHERE id = {late_id} AND city = '{city}'");
        while pg_count(&env, &sql).await == 0 {
            assert!(
                at.elapsed() < Duration::from_secs(30),
                "edit {i} never arrived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        lags.push(at.elapsed());
        tokio::time::sleep(Duration::from_millis(137)).await;
    }
    lags.sort();
    let p50 = lags[lags.len() / 2];
    let p99 = lags[lags.len() - 1];
    eprintln!("unit periodic capture lag at every = 1s: p50 {p50:?}, p99 {p99:?}");
    assert!(
        p99 <= Duration::from_secs(2),
        "p99 lag {p99:?} is over 2x every"
    );
    host.terminate();
    assert!(
        host.wait_exit(Duration::from_secs(10)).is_some(),
        "{}",
        host.log_text()
    );
    env.cleanup().await;
}
