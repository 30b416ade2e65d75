//! Table bindings and routing: which loaded version serves a table, what it may write there, and
//! [`Pinned`], the handle a message keeps from start to end so it finishes on one version.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::engine::short;
use super::error::CallError;
use super::instance::Loaded;
use super::metrics::{Metrics, TableMetrics};
use super::sql::{validate, AllowedWrites, Dialect};
use crate::model::{Change, Direction, Output};

/// One table of the configuration and how it picks its transform.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TableBinding {
    /// Source table name, exactly as changes carry it (`change.table`).
    pub table: String,
    /// Transform to use, by `info.name` or by file stem (`customers` for `customers.wasm`).
    /// `None`: the loaded transform whose `info.tables` lists this table (case-insensitive); a
    /// transform that declares `"*"` (the generic one) is only used when named here.
    pub transform: Option<String>,
    /// Per-table settings, a JSON object (`"{}"` when none). Passed to the transform as
    /// `change.settings`; for a transform that writes `"*"`, its `target` names the one table
    /// its statements may write.
    pub settings_json: String,
}

/// A binding whose settings were checked at load.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub(crate) table: String,
    pub(crate) transform: Option<String>,
    pub(crate) settings: Arc<str>,
    /// `settings.target` when it is a string.
    pub(crate) target: Option<String>,
}

impl Binding {
    /// Checks that the settings are a JSON object and extracts `target`.
    pub(crate) fn new(b: TableBinding) -> Result<Binding, String> {
        let text = if b.settings_json.trim().is_empty() {
            "{}"
        } else {
            b.settings_json.as_str()
        };
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let object = json.as_object().ok_or("expected a JSON object")?;
        let target = match object.get("target") {
            None => None,
            Some(serde_json::Value::String(t)) => Some(t.clone()),
            Some(_) => return Err("`target` must be a string".into()),
        };
        Ok(Binding {
            table: b.table,
            transform: b.transform,
            settings: Arc::from(text),
            target,
        })
    }
}

/// Which version a pinned table runs: shown in logs, dead-letter reasons and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransformVersion {
    /// `info.name`.
    pub name: String,
    /// `info.version`.
    pub version: String,
    /// Hex sha256 of the file.
    pub sha256: String,
    /// File name in the transforms directory.
    pub file: String,
}

impl std::fmt::Display for TransformVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sha = self.sha256.get(..12).unwrap_or(&self.sha256);
        write!(
            f,
            "{} {} ({}, sha256 {sha})",
            self.name, self.version, self.file
        )
    }
}

/// A table bound to one loaded version. Cheap to clone; holding it keeps that version alive
/// even if the file is replaced or removed meanwhile.
#[derive(Clone)]
pub struct Pinned(Arc<Route>);

struct Route {
    table: String,
    loaded: Arc<Loaded>,
    settings: Arc<str>,
    allowed: AllowedWrites,
    version: TransformVersion,
    metrics: TableMetrics,
}

impl std::fmt::Debug for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pinned({} -> {})", self.0.table, self.0.version)
    }
}

impl Pinned {
    /// The version this handle runs.
    pub fn version(&self) -> &TransformVersion {
        &self.0.version
    }

    /// The table this handle was pinned for.
    pub fn table(&self) -> &str {
        &self.0.table
    }

    /// Runs the transform on `change` and validates every statement. Synchronous and CPU-bound
    /// (microseconds, at most the deadline): call it from a blocking thread.
    ///
    /// `change.settings` is replaced by the bound table's settings, so the transform and the
    /// validator (the `target` of a `"*"` transform) always see the same ones. Statements of a
    /// downstream change are checked with Firebird rules, of an upstream change with PostgreSQL
    /// rules. A trailing `;` is stripped from the returned SQL.
    pub fn call(&self, change: &Change) -> Result<Output, CallError> {
        let started = Instant::now();
        let result = self.call_validated(change);
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.0
            .metrics
            .call(outcome, started.elapsed().as_secs_f64());
        result
    }

    fn call_validated(&self, change: &Change) -> Result<Output, CallError> {
        let route = &self.0;
        let mut out = route.loaded.call(change, &route.settings)?;
        let dialect = match change.direction {
            Direction::Downstream => Dialect::Firebird,
            Direction::Upstream => Dialect::Postgres,
        };
        for (i, st) in out.statements.iter_mut().enumerate() {
            if let Err(reason) = validate(&mut st.sql, st.params.len(), dialect, &route.allowed) {
                return Err(CallError::Refused {
                    reason: format!(
                        "statement {} of {}: {reason}: {}",
                        i + 1,
                        route.version,
                        short(&st.sql)
                    ),
                });
            }
        }
        Ok(out)
    }
}

/// Whether `loaded` declares `table` (or `"*"`).
fn declares(loaded: &Loaded, table: &str) -> bool {
    loaded
        .info
        .tables
        .iter()
        .any(|t| t == "*" || t.eq_ignore_ascii_case(table))
}

fn file_stem(file: &str) -> &str {
    file.strip_suffix(".wasm").unwrap_or(file)
}

/// Picks the version that serves `binding` among `loaded`, or says why none does. When several
/// match, the one serving now (`current`) keeps serving, with a note saying so; otherwise the
/// table is unrouted.
pub(crate) fn resolve(
    binding: &Binding,
    loaded: &[Arc<Loaded>],
    current: Option<&Arc<Loaded>>,
) -> Result<(Arc<Loaded>, Option<String>), String> {
    let table = &binding.table;
    let candidates: Vec<&Arc<Loaded>> = match &binding.transform {
        // The file named exactly (`NAME.wasm`) serves; only without one, the files whose
        // `info.name` is NAME (several builds of one transform may sit in the directory).
        Some(name) => match loaded.iter().find(|l| file_stem(&l.file) == name) {
            Some(exact) => vec![exact],
            None => loaded.iter().filter(|l| l.info.name == *name).collect(),
        },
        None => loaded
            .iter()
            .filter(|l| l.info.tables.iter().any(|t| t.eq_ignore_ascii_case(table)))
            .collect(),
    };
    let mut note = None;
    let chosen = match candidates.as_slice() {
        [] => {
            return Err(match &binding.transform {
                Some(name) => {
                    format!("no loaded transform is named `{name}` (info.name or file name)")
                }
                None => format!(
                    "no loaded transform declares table `{table}`; add its .wasm file or set \
                     `transform` for this table"
                ),
            })
        }
        [one] => *one,
        many => {
            let files: Vec<&str> = many.iter().map(|l| l.file.as_str()).collect();
            let files = files.join(", ");
            match current.filter(|c| many.iter().any(|m| Arc::ptr_eq(m, c))) {
                Some(current) => {
                    note = Some(format!("{files} all match; {} keeps serving", current.file));
                    current
                }
                None => {
                    return Err(format!(
                        "several files match: {files}; remove all but one or set `transform`"
                    ))
                }
            }
        }
    };
    if !declares(chosen, table) {
        return Err(format!(
            "transform `{}` ({}) does not declare table `{table}` in its tables {:?}",
            chosen.info.name, chosen.file, chosen.info.tables
        ));
    }
    allowed_writes(binding, chosen)?;
    Ok((chosen.clone(), note))
}

/// The tables `loaded` may write for `binding`: its declared `writes`, or for `"*"` the `target`
/// in the binding's settings.
fn allowed_writes(binding: &Binding, loaded: &Loaded) -> Result<AllowedWrites, String> {
    if loaded.info.writes.iter().any(|w| w == "*") {
        let target = binding.target.as_ref().ok_or_else(|| {
            format!(
                "transform `{}` writes \"*\": set `target` in the settings of table `{}`",
                loaded.info.name, binding.table
            )
        })?;
        AllowedWrites::new(std::slice::from_ref(target))
            .map_err(|e| format!("settings target: {e}"))
    } else {
        AllowedWrites::new(&loaded.info.writes)
    }
}

/// Builds the handle for a resolved binding.
pub(crate) fn pin(
    binding: &Binding,
    loaded: Arc<Loaded>,
    metrics: &Metrics,
) -> Result<Pinned, String> {
    let allowed = allowed_writes(binding, &loaded)?;
    let version = TransformVersion {
        name: loaded.info.name.clone(),
        version: loaded.info.version.clone(),
        sha256: loaded.sha256.clone(),
        file: loaded.file.clone(),
    };
    Ok(Pinned(Arc::new(Route {
        table: binding.table.clone(),
        settings: binding.settings.clone(),
        allowed,
        version,
        metrics: metrics.table(&binding.table),
        loaded,
    })))
}

/// True when `pinned` runs exactly `loaded`.
pub(crate) fn runs(pinned: &Pinned, loaded: &Arc<Loaded>) -> bool {
    Arc::ptr_eq(&pinned.0.loaded, loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(settings: &str) -> Result<Binding, String> {
        Binding::new(TableBinding {
            table: "t".into(),
            transform: None,
            settings_json: settings.into(),
        })
    }

    #[test]
    fn settings_must_be_an_object_with_a_string_target() {
        assert_eq!(binding("").unwrap().settings.as_ref(), "{}");
        assert_eq!(
            binding(r#"{"target":"CLIENTES"}"#)
                .unwrap()
                .target
                .as_deref(),
            Some("CLIENTES")
        );
        assert!(binding("[]").is_err());
        assert!(binding("{").is_err());
        assert!(binding(r#"{"target": 1}"#).is_err());
    }
}
