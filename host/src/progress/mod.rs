//! Progress of the long commands (`demo load`, `migrate`, `load`, `verify`, `repair`): a bar per
//! task (done, rate, ETA) when stderr is a terminal, and JSON lines on stderr otherwise (at most
//! one per task every [`LINE_EVERY`], plus the final one), so a log file or CI output gets the
//! same facts without control codes. stdout stays for the command's result.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a task prints a JSON line when stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(2);

/// The progress display of one command; tasks share it.
#[derive(Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Bars on a terminal, JSON lines otherwise.
    pub fn new() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::bars()
        } else {
            Progress::lines()
        }
    }

    /// Always bars (drawn to stderr).
    pub fn bars() -> Progress {
        Progress {
            bars: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// Always JSON lines.
    pub fn lines() -> Progress {
        Progress { bars: None }
    }

    /// A task of `total` units (`None`: unknown), e.g. rows of one table.
    pub fn task(&self, name: &str, unit: &str, total: Option<u64>) -> Task {
        let bar = self.bars.as_ref().map(|multi| {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            let template = if total.is_some() {
                "{prefix:>24} [{bar:30}] {human_pos}/{human_len} {msg} {per_sec} eta {eta}"
            } else {
                "{prefix:>24} {spinner} {human_pos} {msg} {per_sec}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(name.to_string());
            multi.add(bar)
        });
        Task {
            inner: Arc::new(TaskInner {
                name: name.to_string(),
                unit: unit.to_string(),
                bar,
                state: Mutex::new(TaskState {
                    total,
                    done: 0,
                    started: Instant::now(),
                    last_line: None,
                    message: String::new(),
                }),
            }),
        }
    }
}

/// One task's progress; cheap to clone, shareable across threads.
#[derive(Clone)]
pub struct Task {
    inner: Arc<TaskInner>,
}

struct TaskInner {
    name: String,
    unit: String,
    bar: Option<ProgressBar>,
    state: Mutex<TaskState>,
}

struct TaskState {
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_line: Option<Instant>,
    message: String,
}

impl Task {
    /// Adds `n` done.
    pub fn inc(&self, n: u64) {
        let line = self.update(|s| s.done += n);
        if let Some(bar) = &self.inner.bar {
            bar.inc(n);
        }
        self.emit(line, false);
    }

    /// Sets the done count (e.g. when resuming).
    pub fn set(&self, done: u64) {
        let line = self.update(|s| s.done = done);
        if let Some(bar) = &self.inner.bar {
            bar.set_position(done);
        }
        self.emit(line, false);
    }

    /// Changes the total once it is known.
    pub fn set_total(&self, total: u64) {
        self.update(|s| s.total = Some(total));
        if let Some(bar) = &self.inner.bar {
            bar.set_length(total);
        }
    }

    /// A short note shown next to the bar and in the JSON lines ("waiting for unit 3").
    pub fn message(&self, msg: &str) {
        self.update(|s| s.message = msg.to_string());
        if let Some(bar) = &self.inner.bar {
            bar.set_message(msg.to_string());
        }
    }

    /// Ends the task with a closing note.
    pub fn finish(&self, msg: &str) {
        let line = self.update(|s| s.message = msg.to_string());
        if let Some(bar) = &self.inner.bar {
            bar.finish_with_message(msg.to_string());
        }
        self.emit(line, true);
    }

    /// Done so far.
    pub fn done(&self) -> u64 {
        self.lock().done
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TaskState> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change`; returns the JSON line to print when one is due.
    fn update(&self, change: impl FnOnce(&mut TaskState)) -> Option<String> {
        let mut s = self.lock();
        change(&mut s);
        let elapsed = s.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            s.done as f64 / elapsed
        } else {
            0.0
        };
        let eta = s
            .total
            .filter(|_| rate > 0.0)
            .map(|t| (t.saturating_sub(s.done) as f64 / rate).round());
        let line = serde_json::json!({
            "progress": self.inner.name,
            "unit": self.inner.unit,
            "done": s.done,
            "total": s.total,
            "per_sec": (rate * 10.0).round() / 10.0,
            "eta_secs": eta,
            "elapsed_secs": (elapsed * 10.0).round() / 10.0,
            "message": s.message,
        });
        let due = s.last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY);
        if due {
            s.last_line = Some(Instant::now());
        }
        Some(line.to_string()).filter(|_| due)
    }

    fn emit(&self, line: Option<String>, last: bool) {
        if self.inner.bar.is_some() {
            return;
        }
        let line = match (line, last) {
            (Some(l), _) => l,
            // The final line is always printed, even right after a periodic one.
            (None, true) => match self.update(|s| s.last_line = None) {
                Some(l) => l,
                None => return,
            },
            (None, false) => return,
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_throttled_and_the_last_one_is_always_due() {
        let task = Progress::lines().task("customers", "rows", Some(10));
        assert!(
            task.update(|s| s.done += 1).is_some(),
            "the first line is due"
        );
        assert!(task.update(|s| s.done += 1).is_none(), "then throttled");
        let last = task.update(|s| s.last_line = None).unwrap();
        let json: serde_json::Value = serde_json::from_str(&last).unwrap();
        assert_eq!(json["progress"], "customers");
        assert_eq!(json["done"], 2);
        assert_eq!(json["total"], 10);
        assert!(json["eta_secs"].is_number());
        task.finish("done");
        assert_eq!(task.done(), 2);
    }
}
