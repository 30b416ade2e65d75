//! Keys the site allocates from generators, on the real servers. Replicated rows arrive past the
//! generator: for the table whose `generator` is declared, the apply transaction raised it, and
//! the site's own insert through its BEFORE INSERT trigger succeeds at once; for the same shape
//! without the declaration (`PLAIN`), the generator stayed behind and the site's insert collides
//! (what a site saw before this feature). With id ranges, `capture install` moves the declared
//! generator to the start of the unit's range, replicated ids from PostgreSQL (below it) no
//! longer move it, and a generator already past its range is refused with the reason.

use std::time::Duration;

use ponte::capture::install_unit;
use ponte::daemon::Roles;
use ponte_tests::legacy::*;
use ponte_tests::upstream::{legacy_session, ID_BLOCK};
use ponte_tests::{TestEnv, UnitSpec};
use rsfbclient::prelude::*;

fn generator(db: &str, name: &str) -> i64 {
    let rows = fb_rows(
        db,
        &format!("SELECT CAST(GEN_ID({name}, 0) AS VARCHAR(20)) FROM RDB$DATABASE"),
    )
    .unwrap();
    rows[0][0].as_deref().unwrap().parse().unwrap()
}

/// A legacy program's insert with the key left to the trigger; returns the id it got.
fn local_insert(db: &str, table: &str) -> Result<i64, String> {
    let mut legacy = legacy_session(db, "WIN1252").map_err(|e| e.to_string())?;
    let extra = if table == "ITENS" { ", PRICE" } else { "" };
    let value = if table == "ITENS" { ", 1.50" } else { "" };
    legacy
        .execute(
            &format!("INSERT INTO {table} (NAME{extra}) VALUES ('local'{value})"),
            (),
        )
        .map_err(|e| e.to_string())?;
    let row: Option<(i64,)> = legacy
        .query_first(
            &format!("SELECT MAX(ID) FROM {table} WHERE NAME = 'local'"),
            (),
        )
        .map_err(|e| e.to_string())?;
    Ok(row.map(|(id,)| id).unwrap_or(-1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_ids_raise_the_declared_generator() {
    let mut env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    env.extra_toml = items_toml("generator = \"GEN_ITENS\"", "");
    sqlx::raw_sql(PG_ITEMS).execute(&env.pg).await.unwrap();
    unit_ddl(&env, FB_ITEMS).unwrap();
    let db = env.units[0].1.clone();
    // The site had allocated a few ids itself before ponte came.
    unit_ddl(
        &env,
        "SET GENERATOR GEN_ITENS TO 3; SET GENERATOR GEN_PLAIN TO 3;",
    )
    .unwrap();

    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    write(
        &env,
        "INSERT INTO leg_items SELECT g, 'item ' || g, g, g FROM generate_series(1, 40) g; \
         INSERT INTO leg_plain SELECT g, 'plain ' || g FROM generate_series(1, 40) g",
        &format!(
            "{}; {}",
            outbox_rows("leg_items", "I", "true", "t.id"),
            outbox_rows("leg_plain", "I", "true", "t.id")
        ),
    )
    .await
    .unwrap();
    wait_applied(&env, Duration::from_secs(60)).await.unwrap();
    // An update of a lower id never moves it back.
    write(
        &env,
        "UPDATE leg_items SET name = 'again' WHERE id = 5",
        &outbox_rows("leg_items", "U", "t.id = 5", "t.id"),
    )
    .await
    .unwrap();
    wait_applied(&env, Duration::from_secs(60)).await.unwrap();
    stop.cancel();
    running.wait().await;

    assert_eq!(
        generator(&db, "GEN_ITENS"),
        40,
        "raised to the highest replicated id"
    );
    assert_eq!(generator(&db, "GEN_PLAIN"), 3, "undeclared: left behind");
    let (items_db, plain_db) = (db.clone(), db.clone());
    let item = tokio::task::spawn_blocking(move || local_insert(&items_db, "ITENS"))
        .await
        .unwrap();
    assert_eq!(item, Ok(41), "the site's own insert succeeds at once");
    let plain = tokio::task::spawn_blocking(move || local_insert(&plain_db, "PLAIN"))
        .await
        .unwrap();
    let err = plain.expect_err("an undeclared generator collides with a replicated id");
    assert!(
        err.to_lowercase().contains("primary") || err.contains("PK"),
        "{err}"
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_install_moves_generators_into_the_unit_range() {
    let mut env = TestEnv::new(&[UnitSpec {
        id: 2,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    env.units_toml = format!("id_block = {ID_BLOCK}");
    env.extra_toml = items_toml("generator = \"GEN_ITENS\"", "");
    sqlx::raw_sql(PG_ITEMS).execute(&env.pg).await.unwrap();
    unit_ddl(&env, FB_ITEMS).unwrap();
    let db = env.units[0].1.clone();
    let config = env.config().unwrap();
    let install_db = db.clone();
    let cfg = config.clone();
    let report = tokio::task::spawn_blocking(move || {
        let mut conn = ponte_tests::firebird::connect(&install_db).unwrap();
        let first = install_unit(&mut conn, &cfg, 2).unwrap();
        let again = install_unit(&mut conn, &cfg, 2).unwrap();
        (first, again)
    })
    .await
    .unwrap();
    let low = 2 * ID_BLOCK;
    assert_eq!(report.0.generators, vec![("GEN_ITENS".to_string(), 0, low)]);
    assert!(report.1.generators.is_empty(), "idempotent: {:?}", report.1);
    assert_eq!(generator(&db, "GEN_ITENS"), low);

    // PostgreSQL's ids (below the range) arrive without moving it; the site's next id is its own.
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    write(
        &env,
        "INSERT INTO leg_items SELECT g, 'item ' || g, g, g FROM generate_series(1, 10) g",
        &outbox_rows("leg_items", "I", "true", "t.id"),
    )
    .await
    .unwrap();
    wait_applied(&env, Duration::from_secs(60)).await.unwrap();
    stop.cancel();
    running.wait().await;
    assert_eq!(generator(&db, "GEN_ITENS"), low);
    let local_db = db.clone();
    let id = tokio::task::spawn_blocking(move || local_insert(&local_db, "ITENS"))
        .await
        .unwrap();
    assert_eq!(id, Ok(low + 1), "inside the unit's own range");

    // A generator past the range is refused with the reason, and nothing is changed.
    unit_ddl(
        &env,
        &format!("SET GENERATOR GEN_ITENS TO {};", 3 * ID_BLOCK + 5),
    )
    .unwrap();
    let cfg = config.clone();
    let refuse_db = db.clone();
    let err = tokio::task::spawn_blocking(move || {
        let mut conn = ponte_tests::firebird::connect(&refuse_db).unwrap();
        install_unit(&mut conn, &cfg, 2).map(|_| ())
    })
    .await
    .unwrap()
    .expect_err("past the range");
    assert!(err.to_string().contains("GEN_ITENS is at"), "{err}");
    assert_eq!(generator(&db, "GEN_ITENS"), 3 * ID_BLOCK + 5);
    env.cleanup().await;
}
