//! Which unit tables and columns ponte writes, from the configuration: each `[tables]` entry's
//! Firebird target (the generic transform's `settings.target`, else what its transform declares
//! it writes), the columns its settings map, its generator and its trigger policy.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{Config, TableConfig, UnitTriggers};
use crate::firebird::Generators;
use crate::transform::Standalone;

/// One unit table ponte writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicated {
    /// The `[tables]` entry.
    pub name: String,
    /// The Firebird table (upper case).
    pub unit_table: String,
    /// Unit column -> payload key (the PostgreSQL column) when the settings map columns
    /// (generic); None: every column may be written.
    pub columns: Option<BTreeMap<String, String>>,
    /// The generator declared for its key.
    pub generator: Option<String>,
    /// `unit_triggers = "guard"`.
    pub guard: bool,
    /// The PostgreSQL table.
    pub pg_table: String,
}

/// Column map of generic settings: `columns.<payload key>.column`.
fn settings_columns(table: &TableConfig) -> Option<BTreeMap<String, String>> {
    let columns = table.settings.as_ref()?.get("columns")?.as_table()?;
    Some(
        columns
            .iter()
            .filter_map(|(key, spec)| {
                let column = spec.get("column")?.as_str()?;
                Some((column.to_ascii_uppercase(), key.clone()))
            })
            .collect(),
    )
}

/// What a transform file says it writes (`*` left out); empty when it cannot be loaded.
fn declared_writes(dir: &Path, transform: &str) -> Vec<String> {
    match Standalone::load(&dir.join(format!("{transform}.wasm"))) {
        Ok(loaded) => loaded
            .info()
            .writes
            .iter()
            .filter(|w| w.as_str() != "*")
            .map(|w| w.trim_matches('"').to_ascii_uppercase())
            .collect(),
        Err(e) => {
            tracing::warn!(
                transform,
                error = %e,
                "Cannot load the transform to read the tables it writes."
            );
            Vec::new()
        }
    }
}

/// Every unit table the configuration writes, in `[tables]` order.
pub fn replicated(config: &Config) -> Vec<Replicated> {
    let mut out = Vec::new();
    let mut loaded: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, table) in &config.tables {
        let target = table
            .settings
            .as_ref()
            .and_then(|s| s.get("target"))
            .and_then(|t| t.as_str())
            .map(|t| t.to_ascii_uppercase());
        let unit_tables = match (target, &table.transform) {
            (Some(t), _) => vec![t],
            (None, Some(transform)) => loaded
                .entry(transform.clone())
                .or_insert_with(|| declared_writes(&config.transforms.dir, transform))
                .clone(),
            (None, None) => vec![name.to_ascii_uppercase()],
        };
        for unit_table in unit_tables {
            out.push(Replicated {
                name: name.clone(),
                columns: settings_columns(table),
                generator: table.generator.as_ref().map(|g| g.to_ascii_uppercase()),
                guard: table.unit_triggers == Some(UnitTriggers::Guard),
                pg_table: table.pg_table(name).to_string(),
                unit_table,
            });
        }
    }
    out
}

/// The generator of each `[tables]` entry that declares one (as RDB$GENERATORS spells an
/// unquoted name: upper case).
pub fn generators(config: &Config) -> Generators {
    Generators(
        config
            .tables
            .iter()
            .filter_map(|(name, t)| {
                Some((name.clone(), t.generator.as_ref()?.to_ascii_uppercase()))
            })
            .collect(),
    )
}
