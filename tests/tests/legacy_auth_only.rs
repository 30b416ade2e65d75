//! The real 2.5 path: a unit server that accepts only Legacy_Auth (no SRP), no wire encryption,
//! its own security database — a private second Firebird instance on 127.0.0.1:3055 started by
//! `deploy/firebird-legacy-auth.sh` (the shared server on 3050 is never reconfigured). ponte
//! migrates it, installs capture, applies a demo stream to it, verifies it equal to PostgreSQL,
//! carries a legacy write upstream, and runs doctor on it; every connection logs in through
//! Legacy_Auth.

use std::process::Command;
use std::time::Duration;

use anyhow::bail;
use ponte::daemon::Roles;
use ponte_tests::upstream::{
    legacy_next_id, legacy_session, pg_customers, upstream_toml, wait_until, ID_BLOCK,
};
use ponte_tests::{check, TestEnv, UnitSpec};
use rsfbclient::prelude::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/firebird-legacy-auth.sh"
);
const SERVER: &str = "127.0.0.1/3055";

fn script(command: &str) -> anyhow::Result<String> {
    let out = Command::new("bash")
        .arg(SCRIPT)
        .arg(command)
        .env("PONTE_FB25_PORT", "3055")
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{SCRIPT} {command}: {text}");
    }
    Ok(text)
}

/// Stops the private instance however the test ends.
struct Instance;

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = script("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_auth_only_unit_is_migrated_applied_captured_and_checked() {
    let started = std::time::Instant::now();
    script("start").expect("the Legacy_Auth-only Firebird instance");
    let _instance = Instance;
    let proof = script("check").unwrap();
    assert!(proof.contains("a Srp-only client is refused"), "{proof}");
    let dir = script("dir").unwrap().trim().to_string();

    let mut env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    // The unit lives on the Legacy_Auth-only server instead of the shared one.
    ponte_tests::firebird::drop_unit_dbs(&env.units).unwrap();
    let db =
        ponte_tests::firebird::create_unit_db_on(SERVER, &dir, &env.name, 1, "WIN1252").unwrap();
    env.units = vec![(1, db.clone())];
    env.units_toml = format!("id_block = {ID_BLOCK}");
    env.extra_toml = upstream_toml("pg_wins");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    let config = env.config().unwrap();
    ponte::ops::migrate(&config, false, true).await.unwrap();
    ponte::capture::run_command(&config, &config.units(), true)
        .await
        .unwrap();

    // ponte's own connection (the native client) logged in through Legacy_Auth.
    let probe = db.clone();
    let method = tokio::task::spawn_blocking(move || {
        let mut conn = ponte_tests::firebird::connect(&probe).unwrap();
        let row: Option<(String,)> = conn
            .query_first(
                "SELECT TRIM(MON$AUTH_METHOD) FROM MON$ATTACHMENTS \
                 WHERE MON$ATTACHMENT_ID = CURRENT_CONNECTION",
                (),
            )
            .unwrap();
        let _ = conn.close();
        row.map(|(m,)| m)
    })
    .await
    .unwrap();
    assert_eq!(method.as_deref(), Some("Legacy_Auth"));

    // Applies: a demo stream reaches the unit, and verify finds it equal to PostgreSQL.
    let (running, stop) = env.start(Roles::all()).await.unwrap();
    let summary = env.load_in_background(80, 2, 11).await.unwrap().unwrap();
    assert!(summary.transactions > 0, "{summary:?}");
    env.wait_outbox_drained(Duration::from_secs(120))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(120))
        .await
        .unwrap();

    // Captures: a legacy program's insert at the unit reaches PostgreSQL.
    let local = db.clone();
    let id = tokio::task::spawn_blocking(move || {
        let mut legacy = legacy_session(&local, "WIN1252").unwrap();
        let id = legacy_next_id(&mut legacy, "CLIENTES").unwrap();
        legacy
            .execute(
                "INSERT INTO CLIENTES (ID, NOME, ATIVO) VALUES (?, 'Loja 2.5 Ação', 'S')",
                (id,),
            )
            .unwrap();
        let _ = legacy.close();
        id
    })
    .await
    .unwrap();
    assert!(
        (ID_BLOCK..2 * ID_BLOCK).contains(&id),
        "id {id} in unit 1's range"
    );
    let env_ref = &env;
    wait_until(
        Duration::from_secs(60),
        "the legacy insert upstream",
        || async move {
            let rows = pg_customers(env_ref, id, id + 1).await?;
            Ok(rows.first().is_some_and(|r| r.1 == "Loja 2.5 Ação"))
        },
    )
    .await
    .unwrap();
    stop.cancel();
    running.wait().await;

    // Checks: doctor reads the unit's catalog through the same login.
    let report = ponte::legacy::doctor(&config, 1).await.unwrap();
    assert!(
        report.render().starts_with("unit 1\n"),
        "{}",
        report.render()
    );
    env.cleanup().await;
    eprintln!("Legacy_Auth-only unit: {:?}", started.elapsed());
}
