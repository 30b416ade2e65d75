//! `ponte load` as a real process: `kill -9` in the middle of a table, then the same command
//! resumes after the last committed chunk (none written twice, none lost); a second load of the
//! same unit while one runs is refused; an unknown unit, an unknown table and a table without a
//! primary key are refused with a message naming them. The unit then matches row by row.

use std::process::Command;
use std::time::{Duration, Instant};

use ponte::daemon::Roles;
use ponte::lifecycle::{self, Tools};
use ponte::progress::Progress;
use ponte::telemetry::LifecycleMetrics;
use ponte_tests::process::HostProcess;
use ponte_tests::{check, TestEnv, UnitSpec};

const BIN: &str = env!("CARGO_BIN_EXE_ponte-under-test");
const CUSTOMERS: i64 = 20_000;
const PRODUCTS: i64 = 3_000;

async fn chunks_done(env: &TestEnv, table: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(max(p.chunks_done), 0) FROM ponte_load_progress p \
         JOIN ponte_load_run r ON r.id = p.run_id WHERE r.unit_id = 1 AND p.table_name = $1",
    )
    .bind(table)
    .fetch_one(&env.pg)
    .await
    .unwrap()
}

fn ponte(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_load_then_rerun_resumes() {
    let mut env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("env");
    sqlx::raw_sql("CREATE TABLE nopk (id BIGINT, v TEXT)")
        .execute(&env.pg)
        .await
        .unwrap();
    // No host runs during the loads (it starts at the end): no flow control (`ahead_chunks = 0`).
    env.extra_toml =
        "[load]\nchunk_size = 40\nahead_chunks = 0\n[tables.nopk]\nops = \"IUD\"\ntransform = \"generic\"\n".into();
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    // Rows PostgreSQL has had for years (no outbox rows: the unit never saw them).
    sqlx::raw_sql(&format!(
        "INSERT INTO customers \
         (id, name, email, city, active, credit_limit, birth_date, updated_at) \
         SELECT g, 'Cliente ' || g || ' Conceição', 'c' || g || '@example.com', 'São Paulo', \
                g % 3 <> 0, \
                (g * 37 % 100000) / 100.0, DATE '1970-01-01' + (g % 15000), \
                TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * INTERVAL '1.2345 second' \
         FROM generate_series(1, {CUSTOMERS}) g; \
         INSERT INTO products (id, sku, description, price, stock, discontinued) \
         SELECT 100000 + g, 'SKU-' || g, 'Pão de queijo nº ' || g, g % 997 + 0.99, g % 50, \
                g % 7 = 0 \
         FROM generate_series(1, {PRODUCTS}) g;"
    ))
    .execute(&env.pg)
    .await
    .unwrap();
    let config_path = env.write_config().unwrap();

    // Bad input first: each refused with a message naming what is wrong.
    let (ok, text) = ponte(&config_path, &["load", "--unit", "99"]);
    assert!(!ok && text.contains("unit 99 is not configured"), "{text}");
    let (ok, text) = ponte(&config_path, &["load", "--unit", "1", "--table", "nope"]);
    assert!(
        !ok && text.contains("--table nope: not a configured table"),
        "{text}"
    );
    let (ok, text) = ponte(&config_path, &["load", "--unit", "1", "--table", "nopk"]);
    assert!(!ok && text.contains("has no primary key"), "{text}");

    // kill -9 in the middle of customers.
    let log = std::env::temp_dir().join(format!("ponte-{}-load.log", env.name));
    let mut first = HostProcess::spawn(
        BIN,
        &config_path,
        &[
            "load",
            "--unit",
            "1",
            "--table",
            "customers",
            "--table",
            "products",
        ],
        &log,
    )
    .unwrap();
    let started = Instant::now();
    while chunks_done(&env, "customers").await < 30 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "load did not start: {}",
            first.log_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill9();
    let killed_at = chunks_done(&env, "customers").await;
    let (run, rows_done): (i64, i64) = sqlx::query_as(
        "SELECT r.id, p.rows_done FROM ponte_load_run r \
         JOIN ponte_load_progress p ON p.run_id = r.id \
         WHERE r.unit_id = 1 AND p.table_name = 'customers'",
    )
    .fetch_one(&env.pg)
    .await
    .unwrap();
    assert!(
        killed_at < CUSTOMERS / 40,
        "killed before the end ({killed_at} chunks)"
    );
    // Chunk and progress commit together: the outbox holds exactly the rows progress says.
    let in_outbox: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_sync_outbox WHERE load_run = $1 AND table_name = 'customers'",
    )
    .bind(run)
    .fetch_one(&env.pg)
    .await
    .unwrap();
    assert_eq!(in_outbox, rows_done);
    println!("killed after {killed_at} chunks, {rows_done} rows");

    // Rerun: it resumes; while it runs, a second load of the unit is refused.
    let log2 = std::env::temp_dir().join(format!("ponte-{}-load2.log", env.name));
    let mut second = HostProcess::spawn(
        BIN,
        &config_path,
        &[
            "load",
            "--unit",
            "1",
            "--table",
            "customers",
            "--table",
            "products",
        ],
        &log2,
    )
    .unwrap();
    while chunks_done(&env, "customers").await <= killed_at {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "rerun did not start: {}",
            second.log_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let config = env.config().unwrap();
    let tools = Tools::open(&config, LifecycleMetrics::detached().unwrap())
        .await
        .unwrap();
    let options = lifecycle::LoadOptions {
        tables: vec![],
        delete_extra: false,
        skip_extra: true,
    };
    let unit = config.units().remove(0);
    let refused = lifecycle::load_unit(
        &env.pg,
        &config,
        &tools,
        &unit,
        &options,
        &Progress::lines(),
    )
    .await;
    let message = format!("{:#}", refused.expect_err("a second load is refused"));
    assert!(message.contains("already running"), "{message}");
    let status = second
        .wait_exit(Duration::from_secs(120))
        .expect("rerun ends");
    assert!(status.success(), "{}", second.log_text());
    let out = second.log_text();
    assert!(out.contains("after resuming"), "{out}");
    assert!(out.contains("0 extra"), "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "a log written to a file carries no colour codes: {out}"
    );

    // Nothing lost, nothing twice: every row once in the run, the same run.
    let (rows, keys, runs): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (table_name, payload->>'id')), count(DISTINCT load_run) \
         FROM pg_sync_outbox WHERE load_run IS NOT NULL",
    )
    .fetch_one(&env.pg)
    .await
    .unwrap();
    assert_eq!(
        (rows, keys, runs),
        (CUSTOMERS + PRODUCTS, CUSTOMERS + PRODUCTS, 1)
    );
    let (ok, text) = ponte(&config_path, &["load", "--status"]);
    assert!(
        ok && text.contains("customers") && text.contains("done"),
        "{text}"
    );
    println!("{text}");

    // Through the pipeline, the unit matches row by row.
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    env.wait_outbox_drained(Duration::from_secs(180))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(120))
        .await
        .unwrap();
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    let (ok, text) = ponte(
        &config_path,
        &[
            "verify",
            "--unit",
            "1",
            "--table",
            "customers",
            "--table",
            "products",
        ],
    );
    assert!(ok, "{text}");
    println!("{text}");
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
