//! Many PostgreSQL transactions update the same few rows at once, each writing its outbox rows in
//! the same transaction. Row locks serialise them; the relay never reads past a running
//! transaction; the units' row guard skips anything older. Every unit ends with the last
//! committed state of every row.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte_tests::{check, TestEnv, UnitSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_committed_state_wins_everywhere() {
    let units = [1, 2, 3].map(|id| UnitSpec {
        id,
        charset: "WIN1252",
    });
    let env = TestEnv::new(&units).await.expect("test environment");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    sqlx::raw_sql(
        "BEGIN; \
         INSERT INTO customers (id, name, city, active, credit_limit, updated_at) \
         SELECT g, 'Cliente ' || g, 'Ribeirão Preto', true, 0, now() FROM generate_series(1, 10) g; \
         INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT u, 'customers', 'I', to_jsonb(c) FROM customers c, unnest(ARRAY[1,2,3]) u; \
         COMMIT;",
    )
    .execute(&env.pg)
    .await
    .unwrap();

    let mut writers = Vec::new();
    for w in 0..8i64 {
        let pool = env.pg.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..60i64 {
                let id = (w * 7 + i * 3) % 10 + 1;
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "UPDATE customers SET credit_limit = credit_limit + $2, name = 'Cliente ' || id || ' v' || $3, \
                     updated_at = date_trunc('milliseconds', clock_timestamp()) WHERE id = $1",
                )
                .bind(id)
                .bind(sqlx::types::BigDecimal::from(w * 1000 + i))
                .bind(format!("{w}.{i}"))
                .execute(&mut *tx)
                .await?;
                // Hold the row lock a moment so the writers really overlap.
                tokio::time::sleep(Duration::from_millis(2)).await;
                sqlx::query(
                    "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
                     SELECT u, 'customers', 'U', to_jsonb(c) FROM customers c, unnest(ARRAY[1,2,3]) u WHERE c.id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(())
        }));
    }
    for w in writers {
        w.await.unwrap().expect("writer");
    }
    env.wait_outbox_drained(Duration::from_secs(120))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(120))
        .await
        .unwrap();
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
