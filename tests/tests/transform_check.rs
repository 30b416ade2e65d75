//! `ponte transform check` against a real unit database: the shipped transforms fit the demo
//! schema; a binding that names a missing column, and fixtures with a text longer than its
//! column and a decimal finer than its scale, are reported one by one with a failing exit.

use std::path::Path;
use std::process::Command;

use ponte_tests::{TestEnv, UnitSpec, TRANSFORMS_DIR};

const BIN: &str = env!("CARGO_BIN_EXE_ponte-under-test");
const TRANSFORMS_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../transforms");

fn check(config: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["transform", "check"])
        .args(args)
        .output()
        .expect("run ponte transform check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_what_does_not_fit_the_unit_schema() {
    let env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment");
    let config = env.write_config().unwrap();
    let wasm = |stem: &str| format!("{TRANSFORMS_DIR}/{stem}.wasm");

    for (stem, fixtures) in [
        ("customers", "customers/fixtures"),
        ("orders", "orders/fixtures"),
    ] {
        let (ok, text) = check(
            &config,
            &[
                &wasm(stem),
                &format!("{TRANSFORMS_SRC}/{fixtures}"),
                "--unit",
                "1",
            ],
        );
        assert!(ok, "{stem}:\n{text}");
        assert!(
            text.contains("3 statement(s) from 3 fixture(s) checked against unit 1: ok"),
            "{text}"
        );
        assert!(text.contains("compiles on the unit's server"), "{text}");
    }

    let dir = tempdir(&env.name);
    let settings = std::fs::read_to_string(format!(
        "{TRANSFORMS_SRC}/generic/examples/products.settings.json"
    ))
    .unwrap()
    .replace("\"column\": \"ESTOQUE\"", "\"column\": \"ESTOQUE_ATUAL\"")
    .replace("\"max_len\": 120", "\"max_len\": 500")
    .replace("\"scale\": 2", "\"scale\": 4");
    std::fs::write(dir.join("bad.settings.json"), settings).unwrap();
    let fixture = std::fs::read_to_string(format!(
        "{TRANSFORMS_SRC}/generic/fixtures/products_insert.json"
    ))
    .unwrap()
    .replace(
        "\"Café torrado e moído, São Paulo — 500 g\"",
        &format!("\"{}\"", "ç".repeat(150)),
    )
    .replace("999999999999999.99", "12.3456");
    std::fs::write(dir.join("long.json"), fixture).unwrap();
    let (ok, text) = check(
        &config,
        &[
            &wasm("generic"),
            dir.join("long.json").to_str().unwrap(),
            "--unit",
            "1",
            "--settings",
            dir.join("bad.settings.json").to_str().unwrap(),
        ],
    );
    println!("{text}");
    assert!(!ok, "{text}");
    for expected in [
        "Column unknown ESTOQUE_ATUAL",
        "column ESTOQUE_ATUAL does not exist in PRODUTOS",
        "150 characters into DESCRICAO VARCHAR(120)",
        "`12.3456` has 4 decimals; PRECO NUMERIC(18, 2) would round it",
        "4 problem(s)",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }

    let (ok, text) = check(&config, &[&wasm("customers"), "--unit", "7"]);
    assert!(!ok && text.contains("unit 7 is not configured"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
    env.cleanup().await;
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-check"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
