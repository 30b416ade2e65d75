//! Poison and bad input in the middle of a continuous stream: a payload the transform refuses
//! (text too long), a payload that is not an object, wrong types for a column (text for the id,
//! words for a decimal), a 1 MB text for a 100-character column, a body that is not JSON, a
//! truncated envelope, a body that is not UTF-8, and a table outside the whitelist. Each is set
//! aside with a reason an operator can read (dead-letter queue or dead outbox row). A legitimate
//! 1 MB row (a JSON document for a BLOB column) is applied whole on every unit. Everything else
//! arrives, exactly once, in order.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use ponte::daemon::Roles;
use ponte_tests::changes::{customer, outbox_row};
use ponte_tests::{amqp_url, check, TestEnv, UnitSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_is_set_aside_and_the_stream_goes_on() {
    let units = [1, 2, 3].map(|id| UnitSpec {
        id,
        charset: "WIN1252",
    });
    let env = TestEnv::new(&units).await.expect("test environment");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    let load = env.load_in_background(1_500, 3, 21);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let too_long = customer(serde_json::json!({"id": 990001, "name": "Ã".repeat(150)}));
    let poison_long = outbox_row(&env, 1, "customers", &too_long).await;
    let poison_array = outbox_row(&env, 2, "customers", "[1, 2, 3]").await;
    let refused = outbox_row(&env, 3, "payroll", r#"{"id": 1}"#).await;
    let wrong_id = outbox_row(
        &env,
        1,
        "customers",
        &customer(serde_json::json!({"id": "forty-two"})),
    )
    .await;
    let wrong_decimal = outbox_row(
        &env,
        3,
        "customers",
        &customer(serde_json::json!({"id": 990004, "credit_limit": "lots"})),
    )
    .await;
    let huge = customer(serde_json::json!({"id": 990005, "name": "ação ".repeat(200_000)}));
    let huge_name = outbox_row(&env, 2, "customers", &huge).await;
    // A legitimate 1 MB row: the application's own write, sent to every unit.
    let big_rows: i64 = sqlx::query_scalar(
        "WITH c AS (INSERT INTO customers (id, name, active, attributes, updated_at)          VALUES (990100, 'Documento grande', true, jsonb_build_object('notas', repeat('ação ', 200000)), now())          RETURNING to_jsonb(customers.*)::text AS p),          o AS (INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload)          SELECT u, 'customers', 'I', c.p::jsonb FROM c CROSS JOIN unnest(ARRAY[1, 2, 3]) AS u RETURNING 1)          SELECT count(*) FROM o",
    )
    .fetch_one(&env.pg)
    .await
    .unwrap();
    assert_eq!(big_rows, 3);

    // Bodies no relay would ever produce, straight into unit 2's queue.
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let truncated = br#"{"v": 1, "correlation_id": "8d0c4f5e-0000-4000-8000-000000000001", "outbox_id": 1, "unit": 2, "table": "customers", "op": "I", "origin": null, "created_at": "2026-11-23T10:00:00Z", "payload": {"id": 4"#;
    for body in [
        b"not json at all".to_vec(),
        truncated.to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
    ] {
        let props = lapin::BasicProperties::default()
            .with_message_id(uuid::Uuid::new_v4().to_string().into());
        ch.basic_publish(
            env.name.as_str().into(),
            format!("{}.unit.2.customers.I", env.name).into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &body,
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let _ = conn.close(200, "ok".into()).await;

    load.await.unwrap().expect("load completes");
    env.wait_outbox_drained(Duration::from_secs(120))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(120))
        .await
        .unwrap();
    let poisoned = vec![
        poison_long.clone(),
        poison_array.clone(),
        wrong_id.clone(),
        wrong_decimal.clone(),
        huge_name.clone(),
    ];
    check::ledgers_exact_and_ordered_except(&env, &poisoned)
        .await
        .unwrap();

    let letters = check::dead_letters(&env, 8, Duration::from_secs(60))
        .await
        .unwrap();
    let reason_of = |id: &str| {
        letters
            .iter()
            .find(|l| l.correlation_id == id)
            .map(|l| (l.class.clone(), l.reason.clone()))
    };
    let (class, reason) = reason_of(&poison_long).expect("too-long payload dead-lettered");
    assert_eq!(class, "transform");
    assert!(
        reason.contains("name") || reason.contains("NOME"),
        "{reason}"
    );
    let (class, reason) = reason_of(&poison_array).expect("array payload dead-lettered");
    assert_eq!(
        (class.as_str(), reason.contains("not a JSON object")),
        ("malformed", true),
        "{reason}"
    );
    for (id, field) in [
        (&wrong_id, "id"),
        (&wrong_decimal, "credit_limit"),
        (&huge_name, "name"),
    ] {
        let (class, reason) =
            reason_of(id).unwrap_or_else(|| panic!("{field}: not dead-lettered: {letters:?}"));
        assert_eq!(class, "transform", "{reason}");
        assert!(
            reason.contains(field),
            "the reason names `{field}`: {reason}"
        );
        assert!(
            reason.len() < 2_000,
            "a 1 MB payload does not make a 1 MB reason: {} bytes",
            reason.len()
        );
    }
    let malformed = letters
        .iter()
        .filter(|l| l.class == "malformed" && l.reason.contains("not a ponte envelope"))
        .count();
    assert_eq!(
        malformed, 3,
        "the three raw bodies dead-lettered: {letters:?}"
    );
    assert_eq!(
        letters.len(),
        8,
        "nothing else was dead-lettered: {letters:?}"
    );
    // The 1 MB document arrived whole on every unit (units_match compared it row by row too).
    for (unit, db) in &env.units {
        let mut fb = ponte_tests::firebird::connect(db).unwrap();
        let len: Option<(i64,)> = rsfbclient::Queryable::query_first(
            &mut fb,
            "SELECT OCTET_LENGTH(ATRIBUTOS) FROM CLIENTES WHERE ID = 990100",
            (),
        )
        .unwrap();
        let len = len.map(|(n,)| n).unwrap_or(0);
        assert!(
            len > 1_000_000,
            "unit {unit}: the 1 MB document holds {len} bytes"
        );
    }
    let (status, log): (String, String) = sqlx::query_as(
        "SELECT status, error_log FROM pg_sync_outbox WHERE correlation_id::text = $1",
    )
    .bind(&refused)
    .fetch_one(&env.pg)
    .await
    .unwrap();
    assert_eq!(status, "dead");
    assert!(log.contains("not whitelisted"), "{log}");

    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
