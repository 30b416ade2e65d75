//! Three relay processes share the outbox under a continuous load: one is killed with -9 in the
//! middle of its batches, the others take over its units after the lease ends; then both are
//! stopped with SIGTERM while the load still runs. Nothing is lost or applied twice, each unit's
//! changes are applied in commit order, and a clean stop leaves no row in `processing`.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::process::HostProcess;
use ponte_tests::{check, TestEnv, UnitSpec};

const BIN: &str = env!("CARGO_BIN_EXE_ponte-under-test");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_kill9_and_sigterm_lose_nothing() {
    let units = [1, 2, 3].map(|id| UnitSpec {
        id,
        charset: "WIN1252",
    });
    let mut env = TestEnv::new(&units).await.expect("test environment");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    env.extra_toml = "[relay]\nlease_secs = 3\nbatch_size = 50\nprocessing_timeout_secs = 20\njanitor_interval_secs = 1\npoll_interval_ms = 200\n".into();
    let config_path = env.write_config().unwrap();
    let (applier, stop_applier) = env
        .start(Roles {
            apply: true,
            ..Roles::none()
        })
        .await
        .expect("appliers start");

    let mut relays: Vec<HostProcess> = (0..3)
        .map(|i| {
            let log = std::env::temp_dir().join(format!("{}-relay{i}.log", env.name));
            HostProcess::spawn(BIN, &config_path, &["run", "--role", "relay"], &log)
                .expect("spawn relay")
        })
        .collect();
    let (stop_load, load) = env.load_until_stopped(4, 11);

    // Kill one relay while it holds units and has batches in flight.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox WHERE status = 'sent'")
            .fetch_one(&env.pg)
            .await
            .unwrap();
    assert!(sent_before > 0, "relays were publishing before the kill");
    relays[0].kill9();

    // The others take its units over after the lease ends and keep going; then stop them cleanly
    // while the application is still writing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        !load.is_finished(),
        "the load is still writing when the relays are stopped"
    );
    for relay in &relays[1..] {
        relay.terminate();
    }
    for relay in &mut relays[1..] {
        let status = relay.wait_exit(Duration::from_secs(6));
        assert!(
            status.is_some_and(|s| s.success()),
            "relay did not stop cleanly within 6 s:\n{}",
            relay.log_text()
        );
    }
    assert_eq!(
        check::processing_rows(&env).await.unwrap(),
        0,
        "a clean stop leaves nothing in processing"
    );
    let leases: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ponte_unit_lease WHERE expires_at > now()")
            .fetch_one(&env.pg)
            .await
            .unwrap();
    assert_eq!(leases, 0, "stopped relays released their leases");

    // A fresh relay finishes the job once the application stops writing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_load.cancel();
    let committed = load.await.unwrap().expect("load completes");
    assert!(
        committed >= 200,
        "the load committed {committed} transactions"
    );
    let log = std::env::temp_dir().join(format!("{}-relay-final.log", env.name));
    let mut last =
        HostProcess::spawn(BIN, &config_path, &["run", "--role", "relay"], &log).unwrap();
    env.wait_outbox_drained(Duration::from_secs(180))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(120))
        .await
        .unwrap();
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    last.terminate();
    assert!(last.wait_exit(Duration::from_secs(6)).is_some());
    stop_applier.cancel();
    applier.wait().await;
    env.cleanup().await;
}
