//! [`TransformRegistry`]: the loaded transform files, the routing of bound tables to them, and the
//! atomic swap when the directory changes (build, validate, swap; keep the old on failure).

mod reload;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use status::{LoadedStatus, RefusedStatus, RegistryStatus, UnroutedStatus};

use super::engine::SandboxEngine;
use super::error::{CallError, LoadError};
use super::instance::Loaded;
use super::metrics::Metrics;
use super::route::{pin, resolve, runs, Binding, Pinned, TableBinding};
use super::settings::EngineSettings;

/// Loads, routes and hot-reloads the transforms of one directory. Owned by the caller (no global
/// state); clones share everything.
#[derive(Clone)]
pub struct TransformRegistry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TransformRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes = self.routes();
        f.debug_struct("TransformRegistry")
            .field("dir", &self.inner.dir)
            .field("loaded", &routes.loaded.len())
            .field("routed", &routes.by_table.len())
            .field("unrouted", &routes.unrouted.len())
            .finish()
    }
}

struct Inner {
    engine: Arc<SandboxEngine>,
    dir: PathBuf,
    bindings: Vec<Binding>,
    metrics: Metrics,
    /// Read on every `pin`; replaced whole by a reload.
    routes: RwLock<Arc<Routes>>,
    /// Reload-only state; the lock also serialises reloads.
    files: Mutex<Files>,
    /// Bumped after every rescan; consumers holding deliveries for a transform watch it.
    generation: tokio::sync::watch::Sender<u64>,
}

/// What readers see, swapped whole by a reload: routing, and the file lists for `status()` (so
/// status never waits for a reload that is compiling).
#[derive(Default)]
struct Routes {
    by_table: HashMap<String, Pinned>,
    unrouted: BTreeMap<String, String>,
    /// Tables that several files could serve (the current one kept serving).
    ambiguous: BTreeMap<String, String>,
    loaded: Vec<Arc<Loaded>>,
    refused: Vec<RefusedStatus>,
}

#[derive(Default)]
struct Files {
    loaded: BTreeMap<String, Arc<Loaded>>,
    refused: BTreeMap<String, RefusedStatus>,
}

impl TransformRegistry {
    /// Starts the engine and loads every `*.wasm` file of `dir`. A bad file is refused (logged,
    /// counted, listed in [`TransformRegistry::status`]) and does not fail the load; a missing
    /// directory, a table bound twice or settings that are not a JSON object do.
    pub fn load(
        settings: EngineSettings,
        dir: &Path,
        bindings: Vec<TableBinding>,
        metrics: &prometheus::Registry,
    ) -> Result<TransformRegistry, LoadError> {
        settings.validate().map_err(LoadError::Settings)?;
        std::fs::read_dir(dir).map_err(|source| LoadError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let mut checked: Vec<Binding> = Vec::with_capacity(bindings.len());
        for b in bindings {
            if checked.iter().any(|c| c.table == b.table) {
                return Err(LoadError::DuplicateBinding { table: b.table });
            }
            let table = b.table.clone();
            checked
                .push(Binding::new(b).map_err(|reason| LoadError::BadSettings { table, reason })?);
        }
        let metrics = Metrics::register(metrics)?;
        let engine = SandboxEngine::new(settings)?;
        let registry = TransformRegistry {
            inner: Arc::new(Inner {
                engine,
                dir: dir.to_path_buf(),
                bindings: checked,
                metrics,
                routes: RwLock::new(Arc::default()),
                files: Mutex::new(Files::default()),
                generation: tokio::sync::watch::channel(0).0,
            }),
        };
        registry.reload();
        Ok(registry)
    }

    /// The version serving `table` now. The message keeps this handle to the end, so it finishes
    /// on this version even if a reload swaps the table meanwhile.
    pub fn pin(&self, table: &str) -> Result<Pinned, CallError> {
        let routes = self.routes();
        if let Some(pinned) = routes.by_table.get(table) {
            return Ok(pinned.clone());
        }
        let reason = match routes.unrouted.get(table) {
            Some(reason) => reason.clone(),
            None => "the table is not bound in the configuration".into(),
        };
        Err(CallError::NoTransform {
            table: table.to_string(),
            reason,
        })
    }

    /// How many rescans have swapped the routes in; changes when a table may route differently.
    pub fn generation(&self) -> u64 {
        *self.inner.generation.borrow()
    }

    /// A receiver that sees every change of [`TransformRegistry::generation`].
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    /// The transforms directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The engine settings in force.
    pub fn settings(&self) -> &EngineSettings {
        &self.inner.engine.settings
    }

    /// Loaded versions, refused files and unrouted tables.
    pub fn status(&self) -> RegistryStatus {
        let routes = self.routes();
        let loaded = routes
            .loaded
            .iter()
            .map(|l| LoadedStatus {
                file: l.file.clone(),
                sha256: l.sha256.clone(),
                name: l.info.name.clone(),
                version: l.info.version.clone(),
                tables: l.info.tables.clone(),
                writes: l.info.writes.clone(),
                loaded_at: l.loaded_at,
                serves: bound_tables(&routes, l),
            })
            .collect();
        RegistryStatus {
            dir: self.inner.dir.clone(),
            loaded,
            refused: routes.refused.clone(),
            unrouted: routes
                .unrouted
                .iter()
                .map(|(table, reason)| UnroutedStatus {
                    table: table.clone(),
                    reason: reason.clone(),
                })
                .collect(),
            notes: routes
                .ambiguous
                .iter()
                .map(|(table, note)| format!("{table}: {note}"))
                .collect(),
        }
    }

    /// Watches the directory and reloads on changes (debounced), until `shutdown`.
    pub fn watch(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        super::watch::spawn(self.clone(), shutdown)
    }

    fn routes(&self) -> Arc<Routes> {
        // A poisoned lock still holds a whole Arc (the writer only swaps it).
        self.inner
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn files(&self) -> MutexGuard<'_, Files> {
        self.inner.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Routes every binding over `loaded`, preferring what `current` routes on ties.
    fn route_all(&self, loaded: &BTreeMap<String, Arc<Loaded>>, current: &Routes) -> Routes {
        let all: Vec<Arc<Loaded>> = loaded.values().cloned().collect();
        let mut next = Routes::default();
        for binding in &self.inner.bindings {
            let now = current.by_table.get(&binding.table);
            let now_loaded = now.and_then(|p| all.iter().find(|l| runs(p, l)));
            let routed = resolve(binding, &all, now_loaded).and_then(|(chosen, note)| {
                if let Some(note) = note {
                    next.ambiguous.insert(binding.table.clone(), note);
                }
                match now {
                    Some(p) if runs(p, &chosen) => Ok(p.clone()),
                    _ => pin(binding, chosen, &self.inner.metrics),
                }
            });
            match routed {
                Ok(p) => {
                    next.by_table.insert(binding.table.clone(), p);
                }
                Err(reason) => {
                    next.unrouted.insert(binding.table.clone(), reason);
                }
            }
        }
        next
    }
}

/// The bound tables `loaded` serves in `routes`, sorted.
fn bound_tables(routes: &Routes, loaded: &Arc<Loaded>) -> Vec<String> {
    let mut tables: Vec<String> = routes
        .by_table
        .iter()
        .filter(|(_, p)| runs(p, loaded))
        .map(|(t, _)| t.clone())
        .collect();
    tables.sort();
    tables
}
