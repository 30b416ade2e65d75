//! The rescan behind hot reload: load new and changed files, keep the old version when the new one
//! is refused, drop removed files, re-route and swap atomically. One log line and one metric per
//! load, refusal and removal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{bound_tables, Files, RefusedStatus, Routes, TransformRegistry};
use crate::transform::instance::Loaded;
use crate::transform::metrics::{LoadOutcome, Metrics};

impl TransformRegistry {
    /// Rescans the directory: loads new and changed files, drops removed ones, re-routes and
    /// swaps. Blocking (reads and compiles): run it off the async threads. Safe to call anytime.
    pub fn reload(&self) {
        let inner = &self.inner;
        let mut files = self.files();
        let listing = match list_wasm(&inner.dir) {
            Ok(listing) => listing,
            Err(e) => {
                warn!(
                    dir = %inner.dir.display(), error = %e,
                    "cannot list the transforms directory; keeping the transforms loaded now"
                );
                return;
            }
        };
        let mut routes = self.routes();
        for (file, path) in &listing {
            let Some(bytes) = read_file(
                path,
                inner.engine.settings.max_file_bytes,
                file,
                &mut files,
                &inner.metrics,
            ) else {
                continue;
            };
            let sha256 = hex::encode(Sha256::digest(&bytes));
            if files.loaded.get(file).is_some_and(|l| l.sha256 == sha256) {
                files.refused.remove(file);
                continue;
            }
            if files.refused.get(file).is_some_and(|r| r.sha256 == sha256) {
                continue;
            }
            let candidate = inner.engine.load(file, &bytes).and_then(|new| {
                let mut trial = files.loaded.clone();
                let old = trial.insert(file.clone(), new.clone());
                let next = self.route_all(&trial, &routes);
                keeps_tables(&routes, old.as_ref(), &next).map(|()| (new, next))
            });
            match candidate {
                Ok((new, next)) => {
                    info!(
                        file = %file, sha256 = %new.short_sha(), name = %new.info.name,
                        version = %new.info.version, tables = ?new.info.tables,
                        "transform file loaded"
                    );
                    inner.metrics.load(LoadOutcome::Loaded);
                    inner
                        .metrics
                        .set_loaded(&new.info.name, new.short_sha(), true);
                    if let Some(old) = files.loaded.insert(file.clone(), new) {
                        inner
                            .metrics
                            .set_loaded(&old.info.name, old.short_sha(), false);
                    }
                    files.refused.remove(file);
                    routes = Arc::new(next);
                }
                Err(reason) => {
                    let kept = files.loaded.get(file).map(|l| l.info.version.clone());
                    warn!(
                        file = %file, sha256 = %sha256.get(..12).unwrap_or_default(),
                        reason = %reason, previous_version_kept = ?kept,
                        "transform file refused"
                    );
                    inner.metrics.load(LoadOutcome::Refused);
                    let refused_at = Utc::now();
                    files.refused.insert(
                        file.clone(),
                        RefusedStatus {
                            file: file.clone(),
                            sha256,
                            reason,
                            refused_at,
                        },
                    );
                }
            }
        }
        let gone: Vec<String> = files
            .loaded
            .keys()
            .filter(|f| !listing.contains_key(*f))
            .cloned()
            .collect();
        for file in gone {
            if let Some(old) = files.loaded.remove(&file) {
                info!(
                    file = %file, sha256 = %old.short_sha(), name = %old.info.name,
                    tables = ?bound_tables(&routes, &old),
                    "transform file removed; the tables it served become unrouted"
                );
                inner.metrics.load(LoadOutcome::Removed);
                inner
                    .metrics
                    .set_loaded(&old.info.name, old.short_sha(), false);
            }
        }
        files.refused.retain(|f, _| listing.contains_key(f));
        let mut next = self.route_all(&files.loaded, &routes);
        next.loaded = files.loaded.values().cloned().collect();
        next.refused = files.refused.values().cloned().collect();
        let next = Arc::new(next);
        log_changes(&self.routes(), &next);
        *inner.routes.write().unwrap_or_else(|p| p.into_inner()) = next;
        // Deliveries held for a transform are offered again now.
        inner.generation.send_modify(|g| *g += 1);
    }
}

/// A new version must keep serving every table its predecessor served.
fn keeps_tables(current: &Routes, old: Option<&Arc<Loaded>>, next: &Routes) -> Result<(), String> {
    let Some(old) = old else { return Ok(()) };
    let lost: Vec<String> = bound_tables(current, old)
        .into_iter()
        .filter_map(|t| next.unrouted.get(&t).map(|why| format!("{t} ({why})")))
        .collect();
    if lost.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the new version would leave tables unrouted: {}",
            lost.join("; ")
        ))
    }
}

/// One log line per table whose routing changed.
fn log_changes(before: &Routes, after: &Routes) {
    for (table, pinned) in &after.by_table {
        let same = before
            .by_table
            .get(table)
            .is_some_and(|b| b.version() == pinned.version());
        if !same {
            info!(table = %table, transform = %pinned.version(), "table routed");
        }
    }
    for (table, reason) in &after.unrouted {
        if before.unrouted.get(table) != Some(reason) {
            warn!(
                table = %table, reason = %reason,
                "table has no transform; its changes wait (not dead-lettered)"
            );
        }
    }
    for (table, note) in &after.ambiguous {
        if before.ambiguous.get(table) != Some(note) {
            warn!(
                table = %table, reason = %note,
                "several transform files match a table; the one serving keeps serving"
            );
        }
    }
}

/// `*.wasm` regular files of `dir` (hidden files skipped: editors and copy tools write those).
fn list_wasm(dir: &Path) -> std::io::Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') || !name.ends_with(".wasm") || !path.is_file() {
            continue;
        }
        out.insert(name, path);
    }
    Ok(out)
}

/// Reads a file under the size cap; a failure is logged and the file left as it was.
fn read_file(
    path: &Path,
    max: u64,
    file: &str,
    files: &mut Files,
    metrics: &Metrics,
) -> Option<Vec<u8>> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > max {
        let reason = format!("file too large: {size} bytes, the limit is {max}");
        if files.refused.get(file).is_none_or(|r| r.reason != reason) {
            warn!(file = %file, reason = %reason, "transform file refused");
            metrics.load(LoadOutcome::Refused);
            files.refused.insert(
                file.to_string(),
                RefusedStatus {
                    file: file.to_string(),
                    sha256: String::new(),
                    reason,
                    refused_at: Utc::now(),
                },
            );
        }
        return None;
    }
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            // Vanished between listing and reading (a rename in progress): the next event rescans.
            warn!(
                file = %file, error = %e,
                "cannot read transform file; will retry on the next change"
            );
            None
        }
    }
}
