//! Real host processes for fault tests: spawn the `ponte` entry point with a config file, send it
//! SIGTERM, or kill -9 it. Only processes the test started are ever signalled (by pid).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running host process; killed with -9 on drop if still alive.
pub struct HostProcess {
    child: Child,
    /// Its combined log file.
    pub log: PathBuf,
}

impl HostProcess {
    /// Spawns `bin --config config <args...>` with logs to `log`.
    pub fn spawn(
        bin: &str,
        config: &Path,
        args: &[&str],
        log: &Path,
    ) -> anyhow::Result<HostProcess> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg("--log-format")
            .arg("text")
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,ponte=info".into()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()?;
        Ok(HostProcess {
            child,
            log: log.to_path_buf(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
    }

    /// Sends SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}
