//! PostgreSQL -> three Firebird units (WIN1252, UTF8, WIN1252) through the real relay, broker,
//! wasm transforms and unit appliers: over a thousand inserts, updates and deletes arrive row by
//! row, each correlation id is in each unit's ledger exactly once, a duplicate publish applies
//! once, and a table outside the whitelist is refused with a recorded reason while the rest flows.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte::demo::{load, LoadOptions};
use ponte::model::Envelope;
use ponte_tests::{check, TestEnv, UnitSpec};
use serde_json::value::RawValue;

const UNITS: [UnitSpec; 3] = [
    UnitSpec {
        id: 1,
        charset: "WIN1252",
    },
    UnitSpec {
        id: 2,
        charset: "UTF8",
    },
    UnitSpec {
        id: 3,
        charset: "WIN1252",
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_reach_every_unit_exactly_once() {
    let env = TestEnv::new(&UNITS)
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .expect("host starts");

    // Edge values beside the generated stream: exact decimal near 1e15, accents, NULLs, ms time.
    sqlx::raw_sql(
        "BEGIN; \
         INSERT INTO customers (id, name, email, city, active, credit_limit, birth_date, external_ref, attributes, updated_at) \
         VALUES (900000001, 'José da Conceição Ñandú', NULL, 'São Paulo — Ribeirão', false, 999999999999999.99, NULL, \
                 '6f1c2b9e-3a4d-4e5f-8a7b-1c2d3e4f5a6b', '{\"vip\": true, \"tags\": [\"açúcar\"]}', '2026-11-23 13:14:15.678+00'); \
         INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT u, 'customers', 'I', to_jsonb(c) FROM customers c, unnest(ARRAY[1,2,3]) u WHERE c.id = 900000001; \
         COMMIT;",
    )
    .execute(&env.pg)
    .await
    .unwrap();

    let summary = load(
        &env.pg,
        &LoadOptions {
            changes: 1_200,
            units: vec![1, 2, 3],
            concurrency: 4,
            seed: 7,
        },
        |_| {},
    )
    .await
    .expect("demo load");
    let ops: Vec<(String, i64)> =
        sqlx::query_as("SELECT operation, count(*) FROM pg_sync_outbox GROUP BY 1 ORDER BY 1")
            .fetch_all(&env.pg)
            .await
            .unwrap();
    assert!(summary.outbox_rows >= 1_000, "{summary:?}");
    assert_eq!(
        ops.len(),
        3,
        "inserts, updates and deletes all present: {ops:?}"
    );

    env.wait_outbox_drained(Duration::from_secs(180))
        .await
        .expect("relay drains the outbox");
    check::units_match(&env, Duration::from_secs(180))
        .await
        .unwrap();
    check::ledgers_exact_and_ordered(&env).await.unwrap();

    // The same message published twice more: applied once (already in the ledger).
    let (id, corr, payload): (i64, uuid::Uuid, String) = sqlx::query_as(
        "SELECT id, correlation_id, payload::text FROM pg_sync_outbox WHERE unit_id = 1 AND status = 'sent' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&env.pg)
    .await
    .unwrap();
    let (_, table, op): (i64, String, String) =
        sqlx::query_as("SELECT id, table_name, operation FROM pg_sync_outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&env.pg)
            .await
            .unwrap();
    let envelope = Envelope {
        v: 1,
        correlation_id: corr.to_string(),
        outbox_id: id,
        unit: 1,
        table: table.clone(),
        op: op.trim().to_string(),
        origin: None,
        created_at: chrono::Utc::now().to_rfc3339(),
        payload: RawValue::from_string(payload).unwrap(),
    };
    let stranger = Envelope {
        correlation_id: uuid::Uuid::new_v4().to_string(),
        table: "payroll".into(),
        op: "I".into(),
        payload: RawValue::from_string(r#"{"id": 1, "salary": 1000}"#.into()).unwrap(),
        ..envelope.clone()
    };
    let exchange = env.name.clone();
    publish_raw(&exchange, &[&envelope, &envelope, &stranger]).await;

    // A non-whitelisted outbox row is refused by the relay with a recorded reason.
    sqlx::query("INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) VALUES (2, 'payroll', 'I', '{\"id\": 1}')")
        .execute(&env.pg)
        .await
        .unwrap();
    let metrics = running.metrics.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let dup = metrics
            .apply_messages
            .with_label_values(&["1", "duplicate"])
            .get();
        let dead = metrics
            .apply_messages
            .with_label_values(&["1", "dead"])
            .get();
        if dup >= 2 && dead >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "duplicates {dup} / dead {dead} not seen in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.wait_outbox_drained(Duration::from_secs(30))
        .await
        .unwrap();
    let (status, error_log): (String, Option<String>) =
        sqlx::query_as("SELECT status, error_log FROM pg_sync_outbox WHERE table_name = 'payroll'")
            .fetch_one(&env.pg)
            .await
            .unwrap();
    assert_eq!(status, "dead");
    assert!(error_log.unwrap_or_default().contains("not whitelisted"));
    let letters = ponte::ops::dlq::list(&env.config().unwrap(), 10)
        .await
        .unwrap();
    assert!(
        letters
            .iter()
            .any(|l| l.correlation_id == stranger.correlation_id
                && l.class == "refused"
                && l.reason.contains("not whitelisted")),
        "the stranger is dead-lettered with its reason: {letters:?}"
    );

    // Nothing else stopped: more changes still flow and every ledger is still exact.
    load(
        &env.pg,
        &LoadOptions {
            changes: 100,
            units: vec![1, 2, 3],
            concurrency: 2,
            seed: 8,
        },
        |_| {},
    )
    .await
    .unwrap();
    env.wait_outbox_drained(Duration::from_secs(60))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(60))
        .await
        .unwrap();
    check::ledgers_exact_and_ordered(&env).await.unwrap();

    // A clean stop inside the drain budget leaves nothing in processing.
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(6), running.wait())
        .await
        .expect("stops within 6 s");
    assert_eq!(check::processing_rows(&env).await.unwrap(), 0);
    env.cleanup().await;
}

async fn publish_raw(exchange: &str, envelopes: &[&Envelope]) {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    let conn = lapin::Connection::connect(
        &ponte_tests::amqp_url(),
        lapin::ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for env in envelopes {
        let body = serde_json::to_vec(env).unwrap();
        let confirm = ch
            .basic_publish(
                exchange.into(),
                env.routing_key(exchange).into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &body,
                env.properties(),
            )
            .await
            .unwrap();
        assert!(matches!(
            confirm.await.unwrap(),
            lapin::Confirmation::Ack(None)
        ));
    }
    let _ = conn.close(200, "ok".into()).await;
}
