//! Killing the capture publisher and the PG applier mid-stream, on the real servers: the host runs
//! in its own runtime, which is torn down without any drain (tasks dropped mid-await, connections
//! cut) while a legacy writer is busy at unit 2. After a restart PostgreSQL and unit 1 equal unit 2
//! row by row (nothing lost), and every applied change was fanned out exactly once (nothing
//! duplicated), though some were published twice.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::upstream::{
    fb_clientes, legacy_next_id, legacy_session, pg_customers, start_killable, sync_log_count,
    upstream_env, wait_until, ID_BLOCK,
};
use ponte_tests::UnitSpec;
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

async fn kill(rt: tokio::runtime::Runtime) {
    tokio::task::spawn_blocking(move || rt.shutdown_background())
        .await
        .unwrap();
}

/// 150 inserts with accents and 150 updates, in autocommit sessions like a legacy program.
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
            let prev = ids[i - 1];
            conn.execute(
                "UPDATE CLIENTES SET NOME = NOME || ' ü', ATIVO = 'N' WHERE ID = ?",
                (prev,),
            )?;
            conn.execute(
                "UPDATE CLIENTES SET LIMITE_CREDITO = LIMITE_CREDITO + 1 WHERE ID = ?",
                (id,),
            )?;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_capture_and_applier_loses_and_duplicates_nothing() {
    let started = std::time::Instant::now();
    let env = upstream_env(&UNITS, "pg_wins")
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    let (d1, d2) = (env.units[0].1.clone(), env.units[1].1.clone());
    let d2w = d2.clone();
    let writer = tokio::task::spawn_blocking(move || legacy_stream(&d2w));

    // Two kills while the writer is busy, then a host that stays.
    for wait_ms in [1_500, 2_000] {
        let rt = start_killable(env.config().unwrap()).await;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        kill(rt).await;
    }
    let published_before: i64 = sqlx::query_scalar("SELECT count(*) FROM ponte_inbox")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    assert!(
        published_before > 0,
        "the killed hosts applied part of the stream"
    );
    writer.await.unwrap().unwrap();
    let (running, stop) = env.start(Roles::all()).await.expect("host restarts");

    let (lo, hi) = (2 * ID_BLOCK, 3 * ID_BLOCK);
    let d2r = d2.clone();
    let truth = tokio::task::spawn_blocking(move || fb_clientes(&d2r, lo, hi))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(truth.len(), 150);
    wait_until(
        Duration::from_secs(120),
        "PostgreSQL and unit 1 equal unit 2",
        || {
            let (env, truth, d1) = (&env, truth.clone(), d1.clone());
            async move {
                let pg = pg_customers(env, lo, hi).await?;
                let u1 = tokio::task::spawn_blocking(move || fb_clientes(&d1, lo, hi)).await??;
                Ok(pg == truth && u1 == truth)
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

    // Effect once: one fan-out row per applied change, none per duplicate delivery.
    let applied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ponte_inbox WHERE unit_id = 2 AND outcome = 'applied'",
    )
    .fetch_one(&env.pg)
    .await
    .unwrap();
    let fanned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_sync_outbox WHERE origin_unit = 2 AND unit_id = 1",
    )
    .fetch_one(&env.pg)
    .await
    .unwrap();
    let dupes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT payload, count(*) FROM pg_sync_outbox WHERE origin_unit = 2 GROUP BY payload, operation HAVING count(*) > 1 AND operation = 'I') d",
    )
    .fetch_one(&env.pg)
    .await
    .unwrap();
    assert_eq!(
        applied, fanned,
        "each applied change fanned out exactly once"
    );
    assert!(applied >= 150, "every insert applied: {applied}");
    assert_eq!(dupes, 0);
    stop.cancel();
    running.wait().await;

    // The crash window between a confirm and the log delete, made exact: five changes are
    // published and applied, then their SYNC_LOG rows come back as if never deleted. They are
    // republished with the same correlation ids and absorbed by the inbox: no new effect.
    let d2s = d2.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = ponte_tests::firebird::connect(&d2s)?;
        conn.execute("CREATE TABLE SAVED_LOG (ID BIGINT, TABLE_NAME VARCHAR(31), OP CHAR(1), ROW_KEY VARCHAR(200), \
                      BASE_SEQ BIGINT, CHANGED_AT TIMESTAMP, TX_ID BIGINT, IMAGE BLOB SUB_TYPE TEXT CHARACTER SET UTF8)", ())?;
        conn.execute("UPDATE CLIENTES SET CIDADE = 'Belém' WHERE ID IN (SELECT FIRST 5 ID FROM CLIENTES WHERE ID >= ? ORDER BY ID)", (lo,))?;
        conn.execute("INSERT INTO SAVED_LOG SELECT * FROM SYNC_LOG", ())?;
        Ok(())
    })
    .await
    .unwrap()
    .unwrap();
    let (running, stop) = env.start(Roles::all()).await.expect("host restarts");
    let inbox_count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ponte_inbox")
            .fetch_one(&env.pg)
            .await
    };
    let before = inbox_count().await.unwrap();
    wait_until(
        Duration::from_secs(30),
        "the five changes applied",
        || async { Ok(inbox_count().await? == before + 5) },
    )
    .await
    .unwrap();
    let outbox_before: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    let d2s = d2.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = ponte_tests::firebird::connect(&d2s)?;
        conn.execute("INSERT INTO SYNC_LOG SELECT * FROM SAVED_LOG", ())?;
        Ok(())
    })
    .await
    .unwrap()
    .unwrap();
    let metrics_of = |m: &str| {
        m.lines()
            .find(|l| {
                l.starts_with("ponte_upstream_applied_total{outcome=\"duplicate\",unit=\"2\"}")
            })
            .map(str::to_string)
    };
    wait_until(Duration::from_secs(30), "five duplicates absorbed", || {
        let m = running.metrics.render();
        async move {
            Ok(metrics_of(&m).as_deref()
                == Some("ponte_upstream_applied_total{outcome=\"duplicate\",unit=\"2\"} 5"))
        }
    })
    .await
    .unwrap();
    let outbox_after: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    assert_eq!(
        (inbox_count().await.unwrap(), outbox_after),
        (before + 5, outbox_before),
        "a republish has no effect"
    );
    let metrics = running.metrics.render();
    stop.cancel();
    running.wait().await;
    eprintln!(
        "crash test: {:?}, inbox before restart {published_before}\n{}",
        started.elapsed(),
        metrics
            .lines()
            .filter(|l| l.starts_with("ponte_upstream"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    env.cleanup().await;
}
