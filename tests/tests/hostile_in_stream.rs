//! Hostile transforms inside a running host, in the middle of a continuous stream: an infinite
//! loop, a memory bomb, a trap, DDL, a write to another table, two statements in one string and
//! a huge output are each bound to a table of their own. Every message of those tables is
//! dead-lettered with a reason naming what the transform did; the host stays up, the other
//! tables' changes all arrive, exactly once, in order.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::{check, TestEnv, UnitSpec};

/// Each hostile component and a word its dead-letter reason must contain.
const HOSTILE: &[(&str, &str)] = &[
    ("hostile_loop", "deadline"),
    ("hostile_memory", "memory"),
    ("hostile_trap", "unreachable"),
    ("hostile_ddl", "DROP"),
    ("hostile_other_table", "PRODUTOS"),
    ("hostile_multi", "more than one statement"),
    ("hostile_huge", ""),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_transforms_fail_only_their_messages() {
    let units = [1, 2].map(|id| UnitSpec {
        id,
        charset: "WIN1252",
    });
    let mut env = TestEnv::new(&units).await.expect("test environment");
    let mut stems = vec!["customers", "orders", "generic"];
    stems.extend(HOSTILE.iter().map(|(t, _)| *t));
    env.install_transforms(&stems).unwrap();
    env.extra_toml = HOSTILE
        .iter()
        .map(|(t, _)| format!("[tables.{t}]\nops = \"IUD\"\ntransform = \"{t}\"\n"))
        .collect();
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    let load = env.load_in_background(1_200, 3, 51);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut hostile_ids = Vec::new();
    for (round, unit) in [1, 2, 1].into_iter().enumerate() {
        for (table, _) in HOSTILE {
            let id: String = sqlx::query_scalar(
                "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
                 VALUES ($1, $2, 'I', jsonb_build_object('id', $3::int)) RETURNING correlation_id::text",
            )
            .bind(unit)
            .bind(table)
            .bind(round as i32 + 1)
            .fetch_one(&env.pg)
            .await
            .unwrap();
            hostile_ids.push((id, *table));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    load.await.unwrap().expect("load completes");
    env.wait_outbox_drained(Duration::from_secs(120))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(120))
        .await
        .unwrap();
    let poisoned: Vec<String> = hostile_ids.iter().map(|(id, _)| id.clone()).collect();
    check::ledgers_exact_and_ordered_except(&env, &poisoned)
        .await
        .unwrap();

    let letters = check::dead_letters(&env, hostile_ids.len(), Duration::from_secs(60))
        .await
        .unwrap();
    for (id, table) in &hostile_ids {
        let letter = letters
            .iter()
            .find(|l| &l.correlation_id == id)
            .unwrap_or_else(|| panic!("{table}: message {id} not dead-lettered: {letters:?}"));
        let word = HOSTILE
            .iter()
            .find(|(t, _)| t == table)
            .map_or("", |(_, w)| *w);
        assert_eq!(letter.class, "transform", "{table}: {}", letter.reason);
        assert!(
            letter.reason.contains(word),
            "{table}: reason `{}` lacks `{word}`",
            letter.reason
        );
        assert!(
            letter.reason.len() < 2_000,
            "{table}: a {} byte reason",
            letter.reason.len()
        );
        println!("{table}: {}", letter.reason);
    }
    assert_eq!(
        letters.len(),
        hostile_ids.len(),
        "nothing else was dead-lettered: {letters:?}"
    );

    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
