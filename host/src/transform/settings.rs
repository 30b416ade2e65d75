//! Limits and timings of the transform sandbox, with their defaults in one place.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Sandbox limits and reload timings. Every field has a default (see [`Default`]), so a config
/// section may name only what it changes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// Wall-clock budget of one `transform` call, in milliseconds. Enforced by epoch
    /// interruption: the call traps and its instance is discarded. `describe` and `self-check`
    /// at load get ten times as long (at least 1 s): they run several fixtures on a cold instance,
    /// often while other files compile.
    pub call_timeout_ms: u64,
    /// How often the epoch advances, in milliseconds; the deadline is accurate to about one tick.
    pub epoch_tick_ms: u64,
    /// Largest linear memory one instance may grow to, in bytes.
    pub memory_limit_bytes: usize,
    /// Largest table one instance may grow to, in elements.
    pub table_elements_limit: usize,
    /// Most statements one change may produce; more is an error for that change.
    pub max_statements: usize,
    /// Most bytes of SQL text plus parameters one change may produce; more is an error.
    pub max_output_bytes: usize,
    /// Idle instances kept per loaded transform for reuse (a fresh one costs ~80 us more).
    pub pool_size: usize,
    /// An instance is retired after this many calls, so a guest that leaks memory is renewed
    /// before it reaches the memory limit.
    pub max_calls_per_instance: u64,
    /// A `.wasm` file larger than this is refused without compiling it, in bytes.
    pub max_file_bytes: u64,
    /// Quiet time after the last filesystem event before the directory is rescanned, in ms.
    pub reload_debounce_ms: u64,
    /// The directory is also rescanned this often, in seconds, in case an event was missed
    /// (0 = only on events).
    pub rescan_interval_secs: u64,
    /// Directory of wasmtime's on-disk cache of compiled components, so a restart does not
    /// compile every transform again (~1 s per 1 MB component). `None`: no disk cache.
    pub compile_cache_dir: Option<PathBuf>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            call_timeout_ms: 200,
            epoch_tick_ms: 5,
            memory_limit_bytes: 64 << 20,
            table_elements_limit: 100_000,
            max_statements: 1_000,
            max_output_bytes: 8 << 20,
            pool_size: 4,
            max_calls_per_instance: 10_000,
            max_file_bytes: 64 << 20,
            reload_debounce_ms: 200,
            rescan_interval_secs: 30,
            compile_cache_dir: None,
        }
    }
}

impl EngineSettings {
    /// The per-call deadline.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms.max(1))
    }

    /// The epoch tick period.
    pub fn epoch_tick(&self) -> Duration {
        Duration::from_millis(self.epoch_tick_ms.max(1))
    }

    /// The deadline expressed in epoch ticks (at least one).
    pub(crate) fn deadline_ticks(&self) -> u64 {
        self.call_timeout_ms
            .max(1)
            .div_ceil(self.epoch_tick_ms.max(1))
            .max(1)
    }

    /// Refuses values that would make every call fail or the deadline meaningless.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                self.call_timeout_ms >= 1 && self.call_timeout_ms <= 60_000,
                "call_timeout_ms must be 1..=60000",
            ),
            (
                self.epoch_tick_ms >= 1 && self.epoch_tick_ms <= self.call_timeout_ms.min(100),
                "epoch_tick_ms must be 1..=100 and at most call_timeout_ms",
            ),
            (
                self.memory_limit_bytes >= 1 << 20,
                "memory_limit_bytes must be at least 1 MiB",
            ),
            (
                self.table_elements_limit >= 1_000,
                "table_elements_limit must be at least 1000",
            ),
            (
                self.max_statements >= 1,
                "max_statements must be at least 1",
            ),
            (
                self.max_output_bytes >= 1 << 10,
                "max_output_bytes must be at least 1 KiB",
            ),
            (
                self.max_file_bytes >= 1 << 10,
                "max_file_bytes must be at least 1 KiB",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(format!("transform limits: {why}")),
            None => Ok(()),
        }
    }

    /// The deadline of `describe` and `self-check` at load, in epoch ticks.
    pub(crate) fn load_deadline_ticks(&self) -> u64 {
        let at_least = 1_000u64.div_ceil(self.epoch_tick_ms.max(1));
        self.deadline_ticks().saturating_mul(10).max(at_least)
    }

    /// The reload debounce.
    pub fn reload_debounce(&self) -> Duration {
        Duration::from_millis(self.reload_debounce_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_ticks_round_up() {
        let s = EngineSettings {
            call_timeout_ms: 201,
            epoch_tick_ms: 5,
            ..Default::default()
        };
        assert_eq!(s.deadline_ticks(), 41);
        let s = EngineSettings {
            call_timeout_ms: 0,
            epoch_tick_ms: 0,
            ..Default::default()
        };
        assert_eq!(s.deadline_ticks(), 1);
        assert_eq!(s.load_deadline_ticks(), 1_000);
        assert_eq!(EngineSettings::default().load_deadline_ticks(), 400);
    }

    #[test]
    fn validation() {
        assert!(EngineSettings::default().validate().is_ok());
        let bad = EngineSettings {
            memory_limit_bytes: 1_000,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("memory_limit_bytes"));
        let bad = EngineSettings {
            epoch_tick_ms: 300,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("epoch_tick_ms"));
    }

    #[test]
    fn partial_toml_keeps_defaults() {
        let s: EngineSettings = serde_json::from_str(r#"{"call_timeout_ms": 50}"#).unwrap();
        assert_eq!(s.call_timeout_ms, 50);
        assert_eq!(s.max_statements, 1_000);
        assert!(serde_json::from_str::<EngineSettings>(r#"{"nope": 1}"#).is_err());
    }
}
