//! Unit apply throughput against the raw limits of the same Firebird server, measured in one run:
//!   raw 1/tx   one plain INSERT per transaction (what a commit costs on this disk)
//!   raw        plain prepared INSERTs, N rows per transaction (the batched insert a Firebird
//!              2.5 client has: it has no batch API; the target's baseline)
//!   raw packed plain INSERTs packed 25 per EXECUTE BLOCK, N rows per transaction (information:
//!              the same packing ponte uses, without ponte's ledger and row guard)
//!   one-tx     ponte's apply transaction with one change per commit (what per-message apply costs)
//!   ponte      ponte's apply transaction, N changes per commit (ledger, row guard, INDICE),
//!              once inserting new rows and once updating them; the slower pass is the figure
//! and the per-change cost of the wasm transform (products via the generic transform). Every
//! pass checks that it did its work (outcomes, rows, ledger) before its rate is printed.
//! Run: `cargo bench -p ponte-tests --bench apply` (prints the figures and ratios).

use std::time::Instant;

use anyhow::ensure;
use ponte::firebird::{apply_batch, BatchOutcome, FbConn, Prepared};
use ponte::model::{Change, Direction, Op};
use ponte::transform::{EngineSettings, TableBinding, TransformRegistry};
use ponte_tests::bench::{raw_packed_inserts, raw_row, RAW_INSERT};
use ponte_tests::firebird::{connect, create_unit_db, drop_unit_dbs};
use rsfbclient::prelude::*;

fn change(id: i64, seq: i64, op: Op) -> Change {
    Change {
        table: "products".into(),
        op,
        direction: Direction::Downstream,
        unit: 1,
        correlation_id: uuid::Uuid::new_v4().to_string(),
        sequence: seq,
        payload: format!(
            r#"{{"id": {id}, "sku": "SKU-{id}", "description": "Açúcar cristal 5 kg nº {id} ({op:?})", "price": 1234567.89, "stock": {}, "discontinued": false}}"#,
            seq % 1000
        ),
        settings: "{}".into(),
    }
}

/// Rows per second of `rows` plain INSERTs, `per_tx` per transaction, one statement each.
fn raw_inserts(conn: &mut FbConn, ids: std::ops::Range<i64>, per_tx: usize) -> anyhow::Result<f64> {
    let ids: Vec<i64> = ids.collect();
    let started = Instant::now();
    for chunk in ids.chunks(per_tx) {
        conn.begin_transaction()?;
        for &id in chunk {
            conn.execute(RAW_INSERT, raw_row(id))?;
        }
        conn.commit()?;
    }
    Ok(ids.len() as f64 / started.elapsed().as_secs_f64())
}

/// Changes per second of ponte's apply, `per_tx` changes per transaction; every change must apply.
fn ponte_apply(conn: &mut FbConn, changes: &[Prepared], per_tx: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    for chunk in changes.chunks(per_tx) {
        let outcomes = apply_batch(conn, chunk)?;
        ensure!(
            outcomes.iter().all(|o| *o == BatchOutcome::Applied),
            "a change was not applied: {outcomes:?}"
        );
    }
    Ok(changes.len() as f64 / started.elapsed().as_secs_f64())
}

fn count(conn: &mut FbConn, sql: &str, low: i64, high: i64) -> anyhow::Result<i64> {
    let row: Option<(i64,)> = conn.query_first(sql, (low, high))?;
    Ok(row.map(|(n,)| n).unwrap_or_default())
}

fn main() -> anyhow::Result<()> {
    ponte_tests::init_logging();
    let n: usize = std::env::var("PONTE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6_000);
    let sample = (n / 10).max(200);
    // Changes per transaction: what a unit applier uses by default (`[apply] batch_size`).
    let batch: usize = std::env::var("PONTE_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ponte::config::ApplyConfig::default().batch_size);
    let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let db = create_unit_db(&prefix, 1, "WIN1252")?;
    let config = ponte::config::Config::parse(&format!(
        "[postgres]\nurl='postgres://x'\n[amqp]\nurl='amqp://x'\n[firebird]\npassword='{}'\n[units]\nids='1'\ndatabase='{db}'\n[transforms]\ndir='/tmp'\n",
        ponte_tests::fb_password()
    ))?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(ponte::ops::migrate(&config, false, true))?;
    let mut conn = connect(&db)?;

    // The server's own limits, same table and row shape.
    let raw_single = raw_inserts(&mut conn, 10_000_000..10_000_000 + sample as i64, 1)?;
    let raw = raw_inserts(&mut conn, 20_000_000..20_000_000 + n as i64, batch)?;
    let raw_packed = raw_packed_inserts(&mut conn, 30_000_000..30_000_000 + n as i64, batch)?;

    // The real generic transform for products, as a unit applier would call it.
    let settings = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../transforms/generic/examples/products.settings.json"
    ))?;
    let registry = TransformRegistry::load(
        EngineSettings::default(),
        std::path::Path::new(ponte_tests::TRANSFORMS_DIR),
        vec![TableBinding {
            table: "products".into(),
            transform: Some("generic".into()),
            settings_json: settings,
        }],
        &prometheus::Registry::new(),
    )?;
    let pinned = registry.pin("products")?;
    let prepare = |ids: std::ops::Range<i64>, seq: i64, op: Op| -> anyhow::Result<Vec<Prepared>> {
        ids.map(|id| {
            let c = change(id, seq + id, op);
            let output = pinned.call(&c).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Prepared {
                correlation_id: c.correlation_id,
                sequence: c.sequence,
                table: c.table,
                op: c.op,
                output,
            })
        })
        .collect()
    };
    let started = Instant::now();
    let inserts = prepare(1..n as i64 + 1, 0, Op::Insert)?;
    let transform_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let updates = prepare(1..n as i64 + 1, 1_000_000, Op::Update)?;
    let singles = prepare(5_000_000..5_000_000 + sample as i64, 0, Op::Insert)?;

    let inserted = ponte_apply(&mut conn, &inserts, batch)?;
    let updated = ponte_apply(&mut conn, &updates, batch)?;
    let one_tx = ponte_apply(&mut conn, &singles, 1)?;
    let batched = inserted.min(updated);

    // Did the work happen? Every row there once, with the update's text; one ledger row per change.
    let rows = count(
        &mut conn,
        "SELECT COUNT(*) FROM PRODUTOS WHERE ID BETWEEN ? AND ? AND DESCRICAO LIKE '%(Update)'",
        1,
        n as i64,
    )?;
    ensure!(rows == n as i64, "{rows} of {n} rows carry the update");
    let ledger = count(
        &mut conn,
        "SELECT COUNT(*) FROM SYNC_CONTROL WHERE OUTBOX_ID BETWEEN ? AND ?",
        0,
        i64::MAX,
    )?;
    ensure!(
        ledger == (2 * n + sample) as i64,
        "ledger holds {ledger} rows, expected {}",
        2 * n + sample
    );

    println!("unit apply benchmark ({n} changes, {batch} per transaction, Firebird on 127.0.0.1, WIN1252 database)");
    println!("  raw INSERT, one row per transaction      {raw_single:>9.0} rows/s   ({:.2} ms per transaction)", 1e3 / raw_single);
    println!("  raw batched INSERT (prepared, {batch}/tx)  {raw:>9.0} rows/s");
    println!("  raw packed INSERT (EXECUTE BLOCK, info)  {raw_packed:>9.0} rows/s");
    println!("  ponte one change per transaction        {one_tx:>9.0} changes/s");
    println!("  ponte batched apply, new rows           {inserted:>9.0} changes/s");
    println!("  ponte batched apply, updated rows       {updated:>9.0} changes/s");
    println!("  wasm transform (generic, products)      {transform_us:>9.1} us/change");
    println!("  ratio batched / one-per-transaction     {:>9.1}x   (target >= 25x; the server itself: raw batched / raw 1/tx {:.1}x)", batched / one_tx, raw / raw_single);
    println!(
        "  ratio batched / raw batched insert      {:>9.0}%   (target >= 85%)",
        100.0 * batched / raw
    );
    println!(
        "  ratio batched / raw packed insert       {:>9.0}%   (information)",
        100.0 * batched / raw_packed
    );
    let _ = conn.close();
    drop_unit_dbs(&[(1, db)])?;
    Ok(())
}
