//! Unit leases: relays configured with different unit lists serve every unit between them, and a
//! claim made after its lease expired (another instance took the unit over) claims nothing — the
//! holder is checked inside the claim statement itself.

use std::sync::Arc;
use std::time::Duration;

use ponte::config::IdList;
use ponte::daemon::Roles;
use ponte_tests::{TestEnv, UnitSpec};
use tokio_util::sync::CancellationToken;

async fn write_rows(env: &TestEnv, units: &[i32], per_unit: i64) {
    sqlx::query(
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT u, 'products', 'U', jsonb_build_object('id', g, 'sku', 'S' || g, \
             'description', 'lease ' || g, 'price', '1.00', 'stock', 1, 'discontinued', false) \
         FROM generate_series(1, $2::bigint) g, unnest($1::int[]) u ORDER BY g, u",
    )
    .bind(units)
    .bind(per_unit)
    .execute(&env.pg)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_with_disjoint_unit_lists_serve_every_unit() {
    let units = [1, 2, 3, 4].map(|id| UnitSpec {
        id,
        charset: "WIN1252",
    });
    let mut env = TestEnv::new(&units).await.expect("test environment");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    env.extra_toml = "[relay]\nlease_secs = 3\npoll_interval_ms = 100\n".into();
    let (appliers, stop_appliers) = env
        .start(Roles {
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    let mut relays = Vec::new();
    for ids in [vec![1, 2], vec![3, 4]] {
        let mut config = env.config().unwrap();
        config.units.ids = IdList(ids);
        let token = CancellationToken::new();
        let running = ponte::daemon::start(
            Arc::new(config),
            Roles {
                relay: true,
                ..Roles::none()
            },
            token.clone(),
        )
        .await
        .unwrap();
        relays.push((running, token));
    }
    write_rows(&env, &[1, 2, 3, 4], 50).await;
    env.wait_outbox_drained(Duration::from_secs(40))
        .await
        .unwrap();
    for (running, token) in relays {
        token.cancel();
        running.wait().await;
    }
    stop_appliers.cancel();
    appliers.wait().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_after_the_lease_expired_claims_nothing() {
    let env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment");
    write_rows(&env, &[1], 5).await;
    // Session 1: instance X holds unit 1's lease...
    sqlx::query(
        "INSERT INTO ponte_unit_lease (unit_id, holder, expires_at) \
         VALUES (1, 'relay-x', now() + interval '15 seconds')",
    )
    .execute(&env.pg)
    .await
    .unwrap();
    let claimed = ponte::relay::claim(&env.pg, &[1], 2, "relay-x")
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2, "the holder claims while its lease runs");
    ponte::relay::hand_back(&env.pg, None, "relay-x")
        .await
        .unwrap();

    // ...then its lease runs out and session 2, instance Y, takes the unit over.
    let mut other = env.pg.acquire().await.unwrap();
    sqlx::query(
        "UPDATE ponte_unit_lease SET expires_at = now() - interval '1 second' WHERE unit_id = 1",
    )
    .execute(&mut *other)
    .await
    .unwrap();
    let late = ponte::relay::claim(&env.pg, &[1], 10, "relay-x")
        .await
        .unwrap();
    assert!(
        late.is_empty(),
        "an expired lease claimed {} rows",
        late.len()
    );
    sqlx::query("UPDATE ponte_unit_lease SET holder = 'relay-y', expires_at = now() + interval '15 seconds'")
        .execute(&mut *other)
        .await
        .unwrap();
    let stolen = ponte::relay::claim(&env.pg, &[1], 10, "relay-x")
        .await
        .unwrap();
    assert!(
        stolen.is_empty(),
        "a lease held by another instance claimed {} rows",
        stolen.len()
    );
    let owner = ponte::relay::claim(&env.pg, &[1], 10, "relay-y")
        .await
        .unwrap();
    assert_eq!(owner.len(), 5, "the new holder claims everything");
    drop(other);
    env.cleanup().await;
}
