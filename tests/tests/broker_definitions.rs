//! One source for the broker topology: `ponte broker definitions` prints, from the host's own
//! declarations, the RabbitMQ definitions of every queue, exchange and binding a host declares.
//! Imported into an empty namespace first, they must be exactly what the host declares (RabbitMQ
//! refuses a re-declaration with other arguments), and a change still flows end to end.

use std::process::Command;
use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::{check, UnitSpec};

const BIN: &str = env!("CARGO_BIN_EXE_ponte-under-test");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn imported_definitions_are_what_the_host_declares() {
    let units = [1, 2].map(|id| UnitSpec {
        id,
        charset: "WIN1252",
    });
    let env = ponte_tests::upstream::upstream_env(&units, "pg_wins")
        .await
        .expect("test environment");

    let config = env.write_config().unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["broker", "definitions"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = |key: &str| -> Vec<String> {
        json[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|q| q["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let ex = &env.name;
    let mut queues = names("queues");
    queues.sort();
    let mut want = vec![
        format!("{ex}.dead"),
        format!("{ex}.unit.1"),
        format!("{ex}.unit.2"),
        format!("{ex}.upstream.1"),
        format!("{ex}.upstream.2"),
    ];
    want.sort();
    assert_eq!(queues, want, "the queues a host declares, and no others");
    let mut exchanges = names("exchanges");
    exchanges.sort();
    assert_eq!(exchanges, vec![ex.clone(), format!("{ex}.dlx")]);
    assert_eq!(
        json["bindings"].as_array().map(Vec::len),
        Some(5),
        "{}",
        json["bindings"]
    );

    let file = std::env::temp_dir().join(format!("{ex}-definitions.json"));
    std::fs::write(&file, &out.stdout).unwrap();
    let import = Command::new("rabbitmqctl")
        .args(["-q", "import_definitions"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "import: {}",
        String::from_utf8_lossy(&import.stderr)
    );

    // The host re-declares the same topology (an argument mismatch would be refused) and works.
    let (running, stop) = env.start(Roles::all()).await.expect("host starts");
    sqlx::raw_sql(
        "BEGIN; INSERT INTO customers (id, name) VALUES (1, 'definições'); \
         INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT u, 'customers', 'I', to_jsonb(c) FROM customers c, unnest(ARRAY[1,2]) u; COMMIT;",
    )
    .execute(&env.pg)
    .await
    .unwrap();
    env.wait_outbox_drained(Duration::from_secs(30))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(30))
        .await
        .unwrap();
    stop.cancel();
    running.wait().await;
    let _ = std::fs::remove_file(&file);
    env.cleanup().await;
}
