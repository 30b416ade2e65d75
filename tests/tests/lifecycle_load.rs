//! `ponte load` of three new units while the demo application keeps writing: every unit's
//! chunks travel the normal path (outbox, relay, queue, transform, apply with ledger and row
//! guard) interleaved with live changes of the same rows, and afterwards both the project's
//! `verify` and the row-by-row comparison find 0 missing / 0 extra / 0 differing, and every
//! unit's ledger holds each sent change exactly once, in order.

use std::time::{Duration, Instant};

use ponte::daemon::Roles;
use ponte::demo::{load, LoadOptions};
use ponte::lifecycle::{self, Tools};
use ponte::progress::Progress;
use ponte::telemetry::LifecycleMetrics;
use ponte_tests::{check, paced, TestEnv, UnitSpec};

const UNITS: [UnitSpec; 4] = [
    UnitSpec {
        id: 1,
        charset: "WIN1252",
    },
    UnitSpec {
        id: 2,
        charset: "UTF8",
    },
    UnitSpec {
        id: 3,
        charset: "WIN1252",
    },
    UnitSpec {
        id: 4,
        charset: "UTF8",
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_new_units_load_while_the_application_writes() {
    let mut env = TestEnv::new(&UNITS).await.expect("test environment");
    // Small chunks (20 rows): many chunks, each racing the writers.
    env.extra_toml = "[load]\nchunk_size = 20\n[verify]\nchunk_size = 300\n".into();
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .expect("host starts");

    // Years of history at unit 1 only: units 2-4 are new sites.
    let history = load(
        &env.pg,
        &LoadOptions {
            changes: 2_000,
            units: vec![1],
            concurrency: 4,
            seed: 11,
        },
        |_| {},
    )
    .await
    .unwrap();
    assert!(history.transactions == 2_000);

    // The application keeps writing, now for all four units (customers and products to every
    // unit, orders to one each), while units 2, 3 and 4 are loaded: as fast as this shared box
    // applies it end to end (full speed outruns the appliers here and the check would only wait).
    let (writing, writer) = paced::paced_writer(&env, 2, 100, Duration::from_millis(100), 500);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let config = env.config().unwrap();
    let tools = Tools::open(&config, LifecycleMetrics::detached().unwrap())
        .await
        .unwrap();
    let progress = Progress::lines();
    let options = lifecycle::LoadOptions {
        tables: vec![],
        delete_extra: false,
        skip_extra: false,
    };
    let started = Instant::now();
    let units: Vec<_> = config.units().into_iter().filter(|u| u.id > 1).collect();
    let loads = futures_util::future::join_all(
        units
            .iter()
            .map(|u| lifecycle::load_unit(&env.pg, &config, &tools, u, &options, &progress)),
    )
    .await;
    let load_secs = started.elapsed().as_secs_f64();
    let mut queued = 0;
    for result in loads {
        let done = result.expect("load finishes");
        print!("{done}");
        for t in &done.tables {
            assert_eq!(
                t.extra,
                Some(0),
                "unit {} {}: a new unit has no extra rows",
                done.unit,
                t.table
            );
            queued += t.rows;
        }
        let customers = done.tables.iter().find(|t| t.table == "customers").unwrap();
        assert!(
            customers.chunks > 5,
            "several chunks per table: {}",
            customers.chunks
        );
    }
    // Parents first: customers and products before orders, orders before their items.
    let order: Vec<String> = sqlx::query_scalar(
        "SELECT table_name FROM pg_sync_outbox WHERE load_run IS NOT NULL AND unit_id = 2 \
         GROUP BY table_name ORDER BY min(id)",
    )
    .fetch_all(&env.pg)
    .await
    .unwrap();
    let at = |t: &str| order.iter().position(|o| o == t);
    assert!(
        at("customers") < at("orders") && at("orders") < at("order_items"),
        "{order:?}"
    );
    assert!(at("products") < at("order_items"), "{order:?}");

    // Writes go on after the load, then stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    writing.cancel();
    let live = writer.await.unwrap();
    println!("load: {queued} rows queued for 3 units in {load_secs:.1}s; {live} live transactions");
    assert!(live > 0);
    env.wait_outbox_drained(Duration::from_secs(180))
        .await
        .unwrap();

    // Row by row, every unit (unit 1 through live changes, 2-4 through load + live changes).
    check::units_match(&env, Duration::from_secs(120))
        .await
        .unwrap();
    // And the project's verify: through the transforms, checksums inside Firebird.
    let reports =
        lifecycle::verify_units(&env.pg, &config, &tools, &config.units(), &[], &progress)
            .await
            .unwrap();
    for r in &reports {
        print!("{r}");
        assert!(r.is_clean(), "unit {} differs:\n{r}", r.unit);
        for t in &r.tables {
            assert_eq!((t.missing, t.extra, t.differing), (0, 0, 0));
            assert_eq!(t.expected, t.found, "unit {} {}", r.unit, t.table);
        }
        let customers = r.tables.iter().find(|t| t.table == "customers").unwrap();
        assert!(
            customers.expected > 100,
            "customers reached unit {}",
            r.unit
        );
    }
    // A matching unit costs a few bytes per row from the unit, not the rows.
    let (rows, bytes): (u64, u64) = reports
        .iter()
        .flat_map(|r| r.tables.iter())
        .fold((0, 0), |(r, b), t| (r + t.found, b + t.unit_bytes));
    println!("verify: {rows} rows, {bytes} bytes from the units");
    assert!(bytes < rows * 2, "{bytes} bytes for {rows} matching rows");
    check::ledgers_exact_and_ordered(&env).await.unwrap();

    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}

/// Flow control: a load keeps at most `ahead_chunks` chunks queued that the unit has not applied,
/// so the unit's live changes never wait behind a whole table. With no applier running, the load
/// stops after `apply_wait_secs` with a message naming the unit, having queued only the chunks
/// the window allows; with the applier back, the same command resumes and finishes, and the unit
/// holds every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_load_stays_a_few_chunks_ahead_of_its_unit() {
    const ROWS: i64 = 400;
    let mut env = TestEnv::new(&UNITS[..1]).await.expect("test environment");
    env.extra_toml = "[load]\nchunk_size = 20\nahead_chunks = 2\napply_wait_secs = 3\n".into();
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    sqlx::raw_sql(&format!(
        "INSERT INTO customers (id, name, email, city, active, credit_limit, birth_date) \
         SELECT 700000 + g, 'Cliente ' || g, 'c' || g || '@example.com', 'Recife', true, 10.5, \
                DATE '1980-01-01' + g \
         FROM generate_series(1, {ROWS}) g"
    ))
    .execute(&env.pg)
    .await
    .unwrap();
    let config = env.config().unwrap();
    let tools = Tools::open(&config, LifecycleMetrics::detached().unwrap())
        .await
        .unwrap();
    let unit = config.units().into_iter().next().unwrap();
    let options = lifecycle::LoadOptions {
        tables: vec!["customers".into()],
        delete_extra: false,
        skip_extra: false,
    };

    // Only the relay runs: chunks are published, nothing applies them.
    let (relay, stop_relay) = env
        .start(Roles {
            relay: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    let stopped = lifecycle::load_unit(
        &env.pg,
        &config,
        &tools,
        &unit,
        &options,
        &Progress::lines(),
    )
    .await
    .expect_err("a load whose unit applies nothing stops");
    let message = format!("{stopped:#}");
    assert!(
        message.contains("unit 1 has not applied") && message.contains("run the same command"),
        "{message}"
    );
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_sync_outbox WHERE load_run IS NOT NULL AND unit_id = 1",
    )
    .fetch_one(&env.pg)
    .await
    .unwrap();
    assert_eq!(
        queued,
        3 * 20,
        "two chunks ahead and the one waited on, not the table's {ROWS} rows"
    );
    stop_relay.cancel();
    relay.wait().await;

    let (host, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    let done = lifecycle::load_unit(
        &env.pg,
        &config,
        &tools,
        &unit,
        &options,
        &Progress::lines(),
    )
    .await
    .expect("the rerun finishes once the unit applies");
    assert!(done.tables[0].resumed, "the rerun resumes the stopped run");
    assert_eq!(done.tables[0].run_rows, ROWS, "every row queued once");
    env.wait_outbox_drained(Duration::from_secs(60))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(60))
        .await
        .unwrap();
    check::ledgers_exact_and_ordered(&env).await.unwrap();
    stop.cancel();
    host.wait().await;
    env.cleanup().await;
}
