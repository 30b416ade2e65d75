//! The transform engine against the REAL guest components that tests/build.rs builds: every
//! hostile component fails only its own call with the right error while the others keep serving;
//! a component with imports and a core module are refused; the cost of one call is printed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ponte::model::{Change, Direction, Op, Value};
use ponte::transform::{CallError, EngineSettings, TableBinding, TransformRegistry};

/// Where tests/build.rs put the freshly built components.
const COMPONENTS: &str = env!("PONTE_TEST_TRANSFORMS_DIR");

/// The path of a built component; fails loudly when the build did not produce it.
fn component(name: &str) -> PathBuf {
    let path = Path::new(COMPONENTS).join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: tests/build.rs must build every transform (deploy/build-transforms.sh)",
        path.display()
    );
    path
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ponte-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bind(table: &str) -> TableBinding {
    TableBinding {
        table: table.into(),
        transform: None,
        settings_json: "{}".into(),
    }
}

fn change(table: &str, payload: &str) -> Change {
    Change {
        table: table.into(),
        op: Op::Insert,
        direction: Direction::Downstream,
        unit: 1,
        correlation_id: "00000000-0000-0000-0000-000000000001".into(),
        sequence: 1,
        payload: payload.into(),
        settings: "{}".into(),
    }
}

/// A registry over a temp dir holding copies of `components`.
fn registry(
    components: &[&str],
    bindings: Vec<TableBinding>,
) -> (TempDir, TransformRegistry, ponte::telemetry::Metrics) {
    let dir = TempDir::new("engine");
    for name in components {
        std::fs::copy(component(name), dir.0.join(format!("{name}.wasm"))).unwrap();
    }
    let metrics = ponte::telemetry::Metrics::new().unwrap();
    let registry = TransformRegistry::load(
        EngineSettings::default(),
        &dir.0,
        bindings,
        &metrics.registry,
    )
    .unwrap();
    (dir, registry, metrics)
}

/// The probe (versioned_a) answers normally: the marker parameter says which version ran.
fn assert_probe_serves(registry: &TransformRegistry) {
    let out = registry
        .pin("probe")
        .unwrap()
        .call(&change("probe", r#"{"id": 7, "val": "x"}"#))
        .unwrap();
    assert_eq!(out.row_key, "7");
    assert_eq!(out.statements[0].params[2], Value::Text("A".into()));
}

/// hostile_huge has its own test: under the default 200 ms deadline it times out before it
/// finishes building its 100,000 statements.
const HOSTILE: &[&str] = &[
    "hostile_loop",
    "hostile_memory",
    "hostile_trap",
    "hostile_ddl",
    "hostile_other_table",
    "hostile_multi",
];

#[test]
fn each_hostile_component_fails_only_its_own_call() {
    let mut files = HOSTILE.to_vec();
    files.push("versioned_a");
    let bindings = HOSTILE
        .iter()
        .map(|t| bind(t))
        .chain([bind("probe")])
        .collect();
    let (_dir, registry, metrics) = registry(&files, bindings);
    let status = registry.status();
    assert_eq!(
        status.loaded.len(),
        files.len(),
        "refused: {:?}",
        status.refused
    );
    assert!(status.unrouted.is_empty(), "{:?}", status.unrouted);
    assert_probe_serves(&registry);

    for table in HOSTILE {
        // Twice: the failed store is discarded, a fresh instance fails the same way.
        for _ in 0..2 {
            let started = Instant::now();
            let err = registry
                .pin(table)
                .unwrap()
                .call(&change(table, r#"{"id": 1}"#))
                .unwrap_err();
            let took = started.elapsed();
            println!("{table}: {err} ({} ms)", took.as_millis());
            assert!(!err.is_retriable() && !err.is_not_ready(), "{table}: {err}");
            match (*table, &err) {
                ("hostile_loop", CallError::Timeout) => {
                    assert!(
                        took >= Duration::from_millis(150) && took < Duration::from_secs(2),
                        "{took:?}"
                    );
                }
                ("hostile_memory", CallError::MemoryLimit) => {}
                ("hostile_trap", CallError::Trap { detail }) => {
                    assert!(
                        detail.contains("unreachable") && !detail.contains('\n'),
                        "{detail}"
                    );
                }
                ("hostile_ddl", CallError::Refused { reason }) => {
                    assert!(reason.contains("DROP is not allowed"), "{reason}");
                }
                ("hostile_other_table", CallError::Refused { reason }) => {
                    assert!(reason.contains("`PRODUTOS`"), "{reason}");
                }
                ("hostile_multi", CallError::Refused { reason }) => {
                    assert!(reason.contains("more than one statement"), "{reason}");
                }
                _ => panic!("{table}: unexpected {err:?}"),
            }
            assert_probe_serves(&registry);
        }
    }
    let text = metrics.render();
    for line in [
        "ponte_transform_calls_total{outcome=\"timeout\",table=\"hostile_loop\"} 2",
        "ponte_transform_calls_total{outcome=\"memory_limit\",table=\"hostile_memory\"} 2",
        "ponte_transform_calls_total{outcome=\"trap\",table=\"hostile_trap\"} 2",
        "ponte_transform_calls_total{outcome=\"refused\",table=\"hostile_ddl\"} 2",
        "ponte_transform_calls_total{outcome=\"ok\",table=\"probe\"} 13",
        "ponte_transform_loads_total{outcome=\"loaded\"} 7",
    ] {
        assert!(text.contains(line), "metrics lack {line}:\n{text}");
    }
    assert!(
        text.contains("ponte_transform_loaded{name=\"versioned_a\""),
        "{text}"
    );
}

#[test]
fn an_output_over_the_caps_is_refused() {
    let dir = TempDir::new("huge");
    std::fs::copy(component("hostile_huge"), dir.0.join("hostile_huge.wasm")).unwrap();
    let metrics = ponte::telemetry::Metrics::new().unwrap();
    // A deadline long enough for the guest to finish: the output caps are what must stop it.
    let settings = EngineSettings {
        call_timeout_ms: 20_000,
        ..EngineSettings::default()
    };
    let registry = TransformRegistry::load(
        settings,
        &dir.0,
        vec![bind("hostile_huge")],
        &metrics.registry,
    )
    .unwrap();
    let started = Instant::now();
    let err = registry
        .pin("hostile_huge")
        .unwrap()
        .call(&change("hostile_huge", "{}"))
        .unwrap_err();
    println!("hostile_huge: {err} ({} ms)", started.elapsed().as_millis());
    match err {
        CallError::OutputTooLarge { detail } => {
            assert!(detail.contains("limit is 1000"), "{detail}")
        }
        other => panic!("expected OutputTooLarge, got {other:?}"),
    }
}

#[test]
fn routing_errors_say_why() {
    let bindings = vec![
        bind("probe"),
        TableBinding {
            table: "clientes".into(),
            transform: Some("versioned_a".into()),
            settings_json: "{}".into(),
        },
        bind("nobody"),
    ];
    let (_dir, registry, _m) = registry(&["versioned_a"], bindings);
    let no = |table: &str| match registry.pin(table) {
        Err(e @ CallError::NoTransform { .. }) => {
            assert!(e.is_not_ready());
            e.to_string()
        }
        other => panic!("{table}: expected NoTransform, got {other:?}"),
    };
    assert!(no("clientes").contains("does not declare table `clientes`"));
    assert!(no("nobody").contains("no loaded transform declares table `nobody`"));
    assert!(no("unbound").contains("not bound in the configuration"));
    let pinned = registry.pin("probe").unwrap();
    let v = pinned.version();
    assert_eq!(
        (v.name.as_str(), v.version.as_str(), v.file.as_str()),
        ("versioned_a", "A", "versioned_a.wasm")
    );
    assert_eq!(v.sha256.len(), 64);
    let status = registry.status();
    assert_eq!(status.loaded[0].serves, vec!["probe".to_string()]);
    assert_eq!(status.unrouted.len(), 2);
    // A missing directory is an error of the whole load; a bad file is not (see below).
    let metrics = ponte::telemetry::Metrics::new().unwrap();
    let missing = Path::new("/nonexistent/ponte-transforms");
    assert!(TransformRegistry::load(
        EngineSettings::default(),
        missing,
        vec![],
        &metrics.registry
    )
    .is_err());
}

/// A component that imports one function (`host-fn: func()`), encoded by hand: the smallest
/// stand-in for a WASI build.
const IMPORTING_COMPONENT: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, // component header
    0x07, 0x05, 0x01, 0x40, 0x00, 0x01, 0x00, // type section: func()
    0x0a, 0x0c, 0x01, 0x00, 0x07, b'h', b'o', b's', b't', b'-', b'f', b'n', 0x01,
    0x00, // import
];

#[test]
fn bad_files_are_refused_and_the_rest_loads() {
    let dir = TempDir::new("refuse");
    std::fs::copy(component("versioned_a"), dir.0.join("probe.wasm")).unwrap();
    std::fs::write(dir.0.join("imports.wasm"), IMPORTING_COMPONENT).unwrap();
    std::fs::write(dir.0.join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.0.join("empty.wasm"), b"").unwrap();
    let half = std::fs::read(component("versioned_b")).unwrap();
    std::fs::write(dir.0.join("half.wasm"), &half[..half.len() / 2]).unwrap();
    std::fs::write(dir.0.join("notes.txt"), b"ignored").unwrap();
    let metrics = ponte::telemetry::Metrics::new().unwrap();
    let registry = TransformRegistry::load(
        EngineSettings::default(),
        &dir.0,
        vec![bind("probe")],
        &metrics.registry,
    )
    .unwrap();
    let status = registry.status();
    let reason = |file: &str| {
        status
            .refused
            .iter()
            .find(|r| r.file == file)
            .map(|r| r.reason.clone())
            .unwrap_or_default()
    };
    assert!(
        reason("imports.wasm").contains("imports host-fn"),
        "{:?}",
        status.refused
    );
    for file in ["core.wasm", "empty.wasm", "half.wasm"] {
        assert!(
            reason(file).contains("not a valid wasm component"),
            "{file}: {:?}",
            status.refused
        );
    }
    assert_eq!(status.refused.len(), 4);
    assert_eq!(status.loaded.len(), 1);
    assert_probe_serves(&registry);
    assert!(metrics
        .render()
        .contains("ponte_transform_loads_total{outcome=\"refused\"} 4"));
}

#[test]
fn call_cost_per_change() {
    let (_dir, registry, _m) = registry(&["versioned_a"], vec![bind("probe")]);
    let pinned = registry.pin("probe").unwrap();
    let c = change("probe", r#"{"id": 42, "val": "São Paulo — ação"}"#);
    for _ in 0..100 {
        pinned.call(&c).unwrap();
    }
    let n = 5_000;
    let started = Instant::now();
    for _ in 0..n {
        pinned.call(&c).unwrap();
    }
    let per_call = started.elapsed() / n;
    println!(
        "transform call cost (pooled instance, validation included): {} us",
        per_call.as_micros()
    );
    assert!(per_call < Duration::from_millis(2), "{per_call:?} per call");

    // Concurrent callers share the pool; every call succeeds.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let pinned = pinned.clone();
            let c = c.clone();
            std::thread::spawn(move || (0..500).all(|_| pinned.call(&c).is_ok()))
        })
        .collect();
    assert!(threads.into_iter().all(|t| t.join().unwrap()));
}
