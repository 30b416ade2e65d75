//! `ponte load` through faults: the unit's Firebird shut down in the middle of a load, then the
//! broker stopped in the middle of another. The load only writes to PostgreSQL, so its chunks
//! are all queued either way; counting extras needs the unit, so with the unit down the command
//! fails naming it, and the rerun finishes the count. Once the unit and the broker are back,
//! every chunk row and every live change is applied exactly once, in order, and the unit equals
//! PostgreSQL row by row (unit 1, loaded without faults, is the control).

use std::time::Duration;

use ponte::daemon::Roles;
use ponte::lifecycle::{self, Tools};
use ponte::progress::Progress;
use ponte::telemetry::LifecycleMetrics;
use ponte_tests::tools::{gfix, rabbitmqctl};
use ponte_tests::{check, paced, TestEnv, UnitSpec};

const CUSTOMERS: i64 = 3_000;

/// Waits (at most 60 s) until the load has queued `rows` chunk rows.
async fn wait_for_chunk_rows(env: &TestEnv, rows: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox WHERE load_run IS NOT NULL")
                .fetch_one(&env.pg)
                .await
                .unwrap();
        if done >= rows {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the load queued {done} of {rows} rows in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_survives_a_unit_and_a_broker_outage() {
    let mut env = TestEnv::new(&[1, 2].map(|id| UnitSpec {
        id,
        charset: "WIN1252",
    }))
    .await
    .expect("test environment");
    // Without flow control (`ahead_chunks = 0`) a load queues every chunk whatever the unit and
    // the broker do: the faults land between queued and applied. (With it, a load waits for
    // its unit: lifecycle_load's a_load_stays_a_few_chunks_ahead_of_its_unit.)
    env.extra_toml = "[load]\nchunk_size = 25\nahead_chunks = 0\n".into();
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    // Rows PostgreSQL has had for years; unit 2 is a new site.
    sqlx::raw_sql(&format!(
        "INSERT INTO customers (id, name, email, city, active, credit_limit, birth_date) \
         SELECT 500000 + g, 'Cliente ' || g || ' Conceição', 'c' || g || '@example.com', \
                'São Paulo', g % 3 <> 0, (g * 37 % 100000) / 100.0, DATE '1970-01-01' + g % 15000 \
         FROM generate_series(1, {CUSTOMERS}) g"
    ))
    .execute(&env.pg)
    .await
    .unwrap();
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .expect("host starts");
    let config = env.config().unwrap();
    let tools = Tools::open(&config, LifecycleMetrics::detached().unwrap())
        .await
        .unwrap();
    let unit = config.units().into_iter().find(|u| u.id == 2).unwrap();
    let progress = Progress::lines();
    let options = lifecycle::LoadOptions {
        tables: vec!["customers".into()],
        delete_extra: false,
        skip_extra: false,
    };
    let (writing, writer) = paced::paced_writer(&env, 2, 20, Duration::from_millis(200), 5);

    // 1. The unit's Firebird goes down once the load has queued its first chunks.
    let down = env.units[1].1.clone();
    let outage = async {
        wait_for_chunk_rows(&env, 200).await;
        gfix(&["-shut", "full", "-force", "0"], &down);
    };
    let load = lifecycle::load_unit(&env.pg, &config, &tools, &unit, &options, &progress);
    let (failed, ()) = tokio::join!(load, outage);
    let message = format!("{:#}", failed.expect_err("counting extras needs the unit"));
    assert!(
        message.contains("unit 2"),
        "the error names the unit: {message}"
    );
    // Every chunk was queued all the same: the rerun only counts the extras.
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_sync_outbox WHERE load_run IS NOT NULL AND unit_id = 2",
    )
    .fetch_one(&env.pg)
    .await
    .unwrap();
    assert!(queued >= CUSTOMERS, "every chunk row queued: {queued}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    gfix(&["-online", "normal"], &down);
    let rerun = lifecycle::load_unit(&env.pg, &config, &tools, &unit, &options, &progress)
        .await
        .expect("the rerun finishes");
    let table = &rerun.tables[0];
    assert!(table.resumed, "the rerun resumes the interrupted run");
    assert_eq!(table.rows, 0, "no chunk is queued twice");
    assert_eq!(table.extra, Some(0));

    // 2. The broker stops in the middle of a second load (a fresh run).
    let first_run = queued;
    let outage = async {
        wait_for_chunk_rows(&env, first_run + 200).await;
        rabbitmqctl(&["stop_app"]);
    };
    let load = async {
        tokio::time::timeout(
            Duration::from_secs(120),
            lifecycle::load_unit(&env.pg, &config, &tools, &unit, &options, &progress),
        )
        .await
        .expect("the load does not need the broker")
    };
    let (second, ()) = tokio::join!(load, outage);
    tokio::time::sleep(Duration::from_secs(3)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["-q", "await_startup", "--timeout", "60"]);
    let second = second.expect("the second load finishes while the broker is down");
    assert!(!second.tables[0].resumed && second.tables[0].rows > 0);

    tokio::time::sleep(Duration::from_secs(2)).await;
    writing.cancel();
    assert!(writer.await.unwrap() > 0, "the application wrote meanwhile");
    // Unit 1 never had the history either: loaded without faults, it is the control.
    let unit1 = config.units().into_iter().find(|u| u.id == 1).unwrap();
    lifecycle::load_unit(&env.pg, &config, &tools, &unit1, &options, &progress)
        .await
        .expect("unit 1 loads");
    env.wait_outbox_drained(Duration::from_secs(240))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(180))
        .await
        .unwrap();
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
