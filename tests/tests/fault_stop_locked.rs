//! The 5 s stop holds even when the unit's Firebird is stuck on a lock: a local application
//! (an open isql transaction) holds a row that a change in flight wants to write. A stop must end
//! ponte within 5 s (the Firebird work is cancelled and rolled back, the delivery left unacked),
//! and after a restart, once the lock is gone, the change is applied exactly once. Both ways to
//! stop: SIGTERM to a `ponte run` process, and the shutdown token of the library's `run` (where
//! no signal handler of the Firebird client library closes the connections for us).

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ponte::daemon::Roles;
use ponte_tests::process::HostProcess;
use ponte_tests::upstream::wait_until;
use ponte_tests::{check, fb_password, firebird, TestEnv, UnitSpec};
use rsfbclient::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_ponte-under-test");

fn customer(id: i64, name: &str) -> String {
    serde_json::json!({
        "id": id, "name": name, "email": null, "city": "Recife", "active": true,
        "credit_limit": "10.00", "birth_date": null, "external_ref": null, "attributes": null,
        "updated_at": "2026-12-01T10:00:00+00:00"
    })
    .to_string()
}

async fn write(env: &TestEnv, op: &str, payload: String) {
    sqlx::query(
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         VALUES (1, 'customers', $1, $2::jsonb)",
    )
    .bind(op)
    .bind(payload)
    .execute(&env.pg)
    .await
    .unwrap();
}

/// Reads the row's committed name without waiting for the local lock (record version, no wait:
/// the client's default transaction would wait behind the pending update).
fn name_of(db: &str, id: i64) -> Option<String> {
    let mut conn = firebird::connect(db).unwrap();
    conn.begin_transaction_config(
        transaction_builder()
            .read_only()
            .with_read_commited(TrRecordVersion::RecordVersion)
            .no_wait()
            .build(),
    )
    .unwrap();
    let row: Option<(String,)> = conn
        .query_first("SELECT NOME FROM CLIENTES WHERE ID = ?", (id,))
        .unwrap();
    let _ = conn.rollback();
    row.map(|(n,)| n)
}

/// Whether a statement of the ponte process is running on the unit (it waits for the lock).
fn apply_running(db: &str, client: &str) -> bool {
    let mut conn = firebird::connect(db).unwrap();
    let row: Option<(i64,)> = conn
        .query_first(
            "SELECT COUNT(*) FROM MON$STATEMENTS S JOIN MON$ATTACHMENTS A \
             ON A.MON$ATTACHMENT_ID = S.MON$ATTACHMENT_ID \
             WHERE S.MON$STATE = 1 AND A.MON$REMOTE_PROCESS CONTAINING ? \
             AND S.MON$ATTACHMENT_ID <> CURRENT_CONNECTION",
            (client.to_string(),),
        )
        .unwrap();
    let _ = conn.close();
    row.is_some_and(|(n,)| n > 0)
}

/// An isql session that updates the row and keeps its transaction open until dropped.
struct LocalLock(Child);

impl LocalLock {
    fn take(db: &str, id: i64) -> LocalLock {
        let mut child = Command::new("isql-fb")
            .args(["-q", "-user", "SYSDBA", "-password", &fb_password(), db])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("isql-fb runs");
        if let Some(stdin) = child.stdin.as_mut() {
            writeln!(
                stdin,
                "UPDATE CLIENTES SET CIDADE = 'local' WHERE ID = {id};"
            )
            .unwrap();
            stdin.flush().unwrap();
        }
        LocalLock(child)
    }
}

impl Drop for LocalLock {
    fn drop(&mut self) {
        if let Some(stdin) = self.0.stdin.as_mut() {
            let _ = writeln!(stdin, "ROLLBACK;\nQUIT;");
        }
        let _ = self.0.wait();
    }
}

/// How the host under test runs and is stopped.
enum Host {
    Process(HostProcess),
    InProcess(
        Box<ponte::daemon::Running>,
        tokio_util::sync::CancellationToken,
    ),
}

impl Host {
    async fn start(env: &TestEnv, process: bool, tag: &str) -> Host {
        if process {
            let config = env.write_config().unwrap();
            let log = std::env::temp_dir().join(format!("{}-{tag}.log", env.name));
            Host::Process(HostProcess::spawn(BIN, &config, &["run"], &log).unwrap())
        } else {
            let (running, token) = env.start(Roles::all()).await.unwrap();
            Host::InProcess(Box::new(running), token)
        }
    }

    /// Stops it; returns how long that took (None: not within 15 s).
    async fn stop(self) -> Option<Duration> {
        let asked = Instant::now();
        match self {
            Host::Process(mut p) => {
                p.terminate();
                let status = p.wait_exit(Duration::from_secs(15));
                assert!(
                    status.is_none() || status.is_some_and(|s| s.success()),
                    "ponte did not stop cleanly:\n{}",
                    p.log_text()
                );
                status.map(|_| asked.elapsed())
            }
            Host::InProcess(running, token) => {
                token.cancel();
                tokio::time::timeout(Duration::from_secs(15), running.wait())
                    .await
                    .ok()
                    .map(|()| asked.elapsed())
            }
        }
    }
}

async fn stop_while_locked(process: bool) {
    let mut env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    env.extra_toml = "[relay]\npoll_interval_ms = 100\n".into();
    let db = env.units[0].1.clone();
    let host = Host::start(&env, process, "host").await;

    write(&env, "I", customer(42, "before")).await;
    let dbc = db.clone();
    wait_until(Duration::from_secs(30), "the customer replicated", || {
        let db = dbc.clone();
        async move {
            Ok(tokio::task::spawn_blocking(move || name_of(&db, 42))
                .await?
                .is_some())
        }
    })
    .await
    .unwrap();

    let lock = LocalLock::take(&db, 42);
    tokio::time::sleep(Duration::from_millis(500)).await;
    write(&env, "U", customer(42, "after")).await;
    env.wait_outbox_drained(Duration::from_secs(15))
        .await
        .unwrap();
    // Wait until the change is in its apply transaction, waiting for the local lock.
    let dbc = db.clone();
    let client = if process {
        "ponte-under-test"
    } else {
        "fault_stop_locked"
    };
    wait_until(Duration::from_secs(20), "the apply statement waits for the lock", || {
        let db = dbc.clone();
        async move {
            Ok(tokio::task::spawn_blocking(move || apply_running(&db, client)).await?)
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let took = host.stop().await;
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(5)),
        "ponte took {took:?} to stop (limit 5 s)"
    );
    println!("stopped in {took:?} with a change waiting for a row lock");
    let dbc = db.clone();
    let name = tokio::task::spawn_blocking(move || name_of(&dbc, 42))
        .await
        .unwrap();
    assert_eq!(
        name.as_deref(),
        Some("before"),
        "the change was not applied before the stop"
    );

    drop(lock);
    let again = Host::start(&env, process, "host2").await;
    let dbc = db.clone();
    wait_until(
        Duration::from_secs(30),
        "the change applied after the restart",
        || {
            let db = dbc.clone();
            async move {
                Ok(tokio::task::spawn_blocking(move || name_of(&db, 42))
                    .await?
                    .as_deref()
                    == Some("after"))
            }
        },
    )
    .await
    .unwrap();
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    assert!(again.stop().await.is_some());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_ends_within_five_seconds_while_a_change_waits_for_a_row_lock() {
    stop_while_locked(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shutdown_token_ends_within_five_seconds_while_a_change_waits_for_a_row_lock() {
    stop_while_locked(false).await;
}
