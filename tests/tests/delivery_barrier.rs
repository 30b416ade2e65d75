//! The commit horizon is a barrier, not a filter. Three real sessions take transaction ids
//! A < B < C; B writes an outbox row and stays open; C commits a parent row, then A commits a
//! child of it. A's child is below the horizon (B) and C's parent is not, yet the parent has the
//! lower outbox id: the relay must hold A's child back until it can publish C's parent first, so
//! the unit's queue gets them parent first. And only a transaction that wrote outbox rows is a
//! horizon: one that merely stays open (an idle session) holds nothing back.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use ponte::daemon::Roles;
use ponte_tests::{amqp_url, TestEnv, UnitSpec};
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

async fn session(url: &str) -> PgConnection {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn
}

async fn statuses(env: &TestEnv) -> Vec<(String, String)> {
    sqlx::query_as("SELECT table_name::text, status::text FROM pg_sync_outbox ORDER BY id")
        .fetch_all(&env.pg)
        .await
        .unwrap()
}

/// One unit and a relay (no applier: the messages stay in the unit's queue) polling every 100 ms.
async fn relay_on_one_unit() -> (TestEnv, ponte::daemon::Running, CancellationToken) {
    let mut env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment");
    env.extra_toml = "[relay]\npoll_interval_ms = 100\n".into();
    let (running, stop) = env
        .start(Roles {
            relay: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    (env, running, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_transaction_blocks_the_later_rows_of_its_unit() {
    let (env, running, stop) = relay_on_one_unit().await;

    let mut a = session(&env.pg_url).await;
    let mut b = session(&env.pg_url).await;
    let mut c = session(&env.pg_url).await;
    // B writes an outbox row (so it may still commit one below C's) and stays open.
    sqlx::query(
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         VALUES (1, 'customers', 'I', '{\"id\": 899, \"name\": \"b\"}')",
    )
    .execute(&mut b)
    .await
    .unwrap();
    // C: the parent, committed first.
    sqlx::query("INSERT INTO customers (id, name) VALUES (900, 'parent')")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT 1, 'customers', 'I', to_jsonb(c) FROM customers c WHERE id = 900",
    )
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::query("COMMIT").execute(&mut c).await.unwrap();
    // A: the child, committed after C, with the older transaction id.
    sqlx::query(
        "INSERT INTO orders (id, unit_id, customer_id, ordered_at, status, total) \
         VALUES (901, 1, 900, now(), 'open', 10)",
    )
    .execute(&mut a)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT 1, 'orders', 'I', to_jsonb(o) FROM orders o WHERE id = 901",
    )
    .execute(&mut a)
    .await
    .unwrap();
    sqlx::query("COMMIT").execute(&mut a).await.unwrap();

    // B still runs: neither row may be published yet (the child must not overtake the parent).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = statuses(&env).await;
    assert_eq!(
        now,
        vec![
            ("customers".to_string(), "pending".to_string()),
            ("orders".to_string(), "pending".to_string())
        ],
        "with B running the relay published past the horizon"
    );

    sqlx::query("ROLLBACK").execute(&mut b).await.unwrap();
    env.wait_outbox_drained(Duration::from_secs(15))
        .await
        .unwrap();

    // The unit's queue holds them parent first (read with a consumer: a single-active-consumer
    // quorum queue refuses basic.get; nothing is acked, the queue is deleted afterwards).
    let conn = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let mut consumer = channel
        .basic_consume(
            format!("{}.unit.1", env.name).as_str().into(),
            "barrier-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut order = Vec::new();
    for _ in 0..2 {
        let next = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("a message in the unit queue")
            .expect("the consumer runs")
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&next.data).unwrap();
        order.push(body["table"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(
        order,
        vec!["customers", "orders"],
        "published out of commit-safe order"
    );
    let _ = conn.close(200, "bye".into()).await;
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_transaction_without_outbox_rows_holds_nothing_back() {
    let (env, running, stop) = relay_on_one_unit().await;
    // An old transaction that wrote something (it has an id) but no outbox row, left open.
    let mut idle = session(&env.pg_url).await;
    sqlx::query("INSERT INTO products (id, sku, description, price) VALUES (1, 's', 'd', 1)")
        .execute(&mut idle)
        .await
        .unwrap();
    sqlx::raw_sql(
        "BEGIN; INSERT INTO customers (id, name) VALUES (902, 'later'); \
         INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT 1, 'customers', 'I', to_jsonb(c) FROM customers c WHERE id = 902; COMMIT;",
    )
    .execute(&env.pg)
    .await
    .unwrap();
    // Published while the idle transaction is still open (it can commit no outbox row below).
    env.wait_outbox_drained(Duration::from_secs(15))
        .await
        .expect("the relay publishes past a transaction that wrote no outbox row");
    assert_eq!(
        statuses(&env).await,
        vec![("customers".to_string(), "sent".to_string())]
    );
    sqlx::query("ROLLBACK").execute(&mut idle).await.unwrap();
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
