//! The broker is stopped in the middle of publishing and consuming and started again 10 s later:
//! the host stays up, its connection reconnects with backoff and is swapped in place, and the
//! stream completes with nothing lost or applied twice.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::tools::rabbitmqctl;
use ponte_tests::{check, TestEnv, UnitSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_outage_loses_nothing() {
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
    // The application keeps writing until after the broker is back, so the outage always falls in
    // the middle of publishing and consuming, however fast this machine drains.
    let (stop_load, load) = env.load_until_stopped(3, 31);
    tokio::time::sleep(Duration::from_secs(3)).await;

    rabbitmqctl(&["stop_app"]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    for connection in ["publish", "consume"] {
        let up = running
            .metrics
            .amqp_connected
            .with_label_values(&[connection])
            .get();
        assert_eq!(
            up, 0,
            "the host noticed the outage on its {connection} connection"
        );
    }
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox WHERE status = 'pending'")
            .fetch_one(&env.pg)
            .await
            .unwrap();
    assert!(
        pending > 0,
        "changes kept accumulating in the outbox during the outage"
    );
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["-q", "await_startup", "--timeout", "60"]);
    tokio::time::sleep(Duration::from_secs(3)).await;

    stop_load.cancel();
    let committed = load.await.unwrap().expect("load completes");
    assert!(committed > 0);
    env.wait_outbox_drained(Duration::from_secs(240))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(180))
        .await
        .unwrap();
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    for connection in ["publish", "consume"] {
        let up = running
            .metrics
            .amqp_connected
            .with_label_values(&[connection])
            .get();
        assert_eq!(up, 1, "the {connection} connection reconnected");
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(6), running.wait())
        .await
        .expect("clean stop");
    assert_eq!(check::processing_rows(&env).await.unwrap(), 0);
    env.cleanup().await;
}
