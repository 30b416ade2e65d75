//! A broker memory alarm blocks every connection that publishes, but consuming stays allowed.
//! With outbox rows pending (the relay keeps trying to publish) and thousands of messages already
//! queued for the units, the appliers must keep applying through the alarm: publishing and
//! consuming use separate connections. After the alarm, everything arrives exactly once.
//! The alarm is broker-wide: it is always lifted, even when the test fails.

use std::process::Command;
use std::time::{Duration, Instant};

use ponte::daemon::Roles;
use ponte_tests::{check, TestEnv, UnitSpec};

const QUEUED_PER_UNIT: i64 = 3_000;

/// Sets a memory alarm for as long as it lives.
struct MemoryAlarm;

impl MemoryAlarm {
    fn raise() -> MemoryAlarm {
        set_watermark("0.0000001");
        MemoryAlarm
    }
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        set_watermark("0.4");
    }
}

fn set_watermark(fraction: &str) {
    let status = Command::new("rabbitmqctl")
        .args(["-q", "set_vm_memory_high_watermark", fraction])
        .status()
        .expect("rabbitmqctl runs");
    assert!(
        status.success(),
        "rabbitmqctl set_vm_memory_high_watermark {fraction} failed"
    );
}

fn alarm_active() -> bool {
    Command::new("rabbitmq-diagnostics")
        .args(["-q", "alarms"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("Memory alarm"))
        .unwrap_or(false)
}

fn produtos(db: &str) -> i64 {
    use rsfbclient::prelude::*;
    let mut conn = ponte_tests::firebird::connect(db).unwrap();
    let row: Option<(i64,)> = conn
        .query_first("SELECT COUNT(*) FROM PRODUTOS", ())
        .unwrap();
    row.map(|(n,)| n).unwrap_or(-1)
}

async fn write_products(env: &TestEnv, from: i64, count: i64) {
    sqlx::query(
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT u, 'products', 'U', jsonb_build_object('id', g, 'sku', 'S' || g, \
             'description', 'alarm ' || g, 'price', '2.50', 'stock', g % 100, 'discontinued', false) \
         FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) g, unnest(ARRAY[1, 2]) u \
         ORDER BY g, u",
    )
    .bind(from)
    .bind(count)
    .execute(&env.pg)
    .await
    .unwrap();
}

async fn ledger_total(env: &TestEnv) -> usize {
    let mut n = 0;
    for (_, db) in &env.units {
        n += check::ledger(db).await.map(|l| l.len()).unwrap_or(0);
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumers_keep_applying_through_a_memory_alarm() {
    let units = [1, 2].map(|id| UnitSpec {
        id,
        charset: "WIN1252",
    });
    let mut env = TestEnv::new(&units).await.expect("test environment");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    env.extra_toml = "[relay]\npoll_interval_ms = 100\n".into();

    // Messages queued for the units while no applier runs.
    write_products(&env, 1, QUEUED_PER_UNIT).await;
    let (relay, stop_relay) = env
        .start(Roles {
            relay: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    env.wait_outbox_drained(Duration::from_secs(60))
        .await
        .unwrap();
    stop_relay.cancel();
    relay.wait().await;
    // And outbox rows the relay will try to publish during the alarm.
    write_products(&env, 100_000, 500).await;

    let alarm = MemoryAlarm::raise();
    let started = Instant::now();
    while !alarm_active() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the memory alarm did not trigger"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (host, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    let queued = (2 * QUEUED_PER_UNIT) as usize;
    let started = Instant::now();
    loop {
        let applied = ledger_total(&env).await;
        if applied >= queued {
            println!(
                "{applied} queued messages applied {:?} into the alarm",
                started.elapsed()
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "only {applied} of {queued} queued messages applied after 25 s of memory alarm: \
             the consumers are blocked with the publisher"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_sync_outbox WHERE status IN ('pending', 'processing')",
    )
    .fetch_one(&env.pg)
    .await
    .unwrap();
    println!("{pending} outbox rows could not be published during the alarm (expected: > 0)");
    drop(alarm);

    env.wait_outbox_drained(Duration::from_secs(120))
        .await
        .unwrap();
    for (unit, db) in &env.units {
        let what = format!("unit {unit}: every product arrived");
        ponte_tests::upstream::wait_until(Duration::from_secs(60), &what, || {
            let db = db.clone();
            async move {
                let rows = tokio::task::spawn_blocking(move || produtos(&db)).await?;
                Ok(rows == QUEUED_PER_UNIT + 500)
            }
        })
        .await
        .unwrap();
    }
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    stop.cancel();
    host.wait().await;
    env.cleanup().await;
}
