//! The one wasmtime `Engine` of the process and its epoch ticker; compiling a `.wasm` file and
//! checking it (no imports, the right exports, `describe`, `self-check`) before it may serve.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder,
};

use super::bindings::{info_from_wit, TransformPre};
use super::error::LoadError;
use super::instance::{Loaded, Slot};
use super::settings::EngineSettings;
use super::sql::AllowedWrites;
use super::types::Info;

/// Longest `info.name` / `info.version` accepted (they become log fields and metric labels).
const MAX_NAME_LEN: usize = 64;

/// Per-store state: the limits, and whether a growth was denied during the current call (so a
/// trap that follows is reported as [`super::CallError::MemoryLimit`], not as a bug).
pub(crate) struct StoreState {
    limits: StoreLimits,
    pub(crate) hit_limit: bool,
}

impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.hit_limit |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.table_growing(current, desired, maximum)?;
        self.hit_limit |= !allowed;
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// Advances the engine's epoch every tick on its own thread until dropped.
struct EpochTicker {
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            // Ends within one tick; a panic in it is impossible (sleep + atomic increment).
            let _ = thread.join();
        }
    }
}

/// Compiled components kept by sha256, so flipping back to a recent version (a rollback) skips
/// the compile (~0.5 s for a 1 MB component); describe and self-check still run again.
const COMPILED_CACHE: usize = 8;

/// The wasmtime engine shared by every loaded transform, with its settings.
pub(crate) struct SandboxEngine {
    pub(crate) engine: Engine,
    pub(crate) settings: EngineSettings,
    compiled: Mutex<VecDeque<(String, Component)>>,
    _ticker: EpochTicker,
}

impl SandboxEngine {
    /// Creates the engine (component model, epoch interruption, no async) and starts its ticker.
    pub(crate) fn new(settings: EngineSettings) -> Result<Arc<SandboxEngine>, LoadError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        if let Some(dir) = &settings.compile_cache_dir {
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            let cache = Cache::new(cache).map_err(|e| {
                LoadError::Engine(format!("compile cache in {}: {e:#}", dir.display()))
            })?;
            config.cache(Some(cache));
        }
        let engine = Engine::new(&config).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let stop = CancellationToken::new();
        let thread = {
            let (engine, stop, tick) = (engine.clone(), stop.clone(), settings.epoch_tick());
            std::thread::Builder::new()
                .name("ponte-epoch".into())
                .spawn(move || {
                    while !stop.is_cancelled() {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(LoadError::Ticker)?
        };
        let ticker = EpochTicker {
            stop,
            thread: Some(thread),
        };
        let compiled = Mutex::new(VecDeque::new());
        Ok(Arc::new(SandboxEngine {
            engine,
            settings,
            compiled,
            _ticker: ticker,
        }))
    }

    /// A fresh store with the memory, table and instance limits, and no deadline set yet.
    pub(crate) fn new_store(&self) -> Store<StoreState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.settings.memory_limit_bytes)
            .table_elements(self.settings.table_elements_limit)
            .instances(64)
            .tables(64)
            .memories(16)
            .build();
        let mut store = Store::new(
            &self.engine,
            StoreState {
                limits,
                hit_limit: false,
            },
        );
        store.limiter(|state| state);
        store.epoch_deadline_trap();
        store
    }

    /// Compiles and checks one file. `Err` is the reason it is refused, for the log and status.
    pub(crate) fn load(self: &Arc<Self>, file: &str, bytes: &[u8]) -> Result<Arc<Loaded>, String> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let component = self.compile(&sha256, bytes)?;
        let imports = capability_imports(&component, &self.engine);
        if !imports.is_empty() {
            return Err(format!(
                "the component imports {}; a transform must import nothing (build it without \
                 WASI, e.g. for wasm32-unknown-unknown)",
                imports.join(", ")
            ));
        }
        let linker = Linker::<StoreState>::new(&self.engine);
        let pre = linker
            .instantiate_pre(&component)
            .and_then(TransformPre::new)
            .map_err(|e| {
                format!(
                    "not a ponte:transform@1.0.0 component: {}",
                    short(&format!("{e:#}"))
                )
            })?;
        let mut slot = Slot::instantiate(self, &pre).map_err(|e| format!("instantiation: {e}"))?;
        slot.arm(self.settings.load_deadline_ticks());
        let info = slot
            .bindings
            .call_describe(&mut slot.store)
            .map_err(|e| format!("describe() failed: {}", short(&format!("{e:#}"))))?;
        let info = check_info(info_from_wit(info))?;
        slot.arm(self.settings.load_deadline_ticks());
        match slot.bindings.call_self_check(&mut slot.store) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(format!("self-check failed: {}", short(&reason))),
            Err(e) => return Err(format!("self-check trapped: {}", short(&format!("{e:#}")))),
        }
        Ok(Loaded::new(
            self.clone(),
            file.to_string(),
            sha256,
            info,
            pre,
            slot,
        ))
    }
}

impl SandboxEngine {
    /// Compiles `bytes`, or reuses the compiled component of the same sha256.
    fn compile(&self, sha256: &str, bytes: &[u8]) -> Result<Component, String> {
        let cache = || self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, component)) = cache().iter().find(|(sha, _)| sha == sha256) {
            return Ok(component.clone());
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| format!("not a valid wasm component: {}", short(&format!("{e:#}"))))?;
        let mut cache = cache();
        if cache.len() >= COMPILED_CACHE {
            cache.pop_front();
        }
        cache.push_back((sha256.to_string(), component.clone()));
        Ok(component)
    }
}

/// Imports that would need a definition from the host. An imported interface that only names
/// types (`ponte:transform/types`, which every guest of this world imports) needs none: an empty
/// linker satisfies it, so it grants nothing.
fn capability_imports(component: &Component, engine: &Engine) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .filter(|(_, item)| match &item.ty {
            ComponentItem::Type(_) => false,
            ComponentItem::ComponentInstance(instance) => !instance
                .exports(engine)
                .all(|(_, export)| matches!(export.ty, ComponentItem::Type(_))),
            _ => true,
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Refuses an `info` the registry could not route or label safely.
fn check_info(info: Info) -> Result<Info, String> {
    let label_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= MAX_NAME_LEN
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.+".contains(c))
    };
    if !label_ok(&info.name) {
        return Err(format!(
            "describe(): name {:?} must be 1-{MAX_NAME_LEN} characters of [A-Za-z0-9_.+-]",
            info.name
        ));
    }
    if !label_ok(&info.version) {
        return Err(format!(
            "describe(): version {:?} is not a plain version string",
            info.version
        ));
    }
    if info.tables.is_empty() || info.tables.iter().any(|t| t.trim().is_empty()) {
        return Err("describe(): `tables` is empty or has an empty name".into());
    }
    if info.writes.is_empty() {
        return Err("describe(): `writes` is empty".into());
    }
    let wildcard = info.writes.iter().any(|w| w == "*");
    if wildcard && info.writes.len() > 1 {
        return Err("describe(): `writes` mixes \"*\" with table names".into());
    }
    if !wildcard {
        AllowedWrites::new(&info.writes).map_err(|e| format!("describe(): writes: {e}"))?;
    }
    Ok(info)
}

/// Keeps error texts one screen long (a wasm backtrace can be huge).
pub(crate) fn short(s: &str) -> String {
    const MAX: usize = 1_000;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut cut = MAX;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &s[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, tables: &[&str], writes: &[&str]) -> Info {
        Info {
            name: name.into(),
            version: "1.0.0".into(),
            tables: tables.iter().map(|s| s.to_string()).collect(),
            writes: writes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn info_is_checked() {
        assert!(check_info(info("customers", &["customers"], &["CUSTOMERS"])).is_ok());
        assert!(check_info(info("generic", &["*"], &["*"])).is_ok());
        assert!(check_info(info("", &["t"], &["T"])).is_err());
        assert!(check_info(info("a b", &["t"], &["T"])).is_err());
        assert!(check_info(info("x", &[], &["T"])).is_err());
        assert!(check_info(info("x", &["t"], &[])).is_err());
        assert!(check_info(info("x", &["t"], &["*", "T"])).is_err());
        assert!(check_info(info("x", &["t"], &["T; DROP"])).is_err());
    }

    #[test]
    fn short_cuts_on_a_char_boundary() {
        let long = "é".repeat(800);
        assert!(short(&long).len() <= 1_003);
        assert_eq!(short("abc"), "abc");
    }

    #[test]
    fn garbage_is_refused_and_the_ticker_stops() {
        let engine = SandboxEngine::new(EngineSettings::default()).unwrap();
        let err = engine.load("x.wasm", b"\0asm garbage").err().unwrap();
        assert!(err.contains("not a valid wasm component"), "{err}");
        let err = engine.load("x.wasm", b"").err().unwrap();
        assert!(err.contains("not a valid wasm component"), "{err}");
        drop(engine);
    }

    #[test]
    fn a_compile_cache_dir_is_accepted() {
        let dir = std::env::temp_dir().join(format!("ponte-wcache-{}", std::process::id()));
        let settings = EngineSettings {
            compile_cache_dir: Some(dir.clone()),
            ..Default::default()
        };
        assert!(SandboxEngine::new(settings).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
