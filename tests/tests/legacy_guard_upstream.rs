//! Guarded legacy triggers with Firebird capture on, on the real servers, with every role of one
//! host running: `capture install` guards the unit's own triggers (`unit_triggers = "guard"`),
//! replicated changes leave the unit equal to PostgreSQL (the guarded history trigger adds no
//! rows of its own), and a local application update — a plain session at the unit, not ponte's
//! apply — still fires the guarded triggers: the stamp and the history row they write are
//! captured and reach PostgreSQL, after which both sides are equal row by row again.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::legacy::*;
use ponte_tests::upstream::{legacy_session, wait_until, ID_BLOCK};
use ponte_tests::{TestEnv, UnitSpec};
use rsfbclient::prelude::*;

/// ITENS and ITENS_HIST captured at the unit into leg_items / leg_item_hist.
const UPSTREAM: &str = r#"
[upstream]
poll_interval_ms = 100
unit_timezone = "UTC"
fk_retry_secs = 5
[upstream.tables.ITENS]
pg_table = "leg_items"
key = ["id"]
transform = "generic"
[upstream.tables.ITENS.settings]
target = "leg_items"
key = ["id"]
[upstream.tables.ITENS.settings.columns]
ID = { column = "id", type = "bigint" }
NAME = { column = "name", type = "text", max_len = 60, required = true }
PRICE = { column = "price", type = "decimal", precision = 18, scale = 2, required = true }
STAMP = { column = "stamp", type = "bigint" }
[upstream.tables.ITENS_HIST]
pg_table = "leg_item_hist"
key = ["id"]
transform = "generic"
[upstream.tables.ITENS_HIST.settings]
target = "leg_item_hist"
key = ["id"]
[upstream.tables.ITENS_HIST.settings.columns]
ID = { column = "id", type = "bigint" }
ITEM_ID = { column = "item_id", type = "bigint", required = true }
OLD_PRICE = { column = "old_price", type = "decimal", precision = 18, scale = 2 }
NEW_PRICE = { column = "new_price", type = "decimal", precision = 18, scale = 2 }
"#;

async fn sides_equal(env: &TestEnv, db: &str) -> anyhow::Result<bool> {
    Ok(
        fb_rows(db, FB_ITEMS_SELECT)? == pg_rows(env, PG_ITEMS_SELECT).await?
            && fb_rows(db, FB_HIST_SELECT)? == pg_rows(env, PG_HIST_SELECT).await?,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_triggers_fire_for_local_writes_and_those_writes_flow_upstream() {
    let mut env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    env.units_toml = format!("id_block = {ID_BLOCK}");
    env.extra_toml = format!("{}{UPSTREAM}", items_toml("unit_triggers = \"guard\"", ""));
    sqlx::raw_sql(PG_ITEMS).execute(&env.pg).await.unwrap();
    // The site's history ids come from its own range, as a site on id ranges is set up.
    unit_ddl(
        &env,
        &format!("{FB_ITEMS}\nSET GENERATOR GEN_HIST TO {ID_BLOCK};"),
    )
    .unwrap();
    let db = env.units[0].1.clone();
    let config = env.config().unwrap();
    // capture install guards the triggers of the `unit_triggers = "guard"` table.
    ponte::capture::run_command(&config, &config.units(), true)
        .await
        .unwrap();
    let sources = fb_rows(
        &db,
        "SELECT TRIM(RDB$TRIGGER_NAME), RDB$TRIGGER_SOURCE FROM RDB$TRIGGERS \
         WHERE RDB$RELATION_NAME = 'ITENS' AND RDB$TRIGGER_NAME STARTING WITH 'ITENS_'",
    )
    .unwrap();
    assert_eq!(sources.len(), 3, "{sources:?}");
    for row in &sources {
        let source = row[1].clone().unwrap_or_default();
        assert!(
            source.contains("'PONTE_APPLY') IS DISTINCT FROM '1'"),
            "{row:?}"
        );
    }

    let (running, stop) = env.start(Roles::all()).await.unwrap();
    write(
        &env,
        "INSERT INTO leg_items SELECT g, 'item ' || g, g * 1.25, g FROM generate_series(1, 10) g",
        &outbox_rows("leg_items", "I", "true", "t.id"),
    )
    .await
    .unwrap();
    write(
        &env,
        "INSERT INTO leg_item_hist SELECT 100000 + id, id, price, price + 1 FROM leg_items; \
         UPDATE leg_items SET price = price + 1, stamp = 1000 + id",
        &format!(
            "{}; {}",
            outbox_rows("leg_items", "U", "true", "t.id"),
            outbox_rows("leg_item_hist", "I", "true", "t.id")
        ),
    )
    .await
    .unwrap();
    wait_applied(&env, Duration::from_secs(60)).await.unwrap();
    assert!(
        sides_equal(&env, &db).await.unwrap(),
        "guarded, replicated updates add nothing at the unit"
    );
    let pg_hist = pg_rows(&env, PG_HIST_SELECT).await.unwrap();
    assert_eq!(pg_hist.len(), 10);

    // The site's own application: a plain session, its own transactions.
    let local = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut legacy = legacy_session(&local, "WIN1252").unwrap();
        legacy
            .execute("UPDATE ITENS SET PRICE = 999.99 WHERE ID = 1", ())
            .unwrap();
        legacy
            .execute(
                "UPDATE ITENS SET PRICE = PRICE + 0.01 WHERE ID IN (2, 3)",
                (),
            )
            .unwrap();
        let _ = legacy.close();
    })
    .await
    .unwrap();
    // The guarded triggers fired: three history rows from the site's range, three stamps.
    let fb_hist = fb_rows(&db, FB_HIST_SELECT).unwrap();
    let local_hist: Vec<_> = fb_hist
        .iter()
        .filter(|r| r[0].as_deref().and_then(|s| s.parse::<i64>().ok()) > Some(ID_BLOCK))
        .cloned()
        .collect();
    assert_eq!(local_hist.len(), 3, "{fb_hist:?}");
    assert!(
        local_hist
            .iter()
            .any(|r| r[1].as_deref() == Some("1") && r[3].as_deref() == Some("999.99")),
        "{local_hist:?}"
    );
    let fb_items = fb_rows(&db, FB_ITEMS_SELECT).unwrap();
    for item in &fb_items[..3] {
        let stamp: i64 = item[3].as_deref().and_then(|s| s.parse().ok()).unwrap();
        assert!(
            stamp < 1000,
            "the local update was stamped by GEN_STAMP: {item:?}"
        );
    }

    // With capture on, the trigger's writes reach PostgreSQL: the history rows and the stamps.
    let probe = db.clone();
    let env_ref = &env;
    wait_until(Duration::from_secs(60), "the local writes upstream", || {
        let db = probe.clone();
        async move { sides_equal(env_ref, &db).await }
    })
    .await
    .unwrap();
    let pg_hist = pg_rows(&env, PG_HIST_SELECT).await.unwrap();
    assert_eq!(pg_hist.len(), 13, "{pg_hist:?}");
    assert_eq!(
        pg_rows(&env, "SELECT price::text FROM leg_items WHERE id = 1")
            .await
            .unwrap(),
        vec![vec![Some("999.99".to_string())]]
    );
    // Nothing echoes: the unit's ledger and history stop growing once quiet.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fb_rows(&db, FB_HIST_SELECT).unwrap().len(), 13);
    assert!(sides_equal(&env, &db).await.unwrap());
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
