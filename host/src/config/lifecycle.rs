//! The `[load]` and `[verify]` sections: chunk sizes of `ponte load` / `verify` / `repair`, and
//! the optional verify schedule of `run` (docs/lifecycle.md).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `[load]`: how `ponte load` and `ponte repair` cut a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadConfig {
    /// Rows per chunk: one PostgreSQL transaction, one progress record (1..=50000).
    pub chunk_size: u32,
    /// How long one chunk waits for a row lock held by the application before it gives way
    /// and is retried, in milliseconds (keep it below PostgreSQL's `deadlock_timeout`).
    pub lock_timeout_ms: u64,
    /// Chunks a load may have queued that the unit has not applied yet (0: no limit). The unit's
    /// live changes queue behind them, so this bounds their delay during a load to about
    /// `ahead_chunks * chunk_size` apply times, while the unit never runs dry.
    pub ahead_chunks: u32,
    /// How long a load waits for the unit to apply a chunk before it stops (resumable), in
    /// seconds: a unit that is not being applied (no `ponte run` for it) stops the load instead
    /// of filling its queue.
    pub apply_wait_secs: u64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            chunk_size: 1_000,
            lock_timeout_ms: 500,
            ahead_chunks: 3,
            apply_wait_secs: 300,
        }
    }
}

/// `[verify]`: chunking and the schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// Rows per checksum chunk (1..=50000); a differing chunk is bisected down to
    /// `leaf_rows` rows, which are compared value by value.
    pub chunk_size: u32,
    /// Rows read and compared one by one at the bottom of a bisection.
    pub leaf_rows: u32,
    /// Run verify over every unit this often inside `run` (e.g. "6h", "30m"); absent: never.
    #[serde(deserialize_with = "every", default)]
    pub every: Option<Duration>,
    /// How long a recheck waits for a unit to apply past a change in flight, in seconds.
    pub recheck_wait_secs: u64,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            chunk_size: 2_000,
            leaf_rows: 64,
            every: None,
            recheck_wait_secs: 30,
        }
    }
}

impl LoadConfig {
    /// Range checks.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=50_000).contains(&self.chunk_size) {
            return Err(format!(
                "[load] chunk_size = {} must be 1..=50000",
                self.chunk_size
            ));
        }
        if self.apply_wait_secs == 0 {
            return Err("[load] apply_wait_secs must be at least 1".into());
        }
        Ok(())
    }
}

impl VerifyConfig {
    /// Range checks.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=50_000).contains(&self.chunk_size) || self.leaf_rows == 0 {
            return Err(format!(
                "[verify] chunk_size = {} must be 1..=50000 and leaf_rows at least 1",
                self.chunk_size
            ));
        }
        if self.every.is_some_and(|d| d < Duration::from_secs(60)) {
            return Err("[verify] every must be at least 1m".into());
        }
        Ok(())
    }
}

/// Parses "90s", "30m", "6h", "1d".
pub fn parse_every(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like \"6h\" or \"30m\""))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3_600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

pub(super) fn every<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_every(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_every("6h"), Ok(Duration::from_secs(21_600)));
        assert_eq!(parse_every("30m"), Ok(Duration::from_secs(1_800)));
        assert!(parse_every("6 hours").is_err());
        assert!(parse_every("h").is_err());
    }
}
