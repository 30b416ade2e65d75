//! One loaded transform version and its pool of reusable instances; one sandboxed call with its
//! deadline, memory limit and output caps. A store whose call trapped, timed out or hit a limit is
//! dropped, never reused.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use wasmtime::{Store, Trap, WasmBacktrace};

use super::bindings::{
    change_to_wit, error_from_wit, output_from_wit, Transform, TransformPre, WitChange,
};
use super::engine::{short, SandboxEngine, StoreState};
use super::error::CallError;
use super::types::Info;
use crate::model::{Change, Output, Value};

/// A store and its instance of one transform.
pub(crate) struct Slot {
    pub(crate) store: Store<StoreState>,
    pub(crate) bindings: Transform,
    calls: u64,
}

impl Slot {
    /// Instantiates a fresh store from the pre-linked component.
    pub(crate) fn instantiate(
        engine: &SandboxEngine,
        pre: &TransformPre<StoreState>,
    ) -> Result<Slot, String> {
        let mut store = engine.new_store();
        // Instantiation runs guest start functions: same budget as a load-time call.
        store.set_epoch_deadline(engine.settings.load_deadline_ticks());
        let bindings = pre
            .instantiate(&mut store)
            .map_err(|e| short(&format!("{e:#}")))?;
        Ok(Slot {
            store,
            bindings,
            calls: 0,
        })
    }

    /// Resets the per-call state: a new deadline from now, and the limit flag.
    pub(crate) fn arm(&mut self, ticks: u64) {
        self.store.set_epoch_deadline(ticks);
        self.store.data_mut().hit_limit = false;
    }
}

/// A compiled, checked transform file: what it declared and the instances that run it.
pub(crate) struct Loaded {
    engine: Arc<SandboxEngine>,
    /// File name inside the transforms directory.
    pub(crate) file: String,
    /// Hex sha256 of the file's bytes.
    pub(crate) sha256: String,
    /// What `describe()` returned.
    pub(crate) info: Info,
    /// When it was loaded.
    pub(crate) loaded_at: DateTime<Utc>,
    pre: TransformPre<StoreState>,
    idle: Mutex<Vec<Slot>>,
}

impl Loaded {
    pub(crate) fn new(
        engine: Arc<SandboxEngine>,
        file: String,
        sha256: String,
        info: Info,
        pre: TransformPre<StoreState>,
        first: Slot,
    ) -> Arc<Loaded> {
        Arc::new(Loaded {
            engine,
            file,
            sha256,
            info,
            loaded_at: Utc::now(),
            pre,
            idle: Mutex::new(vec![first]),
        })
    }

    /// The first 12 hex digits of the sha256, as logs show it.
    pub(crate) fn short_sha(&self) -> &str {
        self.sha256.get(..12).unwrap_or(&self.sha256)
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Slot>> {
        // A poisoned pool only means another thread panicked between push and pop: the slots in
        // it are whole, so keep using them.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs the transform on `change` (with `settings` as its settings JSON) and checks the size
    /// of what it returns. Statement validation is the caller's (it knows the binding).
    pub(crate) fn call(&self, change: &Change, settings: &str) -> Result<Output, CallError> {
        let wit_change = change_to_wit(change, settings);
        let reused = self.idle().pop();
        let was_reused = reused.is_some();
        let slot = match reused {
            Some(slot) => slot,
            None => self.fresh()?,
        };
        match self.call_in(slot, &wit_change) {
            // Memory can be exhausted by what earlier calls left behind in a reused instance;
            // only a fresh instance tells whether this change itself is too big.
            Err(CallError::MemoryLimit) if was_reused => {
                let slot = self.fresh()?;
                self.call_in(slot, &wit_change)
            }
            other => other,
        }
    }

    fn fresh(&self) -> Result<Slot, CallError> {
        Slot::instantiate(&self.engine, &self.pre).map_err(|detail| CallError::Trap {
            detail: format!("instantiation failed: {detail}"),
        })
    }

    /// One call in `slot`; the slot goes back to the pool only if it is still sound.
    fn call_in(&self, mut slot: Slot, change: &WitChange) -> Result<Output, CallError> {
        let settings = &self.engine.settings;
        slot.arm(settings.deadline_ticks());
        slot.calls += 1;
        let result = slot.bindings.call_transform(&mut slot.store, change);
        match result {
            Ok(Ok(out)) => {
                let out = output_from_wit(out);
                check_size(&out, settings.max_statements, settings.max_output_bytes)?;
                self.give_back(slot);
                Ok(out)
            }
            Ok(Err(guest)) => {
                self.give_back(slot);
                Err(CallError::Guest(error_from_wit(guest)))
            }
            Err(e) => Err(classify(&e, slot.store.data().hit_limit)),
        }
    }

    fn give_back(&self, slot: Slot) {
        let settings = &self.engine.settings;
        if slot.calls >= settings.max_calls_per_instance {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < settings.pool_size {
            idle.push(slot);
        }
    }
}

/// Maps a failed call to its error: the epoch deadline, a denied growth, or a trap (a bug).
fn classify(e: &wasmtime::Error, hit_limit: bool) -> CallError {
    let trap = e.downcast_ref::<Trap>();
    if trap == Some(&Trap::Interrupt) {
        CallError::Timeout
    } else if hit_limit {
        CallError::MemoryLimit
    } else {
        CallError::Trap {
            detail: trap_detail(e, trap),
        }
    }
}

/// One line: the trap, then where (innermost function first), e.g.
/// "wasm `unreachable` instruction executed at <wasm function 41> < <wasm function 40> < ...".
fn trap_detail(e: &wasmtime::Error, trap: Option<&Trap>) -> String {
    let Some(trap) = trap else {
        return short(&format!("{e:#}"));
    };
    let frames: Vec<String> = e
        .downcast_ref::<WasmBacktrace>()
        .map(|bt| {
            bt.frames()
                .iter()
                .take(8)
                .map(|f| match f.func_name() {
                    Some(name) => name.to_string(),
                    None => format!("<wasm function {}>", f.func_index()),
                })
                .collect()
        })
        .unwrap_or_default();
    if frames.is_empty() {
        trap.to_string()
    } else {
        short(&format!("{trap} at {}", frames.join(" < ")))
    }
}

/// Refuses an output over the statement-count or byte caps.
pub(crate) fn check_size(
    out: &Output,
    max_statements: usize,
    max_bytes: usize,
) -> Result<(), CallError> {
    if out.statements.len() > max_statements {
        return Err(CallError::OutputTooLarge {
            detail: format!(
                "{} statements, the limit is {max_statements}",
                out.statements.len()
            ),
        });
    }
    let bytes: usize = out.row_key.len()
        + out
            .id_claims
            .iter()
            .map(|c| c.indice_key.len() + 8)
            .sum::<usize>()
        + out
            .statements
            .iter()
            .map(|s| s.sql.len() + s.params.iter().map(value_bytes).sum::<usize>())
            .sum::<usize>();
    if bytes > max_bytes {
        return Err(CallError::OutputTooLarge {
            detail: format!("{bytes} bytes of SQL and parameters, the limit is {max_bytes}"),
        });
    }
    Ok(())
}

fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Null => 1,
        Value::Int(_) | Value::Float(_) => 8,
        Value::Decimal(s)
        | Value::Text(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Timestamp(s)
        | Value::NewId(s) => s.len(),
        Value::Blob(b) => b.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Statement;

    fn out(n: usize, text: usize) -> Output {
        Output {
            row_key: "1".into(),
            statements: (0..n)
                .map(|_| Statement {
                    sql: "DELETE FROM T".into(),
                    params: vec![Value::Text("x".repeat(text))],
                })
                .collect(),
            id_claims: vec![],
        }
    }

    #[test]
    fn output_caps() {
        assert!(check_size(&out(10, 10), 10, 1_000).is_ok());
        assert!(matches!(
            check_size(&out(11, 10), 10, 1_000_000),
            Err(CallError::OutputTooLarge { .. })
        ));
        assert!(matches!(
            check_size(&out(2, 1_000), 10, 1_000),
            Err(CallError::OutputTooLarge { .. })
        ));
    }
}
