//! The probes: `/healthz` answers while the process runs; `/readyz` says ready only while
//! PostgreSQL and the broker are reachable and every role has started, and says which one is not.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::http::get;
use ponte_tests::upstream::wait_until;
use ponte_tests::{pg_admin_url, TestEnv, UnitSpec};

async fn admin(sql: &str) {
    let pool = sqlx::PgPool::connect(&pg_admin_url()).await.unwrap();
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_follows_postgres() {
    let env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    let (running, stop) = env
        .start(Roles {
            relay: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    let addr = running.http_addr.expect("the http endpoint listens");
    assert_eq!(get(addr, "/healthz").await.unwrap().0, 200);
    wait_until(Duration::from_secs(20), "ready", || async move {
        Ok(get(addr, "/readyz").await?.0 == 200)
    })
    .await
    .unwrap();

    // PostgreSQL refuses this database's connections: not ready, and it says why.
    admin(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS false",
        env.name
    ))
    .await;
    admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
        env.name
    ))
    .await;
    wait_until(
        Duration::from_secs(20),
        "not ready while PostgreSQL is unreachable",
        || async move {
            let (status, body) = get(addr, "/readyz").await?;
            Ok(status == 503 && body.contains("postgres"))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        get(addr, "/healthz").await.unwrap().0,
        200,
        "alive all the same"
    );

    admin(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS true",
        env.name
    ))
    .await;
    wait_until(Duration::from_secs(30), "ready again", || async move {
        Ok(get(addr, "/readyz").await?.0 == 200)
    })
    .await
    .unwrap();
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
