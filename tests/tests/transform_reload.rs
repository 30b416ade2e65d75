//! Hot reload of the REAL components (tests/build.rs): replacing a file with rename flips the
//! version `pin()` returns within about a second, a message in flight finishes on its version,
//! a corrupted or half-written file is refused while the old version keeps serving, and removing
//! the file unroutes the table ("not ready", not a dead letter).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ponte::model::{Change, Direction, Op, Value};
use ponte::transform::{CallError, EngineSettings, Pinned, TableBinding, TransformRegistry};
use tokio_util::sync::CancellationToken;

const COMPONENTS: &str = env!("PONTE_TEST_TRANSFORMS_DIR");

/// The bytes of a built component; fails loudly when the build did not produce it.
fn component(name: &str) -> Vec<u8> {
    let path = Path::new(COMPONENTS).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): tests/build.rs must build every transform",
            path.display()
        )
    })
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ponte-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `bytes` next to `target` and renames it into place, as deploy tools do.
fn replace(target: &Path, bytes: &[u8]) {
    let tmp = target.with_extension("wasm.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, target).unwrap();
}

fn probe() -> Change {
    Change {
        table: "probe".into(),
        op: Op::Update,
        direction: Direction::Downstream,
        unit: 1,
        correlation_id: "00000000-0000-0000-0000-000000000002".into(),
        sequence: 2,
        payload: r#"{"id": 1, "val": "v"}"#.into(),
        settings: "{}".into(),
    }
}

/// The marker the pinned version writes (versioned_a: "A", versioned_b: "B").
fn marker(pinned: &Pinned) -> String {
    match &pinned.call(&probe()).unwrap().statements[0].params[2] {
        Value::Text(m) => m.clone(),
        other => panic!("unexpected marker {other:?}"),
    }
}

/// Polls `pin("probe")` until `want` (a version string, or None for unrouted); returns the wait.
async fn wait_for(registry: &TransformRegistry, want: Option<&str>, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = registry
            .pin("probe")
            .ok()
            .map(|p| p.version().version.clone());
        if now.as_deref() == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "still {now:?} after {limit:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long a swap may take: ~1 s is the goal (200 ms debounce + a cached or small compile);
/// compiling a 1 MB component for the first time takes ~0.5-1 s more on a busy 2-core box.
fn limit(first_compile: bool) -> Duration {
    Duration::from_millis(if first_compile { 5_000 } else { 1_500 })
}

fn load(dir: &Path) -> TransformRegistry {
    let metrics = ponte::telemetry::Metrics::new().unwrap();
    let binding = TableBinding {
        table: "probe".into(),
        transform: Some("versioned".into()),
        settings_json: "{}".into(),
    };
    TransformRegistry::load(
        EngineSettings::default(),
        dir,
        vec![binding],
        &metrics.registry,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_file_flips_the_version_and_in_flight_calls_finish_on_theirs() {
    let (a, b) = (component("versioned_a"), component("versioned_b"));
    let dir = temp_dir("reload");
    let file = dir.join("versioned.wasm");
    replace(&file, &a);
    let registry = load(&dir);
    let shutdown = CancellationToken::new();
    let watcher = registry.watch(shutdown.clone());
    assert_eq!(registry.pin("probe").unwrap().version().version, "A");

    let mut waits = Vec::new();
    for round in 0..4 {
        let (bytes, want) = if round % 2 == 0 { (&b, "B") } else { (&a, "A") };
        let in_flight = registry.pin("probe").unwrap();
        let before = marker(&in_flight);
        replace(&file, bytes);
        waits.push(wait_for(&registry, Some(want), limit(round == 0)).await);
        // The message that pinned before the swap still runs the version it started with.
        assert_eq!(marker(&in_flight), before);
        assert_eq!(marker(&registry.pin("probe").unwrap()), want);
    }
    println!("hot reload took {waits:?} (debounce 200 ms; the first one compiles B)");

    // Removal: the table becomes unrouted, and the error says "wait", not "dead-letter".
    std::fs::remove_file(&file).unwrap();
    wait_for(&registry, None, limit(false)).await;
    let err = registry.pin("probe").unwrap_err();
    assert!(
        matches!(err, CallError::NoTransform { .. }) && err.is_not_ready(),
        "{err}"
    );
    // And dropping it back in serves again.
    replace(&file, &a);
    wait_for(&registry, Some("A"), limit(false)).await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), watcher)
        .await
        .unwrap()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_file_is_refused_and_the_old_version_keeps_serving() {
    let (a, b) = (component("versioned_a"), component("versioned_b"));
    let dir = temp_dir("corrupt");
    let file = dir.join("versioned.wasm");
    replace(&file, &a);
    let registry = load(&dir);
    let shutdown = CancellationToken::new();
    let watcher = registry.watch(shutdown.clone());

    // Written in place, half of it: compile fails, A keeps serving.
    std::fs::write(&file, &b[..b.len() / 2]).unwrap();
    let started = Instant::now();
    while registry.status().refused.is_empty() {
        assert!(
            started.elapsed() < Duration::from_millis(1_500),
            "the half file was not seen"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = registry.status();
    assert!(
        status.refused[0]
            .reason
            .contains("not a valid wasm component"),
        "{status:?}"
    );
    assert_eq!(status.loaded.len(), 1);
    assert_eq!(status.loaded[0].version, "A");
    assert_eq!(marker(&registry.pin("probe").unwrap()), "A");

    // The complete write is retried and served.
    std::fs::write(&file, &b).unwrap();
    wait_for(&registry, Some("B"), limit(true)).await;
    assert!(registry.status().refused.is_empty());

    // Garbage after that: B stays.
    std::fs::write(&file, b"not wasm at all").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(registry.pin("probe").unwrap().version().version, "B");
    assert_eq!(registry.status().refused.len(), 1);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), watcher)
        .await
        .unwrap()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two builds of the generic transform in the directory (both declare `"*"` and both call
/// themselves `generic`): each table serves from exactly the file its `transform = NAME` names,
/// with no ambiguity, and a name that only matches `info.name` twice is refused with a reason.
#[test]
fn a_binding_names_its_file_exactly_when_several_files_declare_star() {
    let generic = component("generic");
    let dir = temp_dir("star");
    std::fs::write(dir.join("generic.wasm"), &generic).unwrap();
    std::fs::write(dir.join("generic_v2.wasm"), &generic).unwrap();
    let settings = r#"{"target": "PROBE", "key": ["ID"], "columns": {"id": {"column": "ID", "type": "bigint"}}}"#;
    let bind = |table: &str, transform: &str| TableBinding {
        table: table.into(),
        transform: Some(transform.into()),
        settings_json: settings.into(),
    };
    let metrics = ponte::telemetry::Metrics::new().unwrap();
    let registry = TransformRegistry::load(
        EngineSettings::default(),
        &dir,
        vec![bind("products", "generic"), bind("probe", "generic_v2")],
        &metrics.registry,
    )
    .unwrap();
    let status = registry.status();
    assert!(status.unrouted.is_empty(), "{:?}", status.unrouted);
    assert!(
        status.notes.is_empty(),
        "ambiguity reported: {:?}",
        status.notes
    );
    assert_eq!(
        registry.pin("products").unwrap().version().file,
        "generic.wasm"
    );
    assert_eq!(
        registry.pin("probe").unwrap().version().file,
        "generic_v2.wasm"
    );

    // Only `info.name` matches, and twice: refused with a reason that names both files.
    std::fs::rename(dir.join("generic.wasm"), dir.join("generic_v1.wasm")).unwrap();
    registry.reload();
    let err = registry
        .pin("products")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        registry
            .status()
            .notes
            .iter()
            .any(|n| n.contains("generic_v1.wasm"))
            || err.contains("generic_v1.wasm"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
