//! The claim's cost does not grow with the backlog, whatever plan PostgreSQL cached while the
//! outbox was nearly empty. A relay's connection runs the claim many times on a small outbox
//! (where any plan is cheap) and then meets a 40k-row backlog, as after a broker outage: each
//! claim of 500 rows must read a bounded number of outbox tuples. The claim cached as a generic
//! plan walked every pending row once per window row (5 s per claim, the relay drained ~200
//! rows/s, fault_broker timed out).

use ponte_tests::{TestEnv, UnitSpec};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

const INSTANCE: &str = "relay-backlog";
const UNITS: [i32; 3] = [1, 2, 3];
const LIMIT: i64 = 500;

async fn write_rows(pg: &PgPool, per_unit: i64) {
    sqlx::query(
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT u, 'products', 'U', jsonb_build_object('id', g, 'sku', 'S' || g) \
         FROM generate_series(1, $2::bigint) g, unnest($1::int[]) u ORDER BY g, u",
    )
    .bind(UNITS)
    .bind(per_unit)
    .execute(pg)
    .await
    .unwrap();
}

/// Outbox tuples read so far (sequential and index fetches), as the statistics report them.
async fn tuples_read(stats: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) \
         FROM pg_stat_user_tables WHERE relname = 'pg_sync_outbox'",
    )
    .fetch_one(stats)
    .await
    .unwrap()
}

/// One claim on the relay's connection, its rows marked sent; returns (rows, tuples read).
async fn claim_once(relay: &PgPool, stats: &PgPool) -> (usize, i64) {
    let before = tuples_read(stats).await;
    let rows = ponte::relay::claim(relay, &UNITS, LIMIT, INSTANCE)
        .await
        .unwrap();
    // The claiming backend reports its counters before it answers its next query.
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(relay)
        .await
        .unwrap();
    sqlx::query("SELECT 1").execute(relay).await.unwrap();
    let read = tuples_read(stats).await - before;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    sqlx::query("UPDATE pg_sync_outbox SET status = 'sent', claimed_by = NULL WHERE id = ANY($1)")
        .bind(&ids)
        .execute(stats)
        .await
        .unwrap();
    (rows.len(), read)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_reads_a_bounded_number_of_rows_whatever_the_backlog() {
    let env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment");
    sqlx::query(
        "INSERT INTO ponte_unit_lease (unit_id, holder, expires_at) \
         SELECT u, $1, now() + interval '1 hour' FROM unnest($2::int[]) u",
    )
    .bind(INSTANCE)
    .bind(UNITS)
    .execute(&env.pg)
    .await
    .unwrap();
    // One connection, as a relay's claims mostly reuse theirs: its statement cache is the one
    // that meets the backlog.
    let relay = PgPoolOptions::new()
        .max_connections(1)
        .connect(&env.pg_url)
        .await
        .unwrap();

    // A quiet outbox: a few rows per claim, the statistics of a small table.
    write_rows(&env.pg, 1).await;
    sqlx::query("ANALYZE pg_sync_outbox")
        .execute(&env.pg)
        .await
        .unwrap();
    for _ in 0..12 {
        write_rows(&env.pg, 2).await;
        let (rows, _) = claim_once(&relay, &env.pg).await;
        assert!(rows > 0, "the quiet outbox is claimed");
    }

    // Then the backlog of an outage.
    let per_unit = 40_000 / UNITS.len() as i64;
    write_rows(&env.pg, per_unit).await;
    let mut claimed = 0;
    let mut worst = 0;
    for _ in 0..8 {
        let (rows, read) = claim_once(&relay, &env.pg).await;
        assert_eq!(
            rows as i64, LIMIT,
            "a full window is claimed from the backlog"
        );
        claimed += rows;
        worst = worst.max(read);
    }
    println!("8 claims of {LIMIT} from a 40k backlog: {claimed} rows, at most {worst} tuples read");
    // The window reads at most `LIMIT` rows per held unit, the lock and the update `LIMIT` each:
    // a few thousand tuples, never the backlog.
    assert!(
        worst <= 12 * LIMIT,
        "a claim of {LIMIT} rows read {worst} outbox tuples with 40k pending: its cost grows \
         with the backlog"
    );
    env.cleanup().await;
}
