//! The demo application writing at a pace a shared 2-core box sustains end to end (small rounds
//! with pauses), for suites that act "while the application writes" and then compare.

use std::time::Duration;

use ponte::demo::{load, LoadOptions};
use tokio_util::sync::CancellationToken;

use crate::TestEnv;

/// Writes rounds of `per_round` transactions for every unit of `env` with `writers` writers,
/// pausing `pause` between rounds, until the token is cancelled; yields the transactions.
pub fn paced_writer(
    env: &TestEnv,
    writers: usize,
    per_round: u64,
    pause: Duration,
    seed: u64,
) -> (CancellationToken, tokio::task::JoinHandle<u64>) {
    let stop = CancellationToken::new();
    let (pool, stopped) = (env.pg.clone(), stop.clone());
    let units: Vec<i32> = env.units.iter().map(|(id, _)| *id).collect();
    let handle = tokio::spawn(async move {
        let mut committed = 0;
        for round in 0.. {
            if stopped.is_cancelled() {
                break;
            }
            let options = LoadOptions {
                changes: per_round,
                units: units.clone(),
                concurrency: writers,
                seed: seed + round,
            };
            committed += load(&pool, &options, |_| {})
                .await
                .map(|s| s.transactions)
                .unwrap_or(0);
            tokio::time::sleep(pause).await;
        }
        committed
    });
    (stop, handle)
}
