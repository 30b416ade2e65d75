//! The per-change cost of the `customers` transform as a sandboxed wasm component (pooled
//! instance, host-side statement validation included: what a unit applier pays) next to the
//! very same Rust mapping compiled natively and called directly, on the same changes, in one run.
//!   usage: ponte-transform-bench <transforms dir with customers.wasm> [changes]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use ponte::model::{Change, Direction, Op};
use ponte::transform::{EngineSettings, TableBinding, TransformRegistry};
use ponte_transform_sdk::Transform;

const SETTINGS: &str = r#"{"timezone": "America/Sao_Paulo"}"#;

/// A realistic customers row image; `i` varies the id, name and timestamp.
fn payload(i: u64) -> String {
    format!(
        r#"{{"id": {id}, "name": "José da Conceição {i}", "email": "jose{i}@example.com.br", "city": "São Paulo",
            "active": {active}, "credit_limit": 1234567.{cents:02}, "birth_date": "1980-02-29",
            "external_ref": "0e2b7c1a-58a4-4c4e-9f1b-1d2e3f405060",
            "attributes": {{"segmento": "varejo", "tags": ["vip", "ação"], "score": 0.1}},
            "updated_at": "2026-11-23T10:15:{sec:02}.123456+00:00"}}"#,
        id = 1000 + i,
        active = i % 2 == 0,
        cents = i % 100,
        sec = i % 60
    )
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "var/transforms".into()));
    let n: u64 = args.next().map(|a| a.parse()).transpose().context("changes must be a number")?.unwrap_or(20_000);
    if !dir.join("customers.wasm").is_file() {
        bail!("{} has no customers.wasm: build it with deploy/build-transforms.sh {}", dir.display(), dir.display());
    }
    let payloads: Vec<String> = (0..n).map(payload).collect();

    let registry = TransformRegistry::load(
        EngineSettings::default(),
        &dir,
        vec![TableBinding { table: "customers".into(), transform: Some("customers".into()), settings_json: SETTINGS.into() }],
        &prometheus::Registry::new(),
    )?;
    let pinned = registry.pin("customers").map_err(|e| anyhow!("{e}"))?;
    let host_change = |i: usize| Change {
        table: "customers".into(),
        op: if i % 5 == 4 { Op::Update } else { Op::Insert },
        direction: Direction::Downstream,
        unit: 1,
        correlation_id: format!("bench-{i}"),
        sequence: i as i64 + 1,
        payload: payloads[i].clone(),
        settings: SETTINGS.into(),
    };
    let guest_change = |i: usize| ponte_transform_sdk::Change {
        table: "customers".into(),
        op: if i % 5 == 4 { ponte_transform_sdk::Op::Update } else { ponte_transform_sdk::Op::Insert },
        direction: ponte_transform_sdk::Direction::Downstream,
        unit: 1,
        correlation_id: format!("bench-{i}"),
        sequence: i as i64 + 1,
        payload: payloads[i].clone(),
        settings: SETTINGS.into(),
    };

    // Same outputs first: the two sides really run the same mapping.
    for i in 0..20 {
        let wasm = pinned.call(&host_change(i)).map_err(|e| anyhow!("wasm: {e}"))?;
        let native = customers::Customers::transform(guest_change(i)).map_err(|e| anyhow!("native: {e:?}"))?;
        let same = wasm.row_key == native.row_key
            && wasm.statements.len() == native.statements.len()
            && wasm.statements.iter().zip(&native.statements).all(|(w, n)| w.sql == n.sql && format!("{:?}", w.params) == format!("{:?}", n.params));
        if !same {
            bail!("change {i}: wasm and native outputs differ:\n{wasm:?}\n{native:?}");
        }
    }

    // Changes are built outside the timed loops; both sides get an owned change per call.
    let host: Vec<Change> = (0..n as usize).map(host_change).collect();
    let guest: Vec<ponte_transform_sdk::Change> = (0..n as usize).map(guest_change).collect();
    let started = Instant::now();
    let mut statements = 0;
    for change in guest {
        statements += customers::Customers::transform(change).map_err(|e| anyhow!("native: {e:?}"))?.statements.len();
    }
    let native_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let started = Instant::now();
    for change in &host {
        statements += pinned.call(change).map_err(|e| anyhow!("wasm: {e}"))?.statements.len();
    }
    let wasm_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;

    println!("transform benchmark: customers (10-column upsert, zoned timestamp, JSON blob), {n} changes per side, {statements} statements");
    println!("  native Rust, same crate called directly   {native_us:>8.2} us/change");
    println!("  wasm component (pooled, validated)        {wasm_us:>8.2} us/change");
    println!("  ratio wasm / native                       {:>8.1}x", wasm_us / native_us);
    println!("  wasm overhead per change                  {:>8.2} us", wasm_us - native_us);
    Ok(())
}
