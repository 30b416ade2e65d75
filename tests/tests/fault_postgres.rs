//! PostgreSQL restarts while the relay is draining the outbox: the relay's queries fail, it backs
//! off, reconnects, hands the interrupted round's rows back and finishes; nothing is lost, nothing
//! is applied twice.

use std::process::Command;
use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::{check, TestEnv, UnitSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_loses_nothing() {
    let units = [1, 2, 3].map(|id| UnitSpec {
        id,
        charset: "WIN1252",
    });
    let mut env = TestEnv::new(&units).await.expect("test environment");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    env.extra_toml = "[relay]\nbatch_size = 50\n".into();
    // Write the stream first (~18,000 outbox rows, seconds of draining), then restart PostgreSQL
    // as soon as the relay has published its first rows: progress, not a guessed delay, decides
    // when, so a faster relay cannot finish before the fault.
    ponte::demo::load(
        &env.pg,
        &ponte::demo::LoadOptions {
            changes: 6_000,
            units: vec![1, 2, 3],
            concurrency: 4,
            seed: 51,
        },
        |_| {},
    )
    .await
    .unwrap();
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    let publishing = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let sent: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox WHERE status = 'sent'")
                .fetch_one(&env.pg)
                .await
                .unwrap();
        assert!(
            tokio::time::Instant::now() < publishing,
            "the relay published nothing in 60 s"
        );
        if sent > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cluster = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .expect("a PostgreSQL cluster under /etc/postgresql");
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &cluster, "main", "restart"])
        .status()
        .expect("pg_ctlcluster");
    assert!(status.success(), "PostgreSQL restarted");
    // The test's own pool reconnects on its next query.
    let mut sent = 0i64;
    for _ in 0..50 {
        if let Ok(n) = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_sync_outbox WHERE status = 'sent'",
        )
        .fetch_one(&env.pg)
        .await
        {
            sent = n;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_sync_outbox")
        .fetch_one(&env.pg)
        .await
        .unwrap();
    assert!(
        sent < total,
        "the restart happened mid-drain ({sent} of {total} sent)"
    );
    env.wait_outbox_drained(Duration::from_secs(180))
        .await
        .unwrap();
    // The relay handed its failed round's rows back itself (in order, at once); none waited for
    // the janitor's processing timeout.
    let rescued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_sync_outbox WHERE error_log LIKE 'rescued by the janitor%'",
    )
    .fetch_one(&env.pg)
    .await
    .unwrap();
    assert_eq!(rescued, 0, "rows waited for the janitor");
    check::units_match(&env, Duration::from_secs(180))
        .await
        .unwrap();
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
