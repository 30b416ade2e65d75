//! Unit apply throughput against the raw limits of the same Firebird server, measured in one run:
//!   raw      plain INSERTs, 200 rows per transaction (the server's batched-insert ceiling)
//!   one-tx   ponte's apply transaction with one change per commit (what per-message apply costs)
//!   ponte    ponte's apply transaction, 200 changes per commit (ledger, row guard, INDICE)
//! and the per-change cost of the wasm transform (products via the generic transform).
//! Run: `cargo bench -p ponte-tests --bench apply` (prints the figures and ratios).

use std::time::Instant;

use ponte::firebird::{apply_batch, Prepared};
use ponte::transform::types::{Change, Direction, Op};
use ponte::transform::{EngineSettings, TableBinding, TransformRegistry};
use ponte_tests::firebird::{connect, create_unit_db, drop_unit_dbs};
use rsfbclient::prelude::*;

const BATCH: usize = 200;

fn change(id: i64, seq: i64) -> Change {
    Change {
        table: "products".into(),
        op: Op::Insert,
        direction: Direction::Downstream,
        unit: 1,
        correlation_id: uuid::Uuid::new_v4().to_string(),
        sequence: seq,
        payload: format!(
            r#"{{"id": {id}, "sku": "SKU-{id}", "description": "Açúcar cristal 5 kg nº {id}", "price": 1234567.89, "stock": {}, "discontinued": false}}"#,
            id % 1000
        ),
        settings: "{}".into(),
    }
}

fn main() -> anyhow::Result<()> {
    ponte_tests::init_logging();
    let n: usize = std::env::var("PONTE_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(6_000);
    let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let db = create_unit_db(&prefix, 1, "WIN1252")?;
    let config = ponte::config::Config::parse(&format!(
        "[postgres]\nurl='postgres://x'\n[amqp]\nurl='amqp://x'\n[firebird]\npassword='{}'\n[units]\nids='1'\ndatabase='{db}'\n[transforms]\ndir='/tmp'\n",
        ponte_tests::fb_password()
    ))?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(ponte::ops::migrate(&config, false, true))?;
    let mut conn = connect(&db)?;

    // raw: the server's batched insert ceiling, same table and row shape.
    let started = Instant::now();
    for chunk in (0..n as i64).collect::<Vec<_>>().chunks(BATCH) {
        conn.begin_transaction()?;
        for &i in chunk {
            conn.execute(
                "INSERT INTO PRODUTOS (ID, SKU, DESCRICAO, PRECO, ESTOQUE, DESCONTINUADO) VALUES (?, ?, ?, ?, ?, ?)",
                (10_000_000 + i, format!("RAW-{i}"), format!("Açúcar cristal 5 kg nº {i}"), "1234567.89".to_string(), i % 1000, 0i64),
            )?;
        }
        conn.commit()?;
    }
    let raw = n as f64 / started.elapsed().as_secs_f64();

    // The real generic transform for products, as a unit applier would call it.
    let settings = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../transforms/generic/examples/products.settings.json"))?;
    let registry = TransformRegistry::load(
        EngineSettings::default(),
        std::path::Path::new(ponte_tests::TRANSFORMS_DIR),
        vec![TableBinding { table: "products".into(), transform: Some("generic".into()), settings_json: settings }],
        &prometheus::Registry::new(),
    )?;
    let pinned = registry.pin("products")?;
    let started = Instant::now();
    let mut prepared = Vec::with_capacity(n);
    for i in 0..n as i64 {
        let c = change(i + 1, i + 1);
        let output = pinned.call(&c)?;
        prepared.push(Prepared { correlation_id: c.correlation_id, sequence: c.sequence, table: c.table, op: c.op, output });
    }
    let transform_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;

    // ponte, batched.
    let started = Instant::now();
    for chunk in prepared.chunks(BATCH) {
        apply_batch(&mut conn, chunk)?;
    }
    let batched = n as f64 / started.elapsed().as_secs_f64();

    // ponte, one change per transaction (a smaller sample: it is slow by nature).
    let sample = (n / 10).max(200);
    let singles: Vec<Prepared> = (0..sample as i64)
        .map(|i| {
            let c = change(5_000_000 + i, 5_000_000 + i);
            let output = pinned.call(&c).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Prepared { correlation_id: c.correlation_id, sequence: c.sequence, table: c.table, op: c.op, output })
        })
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    for p in &singles {
        apply_batch(&mut conn, std::slice::from_ref(p))?;
    }
    let one_tx = sample as f64 / started.elapsed().as_secs_f64();

    println!("unit apply benchmark ({n} changes, {BATCH} per transaction, Firebird on 127.0.0.1, WIN1252 database)");
    println!("  raw batched INSERT (server ceiling)      {raw:>9.0} rows/s");
    println!("  ponte one change per transaction        {one_tx:>9.0} changes/s");
    println!("  ponte batched apply                     {batched:>9.0} changes/s");
    println!("  wasm transform (generic, products)      {transform_us:>9.1} us/change");
    println!("  ratio batched / one-per-transaction     {:>9.1}x   (target >= 25x)", batched / one_tx);
    println!("  ratio batched / raw batched insert      {:>9.0}%   (target >= 85%)", 100.0 * batched / raw);
    let _ = conn.close();
    drop_unit_dbs(&[(1, db)])?;
    Ok(())
}
