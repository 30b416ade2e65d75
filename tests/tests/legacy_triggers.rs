//! A unit's own triggers against a running host, on the real servers: an AFTER UPDATE history
//! trigger that writes another replicated table and a BEFORE INSERT OR UPDATE trigger that stamps
//! a replicated column from a generator. Unguarded, `doctor` reports both and the unit diverges
//! from PostgreSQL; after `unit-triggers guard` a stream of replicated updates leaves the unit
//! equal to PostgreSQL row by row while a local update still fires both triggers; `unguard`
//! restores every source byte for byte; `unit_triggers = "guard"` is applied by `migrate`; a
//! body that cannot be rewritten safely is refused with the reason.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte::firebird::{apply_batch, BatchOutcome, Prepared};
use ponte::legacy::doctor::Severity;
use ponte::legacy::{run_unit, GuardOutcome};
use ponte::model::{Op, Output, Statement, Value};
use ponte_tests::legacy::*;
use ponte_tests::upstream::legacy_session;
use ponte_tests::{TestEnv, UnitSpec};
use rsfbclient::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_ponte-under-test");

const TRIGGERS: [&str; 3] = ["ITENS_BI_ID", "ITENS_BIU_STAMP", "ITENS_AU_HIST"];

fn sources(db: &str) -> Vec<Vec<Option<String>>> {
    fb_rows(
        db,
        "SELECT TRIM(RDB$TRIGGER_NAME), RDB$TRIGGER_SOURCE FROM RDB$TRIGGERS \
         WHERE RDB$RELATION_NAME IN ('ITENS', 'ITENS_HIST') AND COALESCE(RDB$SYSTEM_FLAG, 0) = 0 \
         ORDER BY RDB$TRIGGER_NAME",
    )
    .unwrap()
}

/// Price updates on every item, each with the history row PostgreSQL itself writes.
async fn price_round(env: &TestEnv, round: i64) {
    let hist = 100_000 + round * 100;
    write(
        env,
        &format!(
            "INSERT INTO leg_item_hist SELECT {hist} + id, id, price, price + {round} \
             FROM leg_items; \
             UPDATE leg_items SET price = price + {round}, stamp = {round} * 1000 + id"
        ),
        &format!(
            "{}; {}",
            outbox_rows("leg_items", "U", "true", "t.id"),
            outbox_rows("leg_item_hist", "I", &format!("t.id > {hist}"), "t.id")
        ),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unguarded_triggers_diverge_guarded_ones_do_not() {
    let mut env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    env.extra_toml = items_toml("", "");
    sqlx::raw_sql(PG_ITEMS).execute(&env.pg).await.unwrap();
    unit_ddl(&env, FB_ITEMS).unwrap();
    let db = env.units[0].1.clone();
    let config = env.config().unwrap();
    let original = sources(&db);

    // doctor, unguarded: both harmful triggers and the undeclared key generator; the
    // NULL-only key trigger is not harmful.
    let report = ponte::legacy::doctor(&config, 1).await.unwrap();
    let text = report.render();
    let finding = |subject: &str| {
        report
            .findings
            .iter()
            .any(|f| f.severity == Severity::Finding && f.subject == subject)
    };
    assert!(finding("trigger ITENS_AU_HIST"), "{text}");
    assert!(
        text.contains("writes replicated table(s) ITENS_HIST"),
        "{text}"
    );
    assert!(finding("trigger ITENS_BIU_STAMP"), "{text}");
    assert!(
        text.contains("overwrites replicated column(s) ITENS.STAMP"),
        "{text}"
    );
    assert!(!finding("trigger ITENS_BI_ID"), "{text}");
    assert!(
        finding("key ITENS.ID") && text.contains("generator = \"GEN_ITENS\""),
        "{text}"
    );
    assert!(report.problems() >= 3, "{text}");
    // The command: the same report on stdout, exit 1.
    let path = env.write_config().unwrap();
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .args(["doctor", "--unit", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FINDING [tables.leg_items] trigger ITENS_AU_HIST: AFTER UPDATE fires"),
        "{stdout}"
    );

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
        "INSERT INTO leg_items SELECT g, 'item ' || g, g * 1.25, g FROM generate_series(1, 20) g",
        &outbox_rows("leg_items", "I", "true", "t.id"),
    )
    .await
    .unwrap();
    price_round(&env, 1).await;
    wait_applied(&env, Duration::from_secs(60)).await.unwrap();
    // Unguarded: 20 history rows PostgreSQL never had, and stamps PostgreSQL never wrote.
    let pg_hist = pg_rows(&env, PG_HIST_SELECT).await.unwrap();
    let fb_hist = fb_rows(&db, FB_HIST_SELECT).unwrap();
    assert_eq!(
        fb_hist.len(),
        pg_hist.len() + 20,
        "the unit diverges unguarded"
    );
    assert_ne!(
        fb_rows(&db, FB_ITEMS_SELECT).unwrap(),
        pg_rows(&env, PG_ITEMS_SELECT).await.unwrap(),
        "stamps diverge unguarded"
    );

    // Guard every trigger of the replicated tables; a second run changes nothing.
    let cfg = config.clone();
    let guard_db = db.clone();
    let (first, second) = tokio::task::spawn_blocking(move || {
        let mut conn = ponte_tests::firebird::connect(&guard_db).unwrap();
        let first = run_unit(&mut conn, &cfg, &[], true).unwrap();
        let second = run_unit(&mut conn, &cfg, &[], true).unwrap();
        (first, second)
    })
    .await
    .unwrap();
    let names = |v: &[(String, GuardOutcome)], o: GuardOutcome| {
        let mut n: Vec<String> = v
            .iter()
            .filter(|(_, x)| *x == o)
            .map(|(n, _)| n.clone())
            .collect();
        n.sort();
        n
    };
    let mut all: Vec<String> = TRIGGERS.iter().map(|s| s.to_string()).collect();
    all.sort();
    // Every active trigger of every replicated table: PLAIN's key trigger too.
    let mut every = all.clone();
    every.push("PLAIN_BI".into());
    assert_eq!(names(&first, GuardOutcome::Guarded), every, "{first:?}");
    assert_eq!(
        names(&second, GuardOutcome::AlreadyGuarded),
        every,
        "{second:?}"
    );

    // The local rows the unguarded triggers made are the site's own now; the stream goes on.
    let local_hist = fb_hist.len() - pg_hist.len();
    write(
        &env,
        "UPDATE leg_items SET stamp = id",
        &outbox_rows("leg_items", "U", "true", "t.id"),
    )
    .await
    .unwrap();
    for round in 2..=6 {
        price_round(&env, round).await;
    }
    write(
        &env,
        "INSERT INTO leg_items SELECT g, 'novo ' || g, g, NULL FROM generate_series(21, 30) g",
        &outbox_rows("leg_items", "I", "t.id > 20", "t.id"),
    )
    .await
    .unwrap();
    wait_applied(&env, Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        fb_rows(&db, FB_ITEMS_SELECT).unwrap(),
        pg_rows(&env, PG_ITEMS_SELECT).await.unwrap(),
        "guarded: the unit's items equal PostgreSQL's row by row"
    );
    let fb_hist = fb_rows(&db, FB_HIST_SELECT).unwrap();
    let pg_hist = pg_rows(&env, PG_HIST_SELECT).await.unwrap();
    let replicated: Vec<_> = fb_hist
        .iter()
        .filter(|r| r[0].as_deref().and_then(|s| s.parse::<i64>().ok()) > Some(100_000))
        .cloned()
        .collect();
    assert_eq!(
        replicated, pg_hist,
        "guarded: history equals PostgreSQL's row by row"
    );
    let local: Vec<_> = fb_hist.iter().filter(|r| !replicated.contains(r)).collect();
    assert_eq!(
        fb_hist.len() - replicated.len(),
        local_hist,
        "no new local history: {local:?}"
    );
    stop.cancel();
    running.wait().await;

    // A local application update still fires both triggers.
    let local_db = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut legacy = legacy_session(&local_db, "WIN1252").unwrap();
        legacy
            .execute("UPDATE ITENS SET PRICE = 999.99 WHERE ID = 1", ())
            .unwrap();
    })
    .await
    .unwrap();
    let hist = fb_rows(&db, FB_HIST_SELECT).unwrap();
    assert_eq!(
        hist.len(),
        fb_hist.len() + 1,
        "the local update wrote history"
    );
    assert!(hist.iter().any(|r| r[3].as_deref() == Some("999.99")));
    let item1 = &fb_rows(&db, FB_ITEMS_SELECT).unwrap()[0];
    assert_ne!(
        item1[3].as_deref(),
        Some("6001"),
        "the local update was stamped: {item1:?}"
    );

    // doctor, guarded: no trigger findings left.
    let report = ponte::legacy::doctor(&config, 1).await.unwrap();
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.subject.starts_with("trigger ")),
        "{}",
        report.render()
    );

    // unguard restores every source byte for byte; unguard again finds nothing to do.
    let cfg = config.clone();
    let unguard_db = db.clone();
    let (undone, again) = tokio::task::spawn_blocking(move || {
        let mut conn = ponte_tests::firebird::connect(&unguard_db).unwrap();
        let names: Vec<String> = TRIGGERS.iter().map(|s| s.to_string()).collect();
        let undone = run_unit(&mut conn, &cfg, &names, false).unwrap();
        let again = run_unit(&mut conn, &cfg, &names, false).unwrap();
        (undone, again)
    })
    .await
    .unwrap();
    assert_eq!(names(&undone, GuardOutcome::Restored), all, "{undone:?}");
    assert_eq!(names(&again, GuardOutcome::NotGuarded), all, "{again:?}");
    assert_eq!(sources(&db), original, "sources restored byte for byte");

    // unit_triggers = "guard" is applied by migrate.
    env.extra_toml = items_toml("unit_triggers = \"guard\"", "");
    ponte::ops::migrate(&env.config().unwrap(), false, true)
        .await
        .unwrap();
    let guarded = sources(&db);
    for row in guarded
        .iter()
        .filter(|r| r[0].as_deref().is_some_and(|n| n.starts_with("ITENS_")))
    {
        let source = row[1].clone().unwrap_or_default();
        assert!(
            source.contains("'PONTE_APPLY') IS DISTINCT FROM '1'"),
            "{row:?}"
        );
    }

    // A trigger that already tests the flag is refused with the reason, and left untouched.
    unit_ddl(
        &env,
        "SET TERM ^ ;\nCREATE TRIGGER HIST_BI FOR ITENS_HIST ACTIVE BEFORE INSERT AS\n\
         BEGIN\n  IF (RDB$GET_CONTEXT('USER_TRANSACTION', 'PONTE_APPLY') IS NULL) THEN\n    \
         NEW.ITEM_ID = NEW.ITEM_ID;\nEND^\nSET TERM ; ^",
    )
    .unwrap();
    let before = sources(&db);
    let cfg = env.config().unwrap();
    let refuse_db = db.clone();
    let refused = tokio::task::spawn_blocking(move || {
        let mut conn = ponte_tests::firebird::connect(&refuse_db).unwrap();
        run_unit(&mut conn, &cfg, &["HIST_BI".to_string()], true).unwrap()
    })
    .await
    .unwrap();
    assert!(
        matches!(&refused[0].1, GuardOutcome::Refused(why) if why.contains("already tests")),
        "{refused:?}"
    );
    assert_eq!(sources(&db), before, "a refused trigger is left as it was");
    env.cleanup().await;
}

/// A price update of item 1 as the generic transform writes it, `seq` its sequence.
fn price_update(price: &str, seq: i64) -> Prepared {
    Prepared {
        correlation_id: uuid::Uuid::new_v4().to_string(),
        sequence: seq,
        table: "leg_items".into(),
        op: Op::Update,
        output: Output {
            row_key: "1".into(),
            statements: vec![Statement {
                sql: "UPDATE ITENS SET PRICE = ? WHERE ID = ?".into(),
                params: vec![Value::Decimal(price.into()), Value::Int(1)],
            }],
            id_claims: vec![],
        },
    }
}

/// A statement a connection prepared before `guard` can keep running the old trigger body (the
/// stream test above wrote a local history row with one, now and then), so after a guard the
/// applier's connection that cached its statements is refused before it writes anything
/// (`needs_new_connection`), and the batch applies on a new connection, where the guarded body
/// skips the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_guard_a_connection_that_applied_before_it_writes_nothing_more() {
    let mut env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.install_transforms(&["generic"]).unwrap();
    env.extra_toml = items_toml("", "");
    unit_ddl(
        &env,
        &format!("{FB_ITEMS}\nINSERT INTO ITENS (ID, NAME, PRICE, STAMP) VALUES (1, 'um', 1, 1);"),
    )
    .unwrap();
    let db = env.units[0].1.clone();
    let config = env.config().unwrap();
    let hist = |db: &str| fb_rows(db, FB_HIST_SELECT).unwrap().len();
    let price = |db: &str| fb_rows(db, FB_ITEMS_SELECT).unwrap()[0][2].clone();

    let applier_db = db.clone();
    let (before, after) = tokio::task::spawn_blocking(move || {
        let mut applier = ponte_tests::firebird::connect(&applier_db).unwrap();
        // Unguarded: the replicated price change writes a local history row.
        apply_batch(&mut applier, &[price_update("2.00", 1)]).unwrap();
        // Another batch on the same connection, before any guard: applied as usual.
        apply_batch(&mut applier, &[price_update("2.50", 2)]).unwrap();
        let before = hist(&applier_db);
        let mut admin = ponte_tests::firebird::connect(&applier_db).unwrap();
        let guarded = run_unit(&mut admin, &config, &[], true).unwrap();
        assert!(
            guarded.iter().all(|(_, o)| *o == GuardOutcome::Guarded),
            "{guarded:?}"
        );
        // The same statement text again, on the connection that cached it: refused untouched.
        let change = price_update("3.00", 3);
        let err = apply_batch(&mut applier, std::slice::from_ref(&change)).unwrap_err();
        assert!(err.needs_new_connection(), "{err}");
        assert_eq!(
            price(&applier_db).as_deref(),
            Some("2.50"),
            "nothing written"
        );
        let _ = applier.close();
        let mut fresh = ponte_tests::firebird::connect(&applier_db).unwrap();
        let outcomes = apply_batch(&mut fresh, &[change]).unwrap();
        assert_eq!(outcomes, vec![BatchOutcome::Applied]);
        // The new connection goes on applying.
        let outcomes = apply_batch(&mut fresh, &[price_update("3.50", 4)]).unwrap();
        assert_eq!(outcomes, vec![BatchOutcome::Applied]);
        (before, hist(&applier_db))
    })
    .await
    .unwrap();
    assert_eq!(before, 2, "unguarded, the history trigger fired");
    assert_eq!(
        after, before,
        "guarded: no local history for a replicated write"
    );
    assert_eq!(price(&db).as_deref(), Some("3.50"));
    env.cleanup().await;
}
