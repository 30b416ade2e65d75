//! Hot reload: filesystem events on the transforms directory, debounced, trigger a rescan on a
//! blocking thread; a periodic rescan covers missed events. Falls back to polling every second
//! when the OS watcher cannot start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::registry::TransformRegistry;

/// Polling period when no OS watcher is available.
const FALLBACK_POLL: Duration = Duration::from_secs(1);

/// Starts the watch task; it ends when `shutdown` is cancelled.
pub(crate) fn spawn(registry: TransformRegistry, shutdown: CancellationToken) -> JoinHandle<()> {
    let wake = Arc::new(Notify::new());
    let watcher = start_watcher(registry.dir(), wake.clone());
    let settings = registry.settings().clone();
    let rescan = match (&watcher, settings.rescan_interval_secs) {
        (None, _) => Some(FALLBACK_POLL),
        (Some(_), 0) => None,
        (Some(_), secs) => Some(Duration::from_secs(secs)),
    };
    let debounce = settings.reload_debounce();
    tokio::spawn(async move {
        // Dropping the watcher stops its events; keep it for the life of the task.
        let _watcher = watcher;
        loop {
            let periodic = async {
                match rescan {
                    Some(period) => tokio::time::sleep(period).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => {
                    if !quiet(&wake, debounce, &shutdown).await {
                        return;
                    }
                }
                _ = periodic => {}
            }
            let reg = registry.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || reg.reload()).await {
                error!(
                    error = %e,
                    "transform reload task failed; the loaded transforms keep serving"
                );
            }
        }
    })
}

/// Waits until no event arrived for `debounce` (at most 10 debounce periods in all, so a file
/// written continuously still gets loaded); false when shutting down.
async fn quiet(wake: &Notify, debounce: Duration, shutdown: &CancellationToken) -> bool {
    let give_up = tokio::time::Instant::now() + debounce * 10;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = wake.notified() => {
                if tokio::time::Instant::now() >= give_up {
                    return true;
                }
            }
            _ = tokio::time::sleep(debounce) => return true,
        }
    }
}

fn start_watcher(dir: &Path, wake: Arc<Notify>) -> Option<RecommendedWatcher> {
    let handler = move |event: notify::Result<Event>| match event {
        Ok(event) if !relevant(&event) => {}
        // An error (e.g. queue overflow) may hide changes: rescan.
        _ => wake.notify_one(),
    };
    let started = notify::recommended_watcher(handler)
        .and_then(|mut w| w.watch(dir, RecursiveMode::NonRecursive).map(|()| w));
    match started {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(
                dir = %dir.display(), error = %e,
                "cannot watch the transforms directory; polling it every second instead"
            );
            None
        }
    }
}

/// Events that can change what a rescan finds: not reads (the rescan's own reads would loop),
/// and only on `.wasm` files or the directory itself.
fn relevant(event: &Event) -> bool {
    if let EventKind::Access(kind) = event.kind {
        if kind != AccessKind::Close(AccessMode::Write) {
            return false;
        }
    }
    event.paths.is_empty()
        || event
            .paths
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "wasm") || p.extension().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RenameMode};
    use std::path::PathBuf;

    fn ev(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_changes_to_wasm_files_wake_the_watcher() {
        assert!(relevant(&ev(
            EventKind::Create(CreateKind::File),
            "/t/a.wasm"
        )));
        assert!(relevant(&ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            "/t/a.wasm"
        )));
        assert!(relevant(&ev(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            "/t/a.wasm"
        )));
        assert!(!relevant(&ev(
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            "/t/a.wasm"
        )));
        assert!(!relevant(&ev(
            EventKind::Create(CreateKind::File),
            "/t/a.wasm.tmp"
        )));
        assert!(relevant(&ev(
            EventKind::Remove(notify::event::RemoveKind::Any),
            "/t"
        )));
    }
}
