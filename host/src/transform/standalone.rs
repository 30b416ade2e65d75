//! One transform file loaded outside the registry, through the daemon's own load path (compile,
//! imports, describe, self-check) and call path (routing checks, sandboxed call, statement
//! validation): what the authoring commands (`ponte transform test|check`) and offline tools
//! run, so a file that passes them passes the daemon.

use std::path::Path;
use std::sync::Arc;

use super::engine::SandboxEngine;
use super::instance::Loaded;
use super::metrics::Metrics;
use super::route::{pin, resolve, Binding, TableBinding};
use super::settings::EngineSettings;
use super::types::Info;
use crate::model::{Change, Output};

/// A compiled, self-checked component.
pub struct Standalone {
    loaded: Arc<Loaded>,
}

impl Standalone {
    /// Reads, compiles and self-checks `file` with the default sandbox limits; the error says
    /// why the daemon would refuse it.
    pub fn load(file: &Path) -> Result<Standalone, String> {
        let bytes =
            std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let engine = SandboxEngine::new(EngineSettings::default()).map_err(|e| e.to_string())?;
        let loaded = engine
            .load(&name, &bytes)
            .map_err(|reason| format!("{name} refused: {reason}"))?;
        Ok(Standalone { loaded })
    }

    /// What the component says about itself.
    pub fn info(&self) -> &Info {
        &self.loaded.info
    }

    /// `name version (file, sha256 ...)`.
    pub fn describe(&self) -> String {
        let l = &self.loaded;
        format!(
            "{} {} ({}, sha256 {})",
            l.info.name,
            l.info.version,
            l.file,
            l.short_sha()
        )
    }

    /// One call bound by name (as `transform = "..."` in the config) with `settings_json`,
    /// through the production routing checks and statement validation.
    pub fn call(&self, change: &Change, settings_json: String) -> Result<Output, String> {
        let binding = Binding::new(TableBinding {
            table: change.table.clone(),
            transform: Some(self.loaded.info.name.clone()),
            settings_json,
        })
        .map_err(|e| format!("settings: {e}"))?;
        let (resolved, _) = resolve(&binding, std::slice::from_ref(&self.loaded), None)?;
        let metrics = Metrics::register(&prometheus::Registry::new()).map_err(|e| e.to_string())?;
        let pinned = pin(&binding, resolved, &metrics)?;
        pinned.call(change).map_err(|e| e.to_string())
    }
}
