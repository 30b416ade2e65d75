//! One unit's Firebird database goes down for 30 s (database shutdown: every attachment refused,
//! as when that site's server is off) while the others keep applying. The unit's applier backs
//! off and resumes by itself; the other units are not slowed; everything converges.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::tools::gfix;
use ponte_tests::{check, TestEnv, UnitSpec};

async fn ledger_len(db: &str) -> usize {
    check::ledger(db).await.map(|l| l.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_unit_down_does_not_stop_the_others() {
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
    // The application keeps writing through the outage (however fast this machine drains), so the
    // other units have work to apply while unit 2 is down.
    let (stop_load, load) = env.load_until_stopped(3, 41);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let down = env.units[1].1.clone();
    gfix(&["-shut", "full", "-force", "0"], &down);
    let (one, three) = (env.units[0].1.clone(), env.units[2].1.clone());
    let before = (ledger_len(&one).await, ledger_len(&three).await);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let after = (ledger_len(&one).await, ledger_len(&three).await);
    assert_eq!(
        running.metrics.unit_up.with_label_values(&["2"]).get(),
        0,
        "unit 2 is reported down"
    );
    gfix(&["-online", "normal"], &down);
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "units 1 and 3 kept applying while unit 2 was down: {before:?} -> {after:?}"
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_load.cancel();
    load.await.unwrap().expect("load completes");
    env.wait_outbox_drained(Duration::from_secs(180))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(240))
        .await
        .unwrap();
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    assert_eq!(
        running.metrics.unit_up.with_label_values(&["2"]).get(),
        1,
        "unit 2 resumed by itself"
    );
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
