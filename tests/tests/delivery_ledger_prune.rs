//! SYNC_CONTROL is pruned by age (`[apply] ledger_retention_days`): a unit applier deletes ledger
//! rows older than the retention and keeps the recent ones (a redelivery that old cannot happen:
//! the broker's delivery limit ends far sooner, and the row-version guard still skips stale ones).

use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::upstream::wait_until;
use ponte_tests::{firebird, TestEnv, UnitSpec};
use rsfbclient::prelude::*;

fn ledger_rows(db: &str) -> (i64, i64) {
    let mut conn = firebird::connect(db).unwrap();
    let row: Option<(i64, i64)> = conn
        .query_first(
            "SELECT COUNT(*), COUNT(CASE WHEN APPLIED_AT < DATEADD(-10 DAY TO CURRENT_TIMESTAMP) \
             THEN 1 END) FROM SYNC_CONTROL",
            (),
        )
        .unwrap();
    row.unwrap_or((-1, -1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn old_ledger_rows_are_pruned_and_recent_ones_kept() {
    let mut env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    let db = env.units[0].1.clone();
    // 300 ledger rows from a month and a half ago, and 5 from now.
    let dbc = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = firebird::connect(&dbc).unwrap();
        conn.execute(
            "EXECUTE BLOCK AS DECLARE I INTEGER = 0; BEGIN WHILE (I < 305) DO BEGIN \
             INSERT INTO SYNC_CONTROL (CORRELATION_ID, OUTBOX_ID, TABLE_NAME, OP, APPLIED_AT) \
             VALUES (LPAD(:I, 36, '0'), :I, 'products', 'U', \
             IIF(:I < 300, DATEADD(-45 DAY TO CURRENT_TIMESTAMP), CURRENT_TIMESTAMP)); \
             I = I + 1; END END",
            (),
        )
        .unwrap();
        conn.commit().unwrap();
    })
    .await
    .unwrap();
    assert_eq!(
        tokio::task::spawn_blocking({
            let d = db.clone();
            move || ledger_rows(&d)
        })
        .await
        .unwrap(),
        (305, 300)
    );

    env.extra_toml = "[apply]\nledger_retention_days = 30\n".into();
    let (running, stop) = env
        .start(Roles {
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    wait_until(Duration::from_secs(30), "old ledger rows pruned", || {
        let db = db.clone();
        async move { Ok(tokio::task::spawn_blocking(move || ledger_rows(&db)).await? == (5, 0)) }
    })
    .await
    .unwrap();
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
