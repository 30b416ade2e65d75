//! Hot reload under load: while 10,000 changes stream through two units, the transform of their
//! table is replaced 20 times by file drop (write a temporary file, rename it over the old one),
//! alternating two builds that stamp a visible marker (A / B). Nothing is lost or applied twice,
//! and in each unit's apply order the marker changes at most once per swap: every change was
//! translated by a version that was active while it ran, never by a stale or mixed one.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::{check, firebird, TestEnv, UnitSpec, TRANSFORMS_DIR};
use rsfbclient::prelude::*;

const IDS: i64 = 5_000;
const SWAPS: usize = 20;

fn drop_file(version: &str, dir: &Path) {
    let tmp = dir.join(".versioned.wasm.tmp");
    std::fs::copy(
        Path::new(TRANSFORMS_DIR).join(format!("versioned_{version}.wasm")),
        &tmp,
    )
    .unwrap();
    std::fs::rename(&tmp, dir.join("versioned.wasm")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_swaps_under_ten_thousand_changes() {
    let units = [1, 2].map(|id| UnitSpec {
        id,
        charset: "WIN1252",
    });
    let mut env = TestEnv::new(&units).await.expect("test environment");
    env.extra_toml = "[tables.probe]\nops = \"IUD\"\ntransform = \"versioned\"\n".into();
    for (_, db) in &env.units {
        firebird::isql(&format!(
            "CONNECT '{db}';\nCREATE TABLE PROBE (ID BIGINT NOT NULL PRIMARY KEY, VAL VARCHAR(255), VERSAO CHAR(1));\nCOMMIT;\n"
        ))
        .unwrap();
    }
    drop_file("a", &env.transforms_dir);
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();

    let pool = env.pg.clone();
    let writer = tokio::spawn(async move {
        for start in (1..=IDS).step_by(50) {
            sqlx::query(
                "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
                 SELECT u, 'probe', 'I', jsonb_build_object('id', g, 'val', 'valor nº ' || g) \
                 FROM generate_series($1::bigint, $1::bigint + 49) g, unnest(ARRAY[1, 2]) u",
            )
            .bind(start)
            .execute(&pool)
            .await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok::<_, sqlx::Error>(())
    });
    for swap in 0..SWAPS {
        tokio::time::sleep(Duration::from_millis(700)).await;
        drop_file(if swap % 2 == 0 { "b" } else { "a" }, &env.transforms_dir);
    }
    writer.await.unwrap().expect("writer");
    env.wait_outbox_drained(Duration::from_secs(180))
        .await
        .unwrap();

    for (unit, db) in &env.units {
        let db = db.clone();
        let mut probe: HashMap<i64, String> = HashMap::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        while (probe.len() as i64) < IDS && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let read = db.clone();
            probe = tokio::task::spawn_blocking(move || {
                let mut conn = firebird::connect(&read).unwrap();
                let rows: Vec<(i64, String)> =
                    conn.query("SELECT ID, VERSAO FROM PROBE", ()).unwrap();
                rows.into_iter().collect()
            })
            .await
            .unwrap();
        }
        assert_eq!(probe.len() as i64, IDS, "unit {unit}: every change arrived");
        let ids: HashMap<i64, i64> = sqlx::query_as::<_, (i64, i64)>(
            "SELECT id, (payload->>'id')::bigint FROM pg_sync_outbox WHERE unit_id = $1",
        )
        .bind(unit)
        .fetch_all(&env.pg)
        .await
        .unwrap()
        .into_iter()
        .collect();
        let applied = check::ledger(&db).await.unwrap();
        let markers: Vec<&str> = applied
            .iter()
            .filter_map(|(_, outbox)| {
                ids.get(outbox)
                    .and_then(|id| probe.get(id))
                    .map(String::as_str)
            })
            .collect();
        assert_eq!(markers.len() as i64, IDS);
        let transitions = markers.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(
            markers.contains(&"A") && markers.contains(&"B"),
            "unit {unit}: both versions applied changes"
        );
        assert!(
            transitions <= SWAPS,
            "unit {unit}: {transitions} version changes in apply order for {SWAPS} swaps"
        );
    }
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    let dead = ponte::ops::dlq::list(&env.config().unwrap(), 10)
        .await
        .unwrap();
    assert!(
        dead.is_empty(),
        "nothing dead-lettered during the swaps: {dead:?}"
    );
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
