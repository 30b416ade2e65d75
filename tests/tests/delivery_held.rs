//! Deliveries that wait for a transform: a change for a table whose transform file is not in the
//! directory yet is held (not dead-lettered), keeps its place ahead of the unit's later changes,
//! and is applied as soon as the file is dropped in. A unit whose held deliveries fill its whole
//! prefetch says so, in a metric and in `ponte status`, instead of stalling silently.

use std::path::Path;
use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::upstream::wait_until;
use ponte_tests::{check, firebird, TestEnv, UnitSpec, TRANSFORMS_DIR};

fn product(id: i64) -> String {
    format!(
        r#"{{"id": {id}, "sku": "SKU-{id}", "description": "held {id}", "price": "1.50",
            "stock": 3, "discontinued": false}}"#
    )
}

async fn env_with_probe(amqp: &str, extra: &str) -> TestEnv {
    let mut env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    env.extra_toml = format!("[tables.probe]\nops = \"IUD\"\ntransform = \"versioned\"\n{extra}");
    env.amqp_toml = amqp.to_string();
    firebird::isql(&format!(
        "CONNECT '{}';\nCREATE TABLE PROBE (ID BIGINT NOT NULL PRIMARY KEY, VAL VARCHAR(255), \
         VERSAO CHAR(1));\nCOMMIT;\n",
        env.units[0].1
    ))
    .unwrap();
    env
}

/// One probe change, then `products` product changes, in one statement (ascending outbox ids).
async fn write_probe_then_products(env: &TestEnv, products: i64) {
    let mut payloads = vec![(
        "probe".to_string(),
        r#"{"id": 1, "val": "held"}"#.to_string(),
    )];
    payloads.extend((1..=products).map(|id| ("products".to_string(), product(id))));
    let (tables, bodies): (Vec<String>, Vec<String>) = payloads.into_iter().unzip();
    sqlx::query(
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT 1, t, 'I', p::jsonb FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(t, p, n) \
         ORDER BY n",
    )
    .bind(&tables)
    .bind(&bodies)
    .execute(&env.pg)
    .await
    .unwrap();
}

fn drop_transform(env: &TestEnv) {
    let tmp = env.transforms_dir.join(".versioned.wasm.tmp");
    std::fs::copy(Path::new(TRANSFORMS_DIR).join("versioned_a.wasm"), &tmp).unwrap();
    std::fs::rename(&tmp, env.transforms_dir.join("versioned.wasm")).unwrap();
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_change_keeps_its_place_and_applies_when_its_transform_arrives() {
    let env = env_with_probe("", "").await;
    let db = env.units[0].1.clone();
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    write_probe_then_products(&env, 3).await;
    env.wait_outbox_drained(Duration::from_secs(30))
        .await
        .unwrap();

    // The probe change waits for its transform; the products behind it must wait with it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dbc = db.clone();
    let products = tokio::task::spawn_blocking(move || {
        firebird::scalar(&dbc, "SELECT COUNT(*) FROM PRODUTOS").unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        products, 0,
        "a later change of the unit overtook the held one"
    );
    let held = "ponte_consumer_held{flow=\"downstream\",unit=\"1\"}";
    assert_eq!(
        metric(&running.metrics.render(), held),
        Some(4.0),
        "held deliveries metric"
    );

    drop_transform(&env);
    wait_until(
        Duration::from_secs(20),
        "the held change and the ones behind it applied",
        || {
            let db = db.clone();
            async move {
                Ok(tokio::task::spawn_blocking(move || {
                    firebird::scalar(&db, "SELECT COUNT(*) FROM PROBE").unwrap() == 1
                        && firebird::scalar(&db, "SELECT COUNT(*) FROM PRODUTOS").unwrap() == 3
                })
                .await?)
            }
        },
    )
    .await
    .unwrap();
    // In outbox order: the probe (the lowest outbox id) was applied first.
    let ledger = check::ledger(&db).await.unwrap();
    let ids: Vec<i64> = ledger.iter().map(|(_, id)| *id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(
        ids, sorted,
        "the unit applied its changes out of outbox order"
    );
    assert_eq!(metric(&running.metrics.render(), held), Some(0.0));
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_unit_whose_held_deliveries_fill_its_prefetch_says_so() {
    let env = env_with_probe("prefetch = 4", "[apply]\nbatch_size = 2\n").await;
    let db = env.units[0].1.clone();
    let config = env.config().unwrap();
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    write_probe_then_products(&env, 10).await;
    env.wait_outbox_drained(Duration::from_secs(30))
        .await
        .unwrap();

    let stalled = "ponte_consumer_stalled{flow=\"downstream\",unit=\"1\"}";
    let metrics = running.metrics.clone();
    wait_until(
        Duration::from_secs(15),
        "the stall is reported in a metric",
        || {
            let text = metrics.render();
            async move { Ok(metric(&text, stalled) == Some(1.0)) }
        },
    )
    .await
    .unwrap();
    let cfg = config.clone();
    wait_until(
        Duration::from_secs(15),
        "`ponte status` reports the stall",
        || {
            let cfg = cfg.clone();
            async move {
                let report = ponte::ops::status::report(&cfg).await?;
                Ok(report.contains("STALLED") && report.contains("waits for a transform"))
            }
        },
    )
    .await
    .unwrap();

    drop_transform(&env);
    wait_until(
        Duration::from_secs(30),
        "everything applied after the file arrived",
        || {
            let db = db.clone();
            async move {
                Ok(tokio::task::spawn_blocking(move || {
                    firebird::scalar(&db, "SELECT COUNT(*) FROM PRODUTOS").unwrap() == 10
                })
                .await?)
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(metric(&running.metrics.render(), stalled), Some(0.0));
    // `ponte status` reads what the host writes every few seconds.
    let cfg = config.clone();
    wait_until(
        Duration::from_secs(15),
        "`ponte status` no longer reports the stall",
        || {
            let cfg = cfg.clone();
            async move { Ok(!ponte::ops::status::report(&cfg).await?.contains("STALLED")) }
        },
    )
    .await
    .unwrap();
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
