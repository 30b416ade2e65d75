//! The board: what the running host knows about each unit beyond counters — the last dead
//! letters with their reasons, and the deliveries a unit holds back — kept bounded in memory for
//! the status page and `/status.json`. Every writer is a telemetry event (one place that logs,
//! counts and notes); readers take a snapshot.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Dead letters remembered per unit (the oldest is forgotten first).
const DEAD_LETTERS_PER_UNIT: usize = 20;

/// Which way the dead-lettered change was flowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flow {
    /// PostgreSQL -> the unit (the unit applier refused it).
    Downstream,
    /// The unit -> PostgreSQL (the PostgreSQL applier refused it).
    Upstream,
}

/// One dead letter as the board remembers it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterNote {
    /// When it was set aside.
    pub at: DateTime<Utc>,
    /// The unit it was for (downstream) or came from (upstream).
    pub unit: i32,
    /// Direction.
    pub flow: Flow,
    /// Table named in the message ("" when the body did not decode).
    pub table: String,
    /// Correlation id ("" when the body did not decode).
    pub correlation_id: String,
    /// Error class (`malformed`, `refused`, `transform`, `firebird`, `postgres`).
    pub class: String,
    /// The reason, as written in the dead letter's `x-ponte-reason` header.
    pub reason: String,
}

/// What a unit's consumer holds back: deliveries received but not settled, and why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HeldState {
    /// Deliveries held (unacked, waiting).
    pub held: usize,
    /// The consumer's prefetch: at `held == prefetch` the broker sends nothing more (stalled).
    pub prefetch: usize,
    /// Why the oldest held delivery waits ("" when nothing is held).
    pub reason: String,
    /// Since when something has been held.
    pub since: Option<DateTime<Utc>>,
}

impl HeldState {
    /// Whether the unit cannot receive anything more until the head is released.
    pub fn stalled(&self) -> bool {
        self.held > 0 && self.held >= self.prefetch
    }
}

#[derive(Default)]
struct Inner {
    dead: BTreeMap<i32, VecDeque<DeadLetterNote>>,
    dead_total: BTreeMap<i32, u64>,
    held: BTreeMap<(i32, Flow), HeldState>,
}

/// Cheap to clone; all clones share one board.
#[derive(Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<Inner>>,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned board still holds whole entries (each write replaces or pushes one).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers a dead letter (bounded per unit).
    pub fn note_dead_letter(&self, note: DeadLetterNote) {
        let mut inner = self.lock();
        *inner.dead_total.entry(note.unit).or_default() += 1;
        let list = inner.dead.entry(note.unit).or_default();
        if list.len() >= DEAD_LETTERS_PER_UNIT {
            list.pop_front();
        }
        list.push_back(note);
    }

    /// The unit's remembered dead letters, newest first.
    pub fn dead_letters(&self, unit: i32) -> Vec<DeadLetterNote> {
        let inner = self.lock();
        inner
            .dead
            .get(&unit)
            .map(|l| l.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Dead letters set aside for `unit` since this host started.
    pub fn dead_letter_count(&self, unit: i32) -> u64 {
        self.lock().dead_total.get(&unit).copied().unwrap_or(0)
    }

    /// Records what a unit's consumer holds now.
    pub fn set_held(&self, unit: i32, flow: Flow, state: HeldState) {
        self.lock().held.insert((unit, flow), state);
    }

    /// Every consumer's held state.
    pub fn held_all(&self) -> Vec<((i32, Flow), HeldState)> {
        self.lock()
            .held
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// What a unit's consumer holds (default: nothing).
    pub fn held(&self, unit: i32, flow: Flow) -> HeldState {
        self.lock()
            .held
            .get(&(unit, flow))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(unit: i32, n: usize) -> DeadLetterNote {
        DeadLetterNote {
            at: Utc::now(),
            unit,
            flow: Flow::Downstream,
            table: "t".into(),
            correlation_id: format!("c{n}"),
            class: "transform".into(),
            reason: "r".into(),
        }
    }

    #[test]
    fn dead_letters_are_bounded_per_unit_and_newest_first() {
        let board = Board::default();
        for n in 0..(DEAD_LETTERS_PER_UNIT + 5) {
            board.note_dead_letter(note(1, n));
        }
        board.note_dead_letter(note(2, 0));
        let one = board.dead_letters(1);
        assert_eq!(one.len(), DEAD_LETTERS_PER_UNIT);
        assert_eq!(
            one[0].correlation_id,
            format!("c{}", DEAD_LETTERS_PER_UNIT + 4)
        );
        assert_eq!(
            board.dead_letter_count(1),
            (DEAD_LETTERS_PER_UNIT + 5) as u64
        );
        assert_eq!(board.dead_letters(2).len(), 1);
        assert!(board.dead_letters(3).is_empty());
    }

    #[test]
    fn a_unit_is_stalled_when_it_holds_its_whole_prefetch() {
        let board = Board::default();
        let state = |held| HeldState {
            held,
            prefetch: 10,
            reason: "x".into(),
            since: None,
        };
        board.set_held(1, Flow::Downstream, state(3));
        assert!(!board.held(1, Flow::Downstream).stalled());
        board.set_held(1, Flow::Downstream, state(10));
        assert!(board.held(1, Flow::Downstream).stalled());
        assert!(!board.held(1, Flow::Upstream).stalled());
    }
}
