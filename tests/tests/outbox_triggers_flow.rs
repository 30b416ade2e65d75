//! Trigger capture end to end on the real servers: the demo application writes no outbox row,
//! the `ponte outbox install` triggers do, and PostgreSQL -> 6 Firebird units through the real
//! relay, broker, transforms and appliers ends with every unit equal to PostgreSQL row by row and
//! every ledger exact. Upstream, a change made at a unit and applied by ponte (with
//! `ponte.applying`) is not captured again: its only outbox rows are the hub fan-out to the other
//! units, never one back to its origin and never a second copy.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::upstream::{
    fb_clientes, unit2_customer_reaches_units_1_and_3, upstream_env, wait_until,
};
use ponte_tests::{check, TestEnv, UnitSpec};

const TRIGGER: &str = "outbox = \"trigger\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trigger_captured_demo_reaches_every_unit() {
    let mut env = TestEnv::new(&UnitSpec::mixed(6))
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.table_toml = TRIGGER.into();
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    let config = env.config().unwrap();
    let report = ponte::outbox_capture::install(&config, &[], false)
        .await
        .unwrap();
    assert_eq!(report.changed(), 4, "{report}");
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .expect("host starts");

    env.demo_load_without_outbox(1_000, 21)
        .await
        .expect("demo load");
    let ops: Vec<(String, i64)> =
        sqlx::query_as("SELECT operation, count(*) FROM pg_sync_outbox GROUP BY 1 ORDER BY 1")
            .fetch_all(&env.pg)
            .await
            .unwrap();
    assert_eq!(
        ops.len(),
        3,
        "the triggers wrote inserts, updates and deletes: {ops:?}"
    );
    assert!(ops.iter().map(|o| o.1).sum::<i64>() > 2_000, "{ops:?}");

    env.wait_outbox_drained(Duration::from_secs(240))
        .await
        .expect("relay drains the outbox");
    check::units_match(&env, Duration::from_secs(240))
        .await
        .unwrap();
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox WHERE status = 'dead'")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    assert_eq!(dead, 0);

    // remove: the data stays at PostgreSQL and at the units; later writes are not captured.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    ponte::outbox_capture::remove(&config, &[], false)
        .await
        .unwrap();
    sqlx::query("UPDATE customers SET city = 'Depois da remoção'")
        .execute(&env.pg)
        .await
        .unwrap();
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    assert_eq!(after, rows);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(6), running.wait())
        .await
        .expect("stops within 6 s");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_unit_change_applied_by_ponte_does_not_echo() {
    let mut env = upstream_env(&UnitSpec::mixed(3), "pg_wins")
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.table_toml = TRIGGER.into();
    let config = env.config().unwrap();
    ponte::outbox_capture::install(&config, &[], false)
        .await
        .unwrap();
    let (running, stop) = env.start(Roles::all()).await.expect("host starts");

    let id = unit2_customer_reaches_units_1_and_3(&env)
        .await
        .expect("the unit-2 customer at units 1 and 3");
    env.wait_outbox_drained(Duration::from_secs(30))
        .await
        .unwrap();
    // Exactly the fan-out: one insert and one update for each OTHER unit, origin 2; nothing the
    // triggers wrote (origin NULL), nothing for unit 2.
    let rows: Vec<(i32, String, Option<i32>)> = sqlx::query_as(
        "SELECT unit_id, operation::text, origin_unit FROM pg_sync_outbox \
         WHERE table_name = 'customers' AND payload->>'id' = $1 ORDER BY unit_id, id",
    )
    .bind(id.to_string())
    .fetch_all(&env.pg)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (1, "I".into(), Some(2)),
            (1, "U".into(), Some(2)),
            (3, "I".into(), Some(2)),
            (3, "U".into(), Some(2)),
        ]
    );

    // The same row changed by the application: the trigger captures it for all three units.
    sqlx::query("UPDATE customers SET name = 'Editado no PostgreSQL' WHERE id = $1")
        .bind(id)
        .execute(&env.pg)
        .await
        .unwrap();
    let captured: Vec<(i32, Option<i32>)> = sqlx::query_as(
        "SELECT unit_id, origin_unit FROM pg_sync_outbox WHERE table_name = 'customers' \
         AND payload->>'id' = $1 AND payload->>'name' = 'Editado no PostgreSQL' ORDER BY unit_id",
    )
    .bind(id.to_string())
    .fetch_all(&env.pg)
    .await
    .unwrap();
    assert_eq!(captured, vec![(1, None), (2, None), (3, None)]);
    let unit2r = env.units[1].1.clone();
    wait_until(
        Duration::from_secs(60),
        "the PostgreSQL edit back at unit 2",
        || {
            let d = unit2r.clone();
            async move {
                let rows =
                    tokio::task::spawn_blocking(move || fb_clientes(&d, id, id + 1)).await??;
                Ok(rows.first().map(|r| r.1.as_str()) == Some("Editado no PostgreSQL"))
            }
        },
    )
    .await
    .unwrap();
    // ...and that apply at unit 2 is not captured upstream again: nothing more arrives.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_sync_outbox WHERE table_name = 'customers' AND payload->>'id' = $1",
    )
    .bind(id.to_string())
    .fetch_one(&env.pg)
    .await
    .unwrap();
    assert_eq!(total, 7);
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
