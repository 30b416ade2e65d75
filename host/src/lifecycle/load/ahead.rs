//! Flow control: a load keeps at most `[load] ahead_chunks` chunks queued that the unit has not
//! applied yet. A unit applies one ordered stream, so its live changes queue behind the load's
//! rows: without a bound, a million-row load delays every live change at that unit by the whole
//! table's apply time (12-24 s for 100k rows in the lifecycle bench). A few chunks ahead keep
//! the unit busy and the delay to a few chunks. A unit that is not applying at all stops the
//! load after `apply_wait_secs` (resumable) instead of filling its queue.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::config::{Config, Unit};
use crate::lifecycle::verify::fb::FbSlot;
use crate::lifecycle::verify::unit;
use crate::progress::Task;

/// The chunks queued and not yet known applied, oldest first (their last correlation ids).
pub struct Ahead {
    limit: usize,
    wait: Duration,
    unit: i32,
    queued: VecDeque<String>,
    slot: FbSlot,
}

impl Ahead {
    /// Flow control for a load of `unit`.
    pub fn new(unit: &Unit, config: &Config) -> Ahead {
        Ahead {
            limit: config.load.ahead_chunks as usize,
            wait: Duration::from_secs(config.load.apply_wait_secs),
            unit: unit.id,
            queued: VecDeque::new(),
            slot: FbSlot::new(unit, &config.firebird),
        }
    }

    /// Records a chunk just queued, then waits while more than `limit` are not applied.
    pub async fn queued(&mut self, last: Option<String>, task: &Task) -> anyhow::Result<()> {
        if self.limit == 0 {
            return Ok(());
        }
        self.queued.extend(last);
        while self.queued.len() > self.limit {
            if let Some(oldest) = self.queued.front().cloned() {
                self.wait_applied(&oldest, task).await?;
            }
            self.queued.pop_front();
        }
        Ok(())
    }

    async fn wait_applied(&mut self, correlation_id: &str, task: &Task) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        let mut last_error = None;
        loop {
            let probe = correlation_id.to_string();
            match self
                .slot
                .run(move |c| unit::applied(c, &probe).map_err(|e| e.to_string()))
                .await
            {
                Ok(true) => {
                    if started.elapsed() > Duration::from_secs(2) {
                        task.message("");
                    }
                    return Ok(());
                }
                Ok(false) => {}
                Err(e) => last_error = Some(e),
            }
            if started.elapsed() >= self.wait {
                let why = last_error.map_or(String::new(), |e| format!(" (last error: {e})"));
                bail!(
                    "unit {} has not applied the load's chunk ending with correlation id \
                     {correlation_id} within {:?}{why}: is `ponte run` applying this unit? Every \
                     chunk written is kept; run the same command again to resume",
                    self.unit,
                    self.wait
                );
            }
            if started.elapsed() > Duration::from_secs(2) {
                task.message(&format!(
                    "waiting for unit {} to apply ({} chunks ahead)",
                    self.unit, self.limit
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}
