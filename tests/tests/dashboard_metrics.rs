//! The Grafana dashboard (deploy/grafana/ponte.json) and the alert rules
//! (deploy/prometheus/alerts.yml) only name metrics the host really exports: a host runs every
//! role over two units with changes both ways, a refused change (a transform error and a dead
//! letter), and then every metric either file names must be in its `/metrics`. The rules also
//! pass `promtool check rules` (Debian's prometheus package, installed by deploy/setup.sh).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::changes::{customer, outbox_row};
use ponte_tests::upstream::{legacy_next_id, legacy_session, upstream_env, wait_until};
use ponte_tests::UnitSpec;
use rsfbclient::prelude::*;

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/ponte.json");
const ALERTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/prometheus/alerts.yml"
);

/// Metric names in a query text: `ponte_*` and `process_*`, histogram series as their family.
fn metric_names(text: &str, into: &mut BTreeSet<String>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &text[i..];
        if word_start && (rest.starts_with("ponte_") || rest.starts_with("process_")) {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..len];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            into.insert(family.to_string());
            i += len;
        } else {
            i += 1;
        }
    }
}

/// Every `expr` of the dashboard's panels.
fn dashboard_queries() -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let mut queries = Vec::new();
    for panel in json["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for var in json["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            queries.push(q.to_string());
        }
    }
    queries
}

#[test]
fn the_alert_rules_pass_promtool() {
    let out = Command::new("promtool")
        .args(["check", "rules", ALERTS])
        .output()
        .unwrap_or_else(|e| panic!("promtool is installed (deploy/setup.sh): {e}"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_the_dashboard_and_the_alerts_name_is_exported() {
    let mut wanted = BTreeSet::new();
    let queries = dashboard_queries();
    assert!(queries.len() >= 25, "the dashboard has its panels");
    for q in &queries {
        metric_names(q, &mut wanted);
    }
    metric_names(&std::fs::read_to_string(ALERTS).unwrap(), &mut wanted);
    for expected in ["ponte_apply_lag_seconds", "ponte_transform_calls_total"] {
        assert!(wanted.contains(expected), "{expected} among {wanted:?}");
    }

    let units = [1, 2].map(|id| UnitSpec {
        id,
        charset: "WIN1252",
    });
    let env = upstream_env(&units, "pg_wins")
        .await
        .expect("test environment");
    let (running, stop) = env.start(Roles::all()).await.expect("host starts");
    // Downstream: a customer for both units, and one the transform refuses (name too long).
    for unit in [1, 2] {
        let row = customer(serde_json::json!({"id": 88, "name": "Métrica"}));
        outbox_row(&env, unit, "customers", &row).await;
    }
    let too_long = customer(serde_json::json!({"id": 89, "name": "Ã".repeat(150)}));
    outbox_row(&env, 1, "customers", &too_long).await;
    // Upstream: a legacy program at unit 2 adds a customer.
    let db2 = env.units[1].1.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = legacy_session(&db2, "WIN1252")?;
        let id = legacy_next_id(&mut conn, "CLIENTES")?;
        conn.execute(
            "INSERT INTO CLIENTES (ID, NOME, ATIVO) VALUES (?, 'Da loja dois', 'S')",
            (id,),
        )?;
        let _ = conn.close();
        Ok(())
    })
    .await
    .unwrap()
    .unwrap();

    let metrics = running.metrics.clone();
    let result = wait_until(
        Duration::from_secs(90),
        "every metric of the dashboard and the alerts in /metrics",
        || {
            let text = metrics.render();
            let exported: BTreeSet<String> = text
                .lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| l.split_whitespace().next())
                .map(String::from)
                .collect();
            let missing: Vec<String> = wanted.difference(&exported).cloned().collect();
            async move {
                if !missing.is_empty() {
                    println!("not exported yet: {missing:?}");
                }
                Ok(missing.is_empty())
            }
        },
    )
    .await;
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
    result.unwrap();
}
