//! Periodic sync (`outbox = "periodic"`) on the real servers: no outbox row is written by the
//! application nor by a trigger; `ponte run` finds the changed rows in rounds and the units end
//! equal to PostgreSQL row by row. A transaction held open for 10x the interval, a burst of 10k
//! rows with one timestamp and a kill -9 mid-round lose no row and send no row version twice;
//! p99 lag stays within 2x the interval; routing errors wait loudly; a change a unit made is
//! not sent back to it.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use ponte::daemon::Roles;
use ponte_tests::process::HostProcess;
use ponte_tests::upstream::{unit2_customer_reaches_units_1_and_3, upstream_env, wait_until};
use ponte_tests::{check, TestEnv, UnitSpec};
use rsfbclient::prelude::*;
use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_ponte-under-test");
const PERIODIC: &str = "outbox = \"periodic\"\nevery = \"1s\"";

fn relay_and_apply() -> Roles {
    Roles {
        relay: true,
        apply: true,
        ..Roles::none()
    }
}

/// No row version went out twice: per unit and row, no outbox row repeats the one before it.
async fn no_version_sent_twice(env: &TestEnv) {
    let repeats: Vec<(i32, String, Option<String>)> = sqlx::query_as(
        "SELECT unit_id, table_name::text, key FROM ( \
             SELECT unit_id, table_name, \
                 concat_ws('|', payload->>'id', payload->>'order_id', payload->>'line_no') AS key, \
                 operation, payload, lag(payload) OVER w AS prev, lag(operation) OVER w AS prev_op \
             FROM pg_sync_outbox \
             WINDOW w AS (PARTITION BY unit_id, table_name, \
                 concat_ws('|', payload->>'id', payload->>'order_id', payload->>'line_no') ORDER BY id)) x \
         WHERE payload = prev AND operation = prev_op LIMIT 5",
    )
    .fetch_all(&env.pg)
    .await
    .unwrap();
    assert!(repeats.is_empty(), "row versions sent twice: {repeats:?}");
}

async fn dead_rows(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox WHERE status = 'dead'")
        .fetch_one(&env.pg)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn periodic_demo_reaches_every_unit_and_bad_routing_waits() {
    let mut env = TestEnv::new(&UnitSpec::mixed(3))
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.table_toml = PERIODIC.into();
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    let (running, stop) = env.start(relay_and_apply()).await.expect("host starts");

    env.demo_load_without_outbox(1_500, 33)
        .await
        .expect("demo load");
    check::units_match(&env, Duration::from_secs(240))
        .await
        .unwrap();
    env.wait_outbox_drained(Duration::from_secs(60))
        .await
        .unwrap();
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    no_version_sent_twice(&env).await;
    let ops: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT operation::text FROM pg_sync_outbox ORDER BY 1")
            .fetch_all(&env.pg)
            .await
            .unwrap();
    assert!(
        ops.contains(&("U".to_string(),)) && !ops.contains(&("I".to_string(),)),
        "changed rows go as upserts: {ops:?}"
    );
    assert_eq!(dead_rows(&env).await, 0);

    // An order routed to a unit that does not exist waits, named, and nothing else stops.
    let customer: i64 = sqlx::query_scalar("SELECT min(id) FROM customers")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO orders (id, unit_id, customer_id, ordered_at, status, total) \
         VALUES (990001, 99, $1, now(), 'aberto', 10.00)",
    )
    .bind(customer)
    .execute(&env.pg)
    .await
    .unwrap();
    sqlx::query("UPDATE products SET stock = stock + 1 WHERE id = (SELECT min(id) FROM products)")
        .execute(&env.pg)
        .await
        .unwrap();
    let pg = env.pg.clone();
    wait_until(
        Duration::from_secs(30),
        "the refused order reported",
        || {
            let pg = pg.clone();
            async move {
                let error: Option<String> = sqlx::query_scalar(
                    "SELECT last_error FROM ponte_periodic_cursor WHERE table_name = 'orders'",
                )
                .fetch_optional(&pg)
                .await?
                .flatten();
                Ok(error.is_some_and(|e| e.contains("990001 -> 99") && e.contains("unit_id")))
            }
        },
    )
    .await
    .unwrap();
    let status = ponte::ops::status::report(&env.config().unwrap())
        .await
        .unwrap();
    assert!(
        status.contains("periodic sync")
            && status.contains("WAITING")
            && status.contains("990001 -> 99"),
        "{status}"
    );
    check::units_match(&env, Duration::from_secs(60))
        .await
        .unwrap();
    let sent_for_it: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox WHERE payload->>'id' = '990001'")
            .fetch_one(&env.pg)
            .await
            .unwrap();
    assert_eq!(sent_for_it, 0, "nothing was sent for the unroutable order");
    // Fixed by the operator: it goes to its unit.
    sqlx::query("UPDATE orders SET unit_id = 2 WHERE id = 990001")
        .execute(&env.pg)
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(60))
        .await
        .unwrap();
    let to: Vec<(i32,)> =
        sqlx::query_as("SELECT unit_id FROM pg_sync_outbox WHERE payload->>'id' = '990001'")
            .fetch_all(&env.pg)
            .await
            .unwrap();
    assert_eq!(to, vec![(2,)]);

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(6), running.wait())
        .await
        .expect("stops within 6 s");
    env.cleanup().await;
}

/// Inserts `n` customers from `first` in one transaction: one timestamp for all of them.
async fn insert_customers(pool: &sqlx::PgPool, first: i64, n: i64) {
    sqlx::query(
        "INSERT INTO customers (id, name, city, updated_at) \
         SELECT i, 'Cliente ' || i, 'Cidade ' || (i % 97), now() FROM generate_series($1::bigint, $2::bigint) i",
    )
    .bind(first)
    .bind(first + n - 1)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_transaction_and_a_same_timestamp_burst_lose_nothing_and_lag_stays_low() {
    let mut env = TestEnv::new(&UnitSpec::mixed(3))
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.table_extra = vec![(
        "customers".into(),
        format!("{PERIODIC}\nchange_column = \"updated_at\"\nlookback = \"0s\""),
    )];
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    sqlx::query("CREATE INDEX customers_updated_at ON customers (updated_at)")
        .execute(&env.pg)
        .await
        .unwrap();
    let (running, stop) = env.start(relay_and_apply()).await.expect("host starts");

    // A transaction that stays open for 10 rounds, its row stamped at its start.
    let mut long = sqlx::PgConnection::connect(&env.pg_url).await.unwrap();
    let mut long_tx = long.begin().await.unwrap();
    sqlx::query("INSERT INTO customers (id, name, city) VALUES (1000000, 'Longa', 'Espera')")
        .execute(&mut *long_tx)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 10k rows with one timestamp, then updates of some of them, one transaction each.
    insert_customers(&env.pg, 1, 10_000).await;
    for i in 0..50i64 {
        sqlx::query(
            "UPDATE customers SET city = 'Mudou ' || $1::text, updated_at = now() WHERE id = $2",
        )
        .bind(i.to_string())
        .bind(i * 7 + 1)
        .execute(&env.pg)
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    long_tx.commit().await.unwrap();
    check::units_match(&env, Duration::from_secs(120))
        .await
        .unwrap();
    let (cursor_rounds, waiting): (i64, i64) = sqlx::query_as(
        "SELECT rounds, rows_waiting FROM ponte_periodic_cursor WHERE table_name = 'customers'",
    )
    .fetch_one(&env.pg)
    .await
    .unwrap();
    assert!(
        cursor_rounds >= 5,
        "rounds ran while the transaction was open: {cursor_rounds}"
    );
    assert_eq!(waiting, 0);
    let long_sent: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox WHERE payload->>'id' = '1000000'")
            .fetch_one(&env.pg)
            .await
            .unwrap();
    assert_eq!(long_sent, 3, "the late row went to each unit once");

    // Lag: one change every 250 ms for 10 s, commit -> unit commit.
    let mut committed: Vec<(i64, DateTime<Utc>)> = Vec::new();
    let pace = Instant::now();
    for i in 0..40i64 {
        let id = 5_000 + i;
        sqlx::query(
            "UPDATE customers SET name = 'Lag ' || $1::text, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .execute(&env.pg)
        .await
        .unwrap();
        committed.push((id, Utc::now()));
        let next = Duration::from_millis(250 * (i as u64 + 1));
        tokio::time::sleep(next.saturating_sub(pace.elapsed())).await;
    }
    check::units_match(&env, Duration::from_secs(60))
        .await
        .unwrap();
    env.wait_outbox_drained(Duration::from_secs(60))
        .await
        .unwrap();
    let applied: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, payload->>'id' FROM pg_sync_outbox WHERE unit_id = 1 \
         AND payload->>'name' LIKE 'Lag %'",
    )
    .fetch_all(&env.pg)
    .await
    .unwrap();
    let db = env.units[0].1.clone();
    let at: Vec<(i64, NaiveDateTime)> = tokio::task::spawn_blocking(move || {
        let mut conn = ponte_tests::firebird::connect(&db).unwrap();
        let rows: Vec<(i64, NaiveDateTime)> = conn
            .query("SELECT OUTBOX_ID, APPLIED_AT FROM SYNC_CONTROL", ())
            .unwrap();
        let _ = conn.close();
        rows
    })
    .await
    .unwrap();
    let mut lags: Vec<f64> = committed
        .iter()
        .map(|(id, when)| {
            let outbox = applied
                .iter()
                .find(|(_, key)| *key == id.to_string())
                .map(|(o, _)| *o)
                .unwrap_or_else(|| panic!("no outbox row for customer {id}"));
            let unit_at = at
                .iter()
                .find(|(o, _)| *o == outbox)
                .map(|(_, t)| t.and_utc())
                .unwrap_or_else(|| panic!("outbox row {outbox} not in unit 1's ledger"));
            (unit_at - *when).num_milliseconds() as f64 / 1000.0
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    let p = |q: f64| lags[((lags.len() as f64 * q).ceil() as usize).clamp(1, lags.len()) - 1];
    println!(
        "periodic lag (every = 1s): p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        p(0.5),
        p(0.99),
        lags[lags.len() - 1]
    );
    assert!(p(0.99) <= 2.0, "p99 lag {:.3} s > 2x the interval", p(0.99));
    no_version_sent_twice(&env).await;
    assert_eq!(dead_rows(&env).await, 0);

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(6), running.wait())
        .await
        .expect("stops within 6 s");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_round_redoes_the_round_exactly_once() {
    let mut env = TestEnv::new(&UnitSpec::mixed(3))
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.table_extra = vec![("customers".into(), PERIODIC.into())];
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    insert_customers(&env.pg, 1, 60_000).await;
    let config = env.write_config().unwrap();
    let log = std::env::temp_dir().join(format!("{}-host.log", env.name));
    let mut host = HostProcess::spawn(BIN, &config, &["run"], &log).expect("spawn host");
    let pg = env.pg.clone();
    wait_until(Duration::from_secs(60), "a periodic round at work", || {
        let pg = pg.clone();
        async move {
            let busy: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
                 AND query LIKE '%INSERT INTO ponte_periodic_row%' AND pid <> pg_backend_pid()",
            )
            .fetch_one(&pg)
            .await?;
            Ok(busy > 0)
        }
    })
    .await
    .unwrap();
    host.kill9();
    // The killed round's transaction rolls back as its connection goes.
    let pg = env.pg.clone();
    wait_until(
        Duration::from_secs(30),
        "the killed round's session gone",
        || {
            let pg = pg.clone();
            async move {
                let left: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ponte'",
                )
                .fetch_one(&pg)
                .await?;
                Ok(left == 0)
            }
        },
    )
    .await
    .unwrap();
    let after_kill: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox WHERE table_name = 'customers'")
            .fetch_one(&env.pg)
            .await
            .unwrap();
    assert_eq!(after_kill, 0, "the round was killed before it committed");

    let mut host = HostProcess::spawn(BIN, &config, &["run"], &log).expect("respawn host");
    check::units_match(&env, Duration::from_secs(240))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", host.log_text()));
    env.wait_outbox_drained(Duration::from_secs(60))
        .await
        .unwrap();
    let per_row: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (unit_id, payload->>'id')) FROM pg_sync_outbox \
         WHERE table_name = 'customers'",
    )
    .fetch_all(&env.pg)
    .await
    .unwrap();
    assert_eq!(
        per_row,
        vec![(180_000, 180_000)],
        "each row once to each unit"
    );
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    host.terminate();
    assert!(host.wait_exit(Duration::from_secs(10)).is_some());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_unit_change_to_a_periodic_table_is_not_sent_back() {
    let mut env = upstream_env(&UnitSpec::mixed(3), "pg_wins")
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.table_extra = vec![("customers".into(), PERIODIC.into())];
    let (running, stop) = env.start(Roles::all()).await.expect("host starts");

    let id = unit2_customer_reaches_units_1_and_3(&env)
        .await
        .expect("the unit-2 customer at units 1 and 3");
    // Several rounds pass: they send nothing for the row (the fan-out carried it).
    tokio::time::sleep(Duration::from_secs(4)).await;
    env.wait_outbox_drained(Duration::from_secs(30))
        .await
        .unwrap();
    let rows: Vec<(i32, Option<i32>)> = sqlx::query_as(
        "SELECT unit_id, origin_unit FROM pg_sync_outbox \
         WHERE table_name = 'customers' AND payload->>'id' = $1 ORDER BY unit_id, id",
    )
    .bind(id.to_string())
    .fetch_all(&env.pg)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![(1, Some(2)), (1, Some(2)), (3, Some(2)), (3, Some(2))],
        "only the hub fan-out, nothing back to unit 2"
    );
    // The application changes it in PostgreSQL: the next round sends it to all three units.
    sqlx::query("UPDATE customers SET name = 'Editado no PostgreSQL' WHERE id = $1")
        .bind(id)
        .execute(&env.pg)
        .await
        .unwrap();
    let pg = env.pg.clone();
    wait_until(
        Duration::from_secs(30),
        "the PostgreSQL edit captured",
        || {
            let pg = pg.clone();
            async move {
                let units: Vec<(i32,)> = sqlx::query_as(
                    "SELECT unit_id FROM pg_sync_outbox WHERE table_name = 'customers' \
                 AND payload->>'id' = $1 AND payload->>'name' = 'Editado no PostgreSQL' \
                 AND origin_unit IS NULL ORDER BY unit_id",
                )
                .bind(id.to_string())
                .fetch_all(&pg)
                .await?;
                Ok(units == vec![(1,), (2,), (3,)])
            }
        },
    )
    .await
    .unwrap();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(6), running.wait())
        .await
        .expect("stops within 6 s");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_periodic_tables_are_refused_by_name() {
    let mut env = TestEnv::new(&UnitSpec::mixed(1))
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    let refusal = |env: &TestEnv| {
        let config = env.config().unwrap();
        let pg = env.pg.clone();
        async move {
            ponte::periodic::resolve(&pg, &config)
                .await
                .map(|t| t.len())
                .map_err(|e| format!("{e:#}"))
        }
    };
    env.table_extra = vec![(
        "customers".into(),
        format!("{PERIODIC}\nchange_column = \"name\""),
    )];
    let err = refusal(&env).await.unwrap_err();
    assert!(
        err.contains("table customers: change_column name is character varying(100)"),
        "{err}"
    );
    env.table_extra = vec![(
        "customers".into(),
        format!("{PERIODIC}\nchange_column = \"changed\""),
    )];
    let err = refusal(&env).await.unwrap_err();
    assert!(
        err.contains("change_column changed") && err.contains("no such column"),
        "{err}"
    );
    sqlx::raw_sql("CREATE TABLE keyless (a int, b text)")
        .execute(&env.pg)
        .await
        .unwrap();
    env.table_extra = Vec::new();
    env.extra_toml = format!("[tables.keyless]\n{PERIODIC}\n");
    let err = refusal(&env).await.unwrap_err();
    assert!(
        err.contains("keyless") && err.contains("no primary key"),
        "{err}"
    );
    env.extra_toml = String::new();
    env.table_extra = vec![(
        "customers".into(),
        format!("{PERIODIC}\nchange_column = \"updated_at\""),
    )];
    assert_eq!(refusal(&env).await, Ok(1));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_locked_row_waits_without_a_busy_loop_and_goes_when_released() {
    let mut env = TestEnv::new(&UnitSpec::mixed(1))
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.table_extra = vec![(
        "customers".into(),
        "outbox = \"periodic\"\nevery = \"5s\"".into(),
    )];
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    insert_customers(&env.pg, 1, 10).await;
    let (running, stop) = env.start(relay_and_apply()).await.expect("host starts");
    check::units_match(&env, Duration::from_secs(60))
        .await
        .unwrap();
    let rounds = |pg: sqlx::PgPool| async move {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT rounds, rows_waiting FROM ponte_periodic_cursor WHERE table_name = 'customers'",
        )
        .fetch_one(&pg)
        .await
        .unwrap()
    };
    // Right after a round (the next is 5 s away): changed, then held by another transaction (a
    // legacy report's SELECT FOR UPDATE).
    let (r0, _) = rounds(env.pg.clone()).await;
    let pg = env.pg.clone();
    wait_until(Duration::from_secs(20), "the next round", || {
        let pg = pg.clone();
        async move { Ok(rounds(pg).await.0 > r0) }
    })
    .await
    .unwrap();
    sqlx::query("UPDATE customers SET city = 'Trancada' WHERE id = 1")
        .execute(&env.pg)
        .await
        .unwrap();
    let mut holder = sqlx::PgConnection::connect(&env.pg_url).await.unwrap();
    let mut held = holder.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM customers WHERE id = 1 FOR UPDATE")
        .execute(&mut *held)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (before, waiting) = rounds(env.pg.clone()).await;
    assert_eq!(waiting, 1, "the locked row waits");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (after, waiting) = rounds(env.pg.clone()).await;
    assert_eq!(waiting, 1);
    assert!(
        after - before <= 6,
        "{} rounds in 10 s while one row stayed locked (backing off up to every = 5s)",
        after - before
    );
    held.rollback().await.unwrap();
    check::units_match(&env, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(rounds(env.pg.clone()).await.1, 0);
    no_version_sent_twice(&env).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(6), running.wait())
        .await
        .expect("stops within 6 s");
    env.cleanup().await;
}
