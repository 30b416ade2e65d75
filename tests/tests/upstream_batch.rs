//! The batched PostgreSQL applier on the real servers: a legacy burst of 400 new customers at
//! unit 2, one of which PostgreSQL refuses (a CHECK that the unit does not have), is applied in
//! batches of one transaction each. The poison change is set aside alone in the dead-letter
//! queue with PostgreSQL's reason; every other change reaches PostgreSQL and unit 1 exactly once
//! (row by row, inbox one entry per change), in order (the later update of a row wins).

use std::time::{Duration, Instant};

use ponte::daemon::Roles;
use ponte_tests::upstream::{
    fb_clientes, legacy_next_id, legacy_session, pg_customers, upstream_env, wait_until, ID_BLOCK,
};
use ponte_tests::{check, UnitSpec};
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
const BURST: usize = 400;
const POISON_AT: usize = 217;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_applies_in_batches_and_isolates_its_poison() {
    let env = upstream_env(&UNITS, "pg_wins")
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    sqlx::query("ALTER TABLE customers ADD CONSTRAINT no_poison CHECK (name <> 'VENENO')")
        .execute(&env.pg)
        .await
        .unwrap();
    let db2 = env.units[1].1.clone();
    let (running, stop) = env.start(Roles::all()).await.expect("host starts");

    let written = Instant::now();
    let ids = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<i64>> {
        let mut conn = legacy_session(&db2, "WIN1252")?;
        let mut ids = Vec::new();
        for i in 0..BURST {
            let id = legacy_next_id(&mut conn, "CLIENTES")?;
            let name = if i == POISON_AT {
                "VENENO".to_string()
            } else {
                format!("Cliente em rajada nº{i}")
            };
            conn.execute(
                "INSERT INTO CLIENTES (ID, NOME, ATIVO) VALUES (?, ?, 'S')",
                (id, name),
            )?;
            ids.push(id);
        }
        // The later image of a row must win: order within the burst holds.
        for id in ids.iter().step_by(50) {
            conn.execute(
                "UPDATE CLIENTES SET NOME = NOME || ' (atualizado)' WHERE ID = ?",
                (*id,),
            )?;
        }
        let _ = conn.close();
        Ok(ids)
    })
    .await
    .unwrap()
    .expect("legacy burst at unit 2");
    let poison = ids[POISON_AT];
    let (lo, hi) = (2 * ID_BLOCK, 3 * ID_BLOCK);

    wait_until(Duration::from_secs(120), "burst in PostgreSQL", || async {
        Ok(pg_customers(&env, lo, hi).await?.len() == BURST - 1
            && pg_customers(&env, lo, hi)
                .await?
                .iter()
                .filter(|c| c.1.ends_with("(atualizado)"))
                .count()
                == BURST / 50 - usize::from(POISON_AT.is_multiple_of(50)))
    })
    .await
    .unwrap();
    let took = written.elapsed();

    let at_unit2 = fb_clientes(&env.units[1].1, lo, hi).unwrap();
    let expected: Vec<_> = at_unit2.iter().filter(|c| c.0 != poison).cloned().collect();
    assert_eq!(
        at_unit2.len(),
        BURST,
        "unit 2 keeps its own rows, the poison too"
    );
    assert_eq!(
        pg_customers(&env, lo, hi).await.unwrap(),
        expected,
        "PostgreSQL holds every change of the burst but the poison, row by row"
    );
    let db1 = env.units[0].1.clone();
    wait_until(Duration::from_secs(60), "fan-out to unit 1", || {
        let db1 = db1.clone();
        let expected = expected.clone();
        async move { Ok(fb_clientes(&db1, lo, hi)? == expected) }
    })
    .await
    .unwrap();

    let inbox: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ponte_inbox WHERE unit_id = 2 AND table_name = 'CLIENTES'",
    )
    .fetch_one(&env.pg)
    .await
    .unwrap();
    let changes = (BURST - 1 + BURST / 50 - usize::from(POISON_AT.is_multiple_of(50))) as i64;
    assert_eq!(inbox, changes, "one inbox entry per applied change");

    let letters = check::dead_letters(&env, 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        letters.len(),
        1,
        "exactly one change is dead-lettered: {letters:?}"
    );
    let ours: Vec<_> = letters
        .iter()
        .filter(|l| l.unit == "2" && l.body.contains("VENENO"))
        .collect();
    assert_eq!(ours.len(), 1, "the dead letter is the poison: {letters:?}");
    assert!(
        ours[0].reason.contains("no_poison"),
        "the reason names PostgreSQL's constraint: {}",
        ours[0].reason
    );
    println!(
        "upstream batch: {} changes from unit 2 in PostgreSQL after {:.2}s ({:.0} changes/s)",
        changes,
        took.as_secs_f64(),
        changes as f64 / took.as_secs_f64()
    );
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
