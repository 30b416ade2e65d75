//! `ponte outbox install|remove` against the real PostgreSQL: the triggers write exactly the
//! outbox rows the demo application writes by hand (same units, order and row images; the key
//! for a delete); nothing while ponte applies (`ponte.applying`); install shows its plan with
//! --dry-run and changes nothing, a second install says "no change", an older or disabled
//! trigger is detected and replaced; remove leaves the data and the outbox rows; bad routing
//! fails the business transaction with the table, the column and the value; a table without a
//! primary key or an unknown routing column is refused before anything is installed.

use ponte::demo::{load, load_with, LoadOptions, OutboxWrites};
use ponte::outbox_capture::{self, Action};
use ponte_tests::{TestEnv, UnitSpec};
use serde_json::Value;

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

const TRIGGER: &str = "outbox = \"trigger\"";

async fn env() -> TestEnv {
    let mut env = TestEnv::new(&UNITS)
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.table_toml = TRIGGER.into();
    env
}

async fn scalar(env: &TestEnv, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&env.pg).await.unwrap()
}

async fn ponte_triggers(env: &TestEnv) -> i64 {
    scalar(
        env,
        "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname::text LIKE 'ponte\\_ob\\_%'",
    )
    .await
}

/// (unit, table, op, payload) of every outbox row in id order; a delete's payload cut to the key.
async fn outbox_rows(env: &TestEnv) -> Vec<(i32, String, String, Value)> {
    let rows: Vec<(i32, String, String, sqlx::types::Json<Value>)> = sqlx::query_as(
        "SELECT unit_id, table_name::text, operation::text, payload FROM pg_sync_outbox ORDER BY id",
    )
    .fetch_all(&env.pg)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(u, t, op, p)| {
            let mut p = p.0;
            if op == "D" {
                let key: &[&str] = if t == "order_items" {
                    &["order_id", "line_no"]
                } else {
                    &["id"]
                };
                p = key.iter().map(|k| (k.to_string(), p[*k].clone())).collect();
            }
            (u, t, op, p)
        })
        .collect()
}

fn options(changes: u64) -> LoadOptions {
    LoadOptions {
        changes,
        units: vec![1, 2],
        concurrency: 1,
        seed: 11,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_write_what_the_application_writes() {
    let env = env().await;
    let config = env.config().unwrap();

    // The application's own rows for a deterministic stream (one writer, fixed seed)...
    load(&env.pg, &options(400), |_| {}).await.unwrap();
    let by_hand = outbox_rows(&env).await;
    sqlx::raw_sql(
        "TRUNCATE order_items, orders, customers, products, pg_sync_outbox; \
         ALTER SEQUENCE demo_id_seq RESTART",
    )
    .execute(&env.pg)
    .await
    .unwrap();

    // ... and the triggers' rows for the same stream, the application writing none.
    let dry = outbox_capture::install(&config, &[], true).await.unwrap();
    assert_eq!(dry.changed(), 4, "{dry}");
    assert!(dry.to_string().contains("CREATE TRIGGER"), "{dry}");
    assert_eq!(ponte_triggers(&env).await, 0, "--dry-run changes nothing");
    assert_eq!(
        scalar(&env, "SELECT count(*) FROM ponte_outbox_trigger").await,
        0
    );
    let done = outbox_capture::install(&config, &[], false).await.unwrap();
    assert_eq!(done.changed(), 4, "{done}");
    assert!(
        done.steps.iter().all(|s| s.action == Action::Create),
        "{done}"
    );
    assert_eq!(ponte_triggers(&env).await, 4);
    let again = outbox_capture::install(&config, &[], false).await.unwrap();
    assert_eq!(again.changed(), 0, "idempotent: {again}");
    assert!(
        again.steps.iter().all(|s| s.action == Action::Unchanged),
        "{again}"
    );
    assert!(outbox_capture::check(&config).await.unwrap().is_empty());

    let summary = load_with(&env.pg, &options(400), OutboxWrites::Left, |_| {})
        .await
        .unwrap();
    assert_eq!(
        summary.outbox_rows, 0,
        "the application wrote no outbox row"
    );
    let by_trigger = outbox_rows(&env).await;
    let ops: std::collections::BTreeSet<&str> = by_trigger.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(ops.len(), 3, "inserts, updates and deletes: {ops:?}");
    assert!(by_hand.len() > 1_000, "{}", by_hand.len());
    assert_eq!(by_trigger.len(), by_hand.len());
    for (i, (t, h)) in by_trigger.iter().zip(&by_hand).enumerate() {
        assert_eq!(t, h, "outbox row {i} differs");
    }

    // ponte's own apply is not captured; an application write next to it is.
    sqlx::raw_sql(
        "BEGIN; SET LOCAL ponte.applying = 'on'; \
         INSERT INTO customers (id, name) VALUES (990001, 'Vindo da loja'); COMMIT; \
         INSERT INTO customers (id, name) VALUES (990002, 'Do PostgreSQL');",
    )
    .execute(&env.pg)
    .await
    .unwrap();
    let rows: Vec<(i32, String)> = sqlx::query_as(
        "SELECT unit_id, payload->>'id' FROM pg_sync_outbox WHERE payload->>'id' IN \
         ('990001', '990002') ORDER BY id",
    )
    .fetch_all(&env.pg)
    .await
    .unwrap();
    assert_eq!(rows, vec![(1, "990002".into()), (2, "990002".into())]);

    // Remove: triggers and functions go, data and outbox rows stay, nothing is captured after.
    let (customers, outbox) = (
        scalar(&env, "SELECT count(*) FROM customers").await,
        scalar(&env, "SELECT count(*) FROM pg_sync_outbox").await,
    );
    let dry = outbox_capture::remove(&config, &[], true).await.unwrap();
    assert_eq!((dry.changed(), ponte_triggers(&env).await), (4, 4), "{dry}");
    let gone = outbox_capture::remove(&config, &[], false).await.unwrap();
    assert_eq!(gone.changed(), 4, "{gone}");
    assert_eq!(ponte_triggers(&env).await, 0);
    let functions = scalar(
        &env,
        "SELECT count(*) FROM pg_proc WHERE proname::text LIKE 'ponte\\_ob\\_%'",
    )
    .await;
    assert_eq!(functions, 0);
    sqlx::query("UPDATE customers SET name = 'Depois' WHERE id = 990002")
        .execute(&env.pg)
        .await
        .unwrap();
    assert_eq!(
        scalar(&env, "SELECT count(*) FROM customers").await,
        customers
    );
    assert_eq!(
        scalar(&env, "SELECT count(*) FROM pg_sync_outbox").await,
        outbox
    );
    let again = outbox_capture::remove(&config, &[], false).await.unwrap();
    assert_eq!(again.changed(), 0, "{again}");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_and_disabled_triggers_are_replaced() {
    let env = env().await;
    let config = env.config().unwrap();
    outbox_capture::install(&config, &[], false).await.unwrap();

    // An install by an older ponte: another body, recorded as version 0.
    sqlx::raw_sql(
        "CREATE OR REPLACE FUNCTION public.ponte_ob_customers() RETURNS trigger LANGUAGE plpgsql \
         AS $$BEGIN RETURN NULL; END$$; \
         UPDATE ponte_outbox_trigger SET version = 0, body_sha256 = \
         encode(sha256(convert_to('BEGIN RETURN NULL; END', 'UTF8')), 'hex') \
         WHERE table_name = 'customers'; \
         ALTER TABLE products DISABLE TRIGGER ponte_ob_products;",
    )
    .execute(&env.pg)
    .await
    .unwrap();
    let problems = outbox_capture::check(&config).await.unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("table customers") && problems[0].contains("version 0"));
    assert!(problems[1].contains("table products") && problems[1].contains("disabled"));

    let only = outbox_capture::install(&config, &["customers".to_string()], true)
        .await
        .unwrap();
    assert_eq!(only.steps.len(), 1, "--table limits the plan: {only}");
    let fixed = outbox_capture::install(&config, &[], false).await.unwrap();
    let text = fixed.to_string();
    assert_eq!(fixed.changed(), 2, "{text}");
    assert!(
        text.contains("table customers: replace version 0"),
        "{text}"
    );
    assert!(
        text.contains("table products: recreate the trigger (disabled"),
        "{text}"
    );
    assert!(text.contains("table orders: no change"), "{text}");
    sqlx::query("INSERT INTO products (id, sku, description, price) VALUES (5, 'S', 'D', 1)")
        .execute(&env.pg)
        .await
        .unwrap();
    assert_eq!(
        scalar(
            &env,
            "SELECT count(*) FROM pg_sync_outbox WHERE table_name = 'products'"
        )
        .await,
        2,
        "the re-enabled trigger captures for both units"
    );
    let again = outbox_capture::install(&config, &[], false).await.unwrap();
    assert_eq!(again.changed(), 0, "{again}");

    // A table no longer trigger-captured loses its trigger on the next full install.
    let mut env = env;
    env.table_toml = String::new();
    env.extra_toml = "[tables.shipments]\noutbox = \"trigger\"\n".into();
    sqlx::raw_sql("CREATE TABLE shipments (id bigint PRIMARY KEY, site int)")
        .execute(&env.pg)
        .await
        .unwrap();
    let narrowed = outbox_capture::install(&env.config().unwrap(), &[], false)
        .await
        .unwrap();
    assert_eq!(narrowed.changed(), 5, "{narrowed}");
    assert_eq!(ponte_triggers(&env).await, 1);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_routing_and_bad_tables_fail_loudly() {
    let mut env = env().await;
    sqlx::raw_sql(
        "CREATE TABLE shipments (id bigint PRIMARY KEY, site text); \
         CREATE TABLE audit_notes (id bigint, note text);",
    )
    .execute(&env.pg)
    .await
    .unwrap();

    // Refused before anything is installed: no primary key, an unknown column, a bad expression.
    for (extra, words) in [
        (
            "[tables.audit_notes]\noutbox = \"trigger\"\n",
            &["table audit_notes", "no primary key"][..],
        ),
        (
            "[tables.shipments]\noutbox = \"trigger\"\nunit_column = \"unit\"\n",
            &["table shipments", "unit_column `unit`", "id, site"][..],
        ),
        (
            "[tables.shipments]\noutbox = \"trigger\"\nunit_sql = \"t.nope + 1\"\n",
            &["table shipments", "unit_sql (t.nope + 1)", "nope"][..],
        ),
    ] {
        env.extra_toml = extra.into();
        let config = env.config().unwrap();
        let err = outbox_capture::install(&config, &[], false)
            .await
            .unwrap_err()
            .to_string();
        for w in words {
            assert!(err.contains(w), "{w:?} not in {err}");
        }
        let problems = outbox_capture::check(&config).await.unwrap();
        assert!(
            problems.iter().any(|p| p.contains(words[0])),
            "{problems:?}"
        );
        assert_eq!(ponte_triggers(&env).await, 0, "nothing installed: {err}");
    }
    let err = outbox_capture::install(&env.config().unwrap(), &["payroll".into()], false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--table payroll") && err.contains("no [tables.payroll]"),
        "{err}"
    );

    // Routing that names no unit fails the business transaction, with table, column and value.
    env.extra_toml = "[tables.shipments]\noutbox = \"trigger\"\nunit_column = \"site\"\n".into();
    let config = env.config().unwrap();
    outbox_capture::install(&config, &[], false).await.unwrap();
    for (site, words) in [
        ("NULL", &["table shipments", "column site", "NULL"][..]),
        (
            "'9'",
            &["table shipments", "column site", "'9'", "configured: 1-2"][..],
        ),
    ] {
        let err = sqlx::query(&format!("INSERT INTO shipments VALUES (1, {site})"))
            .execute(&env.pg)
            .await
            .unwrap_err()
            .to_string();
        for w in words {
            assert!(err.contains(w), "{w:?} not in {err}");
        }
    }
    // The demo's orders route by unit_id: a unit outside [units] ids is refused the same way.
    sqlx::raw_sql(
        "BEGIN; SET LOCAL ponte.applying = 'on'; \
         INSERT INTO customers (id, name) VALUES (1, 'Cliente'); COMMIT;",
    )
    .execute(&env.pg)
    .await
    .unwrap();
    let err = sqlx::query(
        "INSERT INTO orders (id, unit_id, customer_id, ordered_at, status, total) \
         VALUES (1, 3, 1, now(), 'x', 0)",
    )
    .execute(&env.pg)
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("table orders, column unit_id: value '3'"),
        "{err}"
    );
    assert_eq!(scalar(&env, "SELECT count(*) FROM orders").await, 0);
    assert_eq!(scalar(&env, "SELECT count(*) FROM shipments").await, 0);
    assert_eq!(scalar(&env, "SELECT count(*) FROM pg_sync_outbox").await, 0);

    // A row moved to another unit: the old unit deletes it, the new one inserts it.
    sqlx::raw_sql(
        "INSERT INTO shipments VALUES (1, '1'); UPDATE shipments SET site = '2' WHERE id = 1; \
         UPDATE shipments SET id = 2 WHERE id = 1; DELETE FROM shipments WHERE id = 2;",
    )
    .execute(&env.pg)
    .await
    .unwrap();
    let rows: Vec<(i32, String, String)> = sqlx::query_as(
        "SELECT unit_id, operation::text, payload::text FROM pg_sync_outbox ORDER BY id",
    )
    .fetch_all(&env.pg)
    .await
    .unwrap();
    let expected: Vec<(i32, &str, &str)> = vec![
        (1, "I", r#"{"id": 1, "site": "1"}"#),
        (1, "D", r#"{"id": 1}"#),
        (2, "I", r#"{"id": 1, "site": "2"}"#),
        (2, "D", r#"{"id": 1}"#),
        (2, "I", r#"{"id": 2, "site": "2"}"#),
        (2, "D", r#"{"id": 2}"#),
    ];
    let found: Vec<(i32, &str, &str)> = rows
        .iter()
        .map(|(u, o, p)| (*u, o.as_str(), p.as_str()))
        .collect();
    assert_eq!(found, expected);
    env.cleanup().await;
}
