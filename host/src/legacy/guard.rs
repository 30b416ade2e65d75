//! `ponte unit-triggers guard|unguard` on one unit (blocking, Firebird 2.5 DDL). Guard saves the
//! trigger's source in PONTE_TRIGGER_SOURCE (committed first), then `ALTER TRIGGER name AS ...`
//! with the guarded body; unguard writes the saved text back and checks RDB$TRIGGER_SOURCE equals
//! it byte for byte. Both are idempotent, and a crash between the two steps converges on re-run.

use rsfbclient::prelude::*;
use rsfbclient::FbError;

use super::catalog::{trigger, triggers_on, UnitTrigger};
use super::rewrite::{guard_source, Refusal};
use super::targets::replicated;
use crate::config::Config;
use crate::firebird::{migrate_unit, FbConn, HOST_WRITE_FLAG};

/// What happened to one trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardOutcome {
    /// Rewritten now.
    Guarded,
    /// Already guarded by ponte: nothing done.
    AlreadyGuarded,
    /// Restored to its original source now.
    Restored,
    /// Not guarded: nothing to restore.
    NotGuarded,
    /// Left as it is, with the reason.
    Refused(String),
}

impl std::fmt::Display for GuardOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardOutcome::Guarded => write!(f, "guarded"),
            GuardOutcome::AlreadyGuarded => write!(f, "already guarded"),
            GuardOutcome::Restored => write!(f, "restored to its original source"),
            GuardOutcome::NotGuarded => write!(f, "not guarded; nothing to restore"),
            GuardOutcome::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

/// The saved copy of a guarded trigger: (original, guarded).
fn saved(conn: &mut FbConn, name: &str) -> Result<Option<(String, String)>, FbError> {
    conn.query_first(
        "SELECT ORIGINAL_SOURCE, GUARDED_SOURCE FROM PONTE_TRIGGER_SOURCE WHERE TRIGGER_NAME = ?",
        (name.to_string(),),
    )
}

/// Rewrites one trigger and raises the trigger epoch in the same transaction. The epoch row is
/// locked first, so this waits for the apply batch in flight (which locks it too), and a host
/// connection that prepared its statements before the commit reconnects before its next write:
/// a cached statement would run the old body (migrations/firebird/0004_trigger_epoch.sql).
fn alter(conn: &mut FbConn, name: &str, source: &str) -> Result<(), FbError> {
    let quoted = name.replace('"', "\"\"");
    conn.begin_transaction()?;
    let work = |conn: &mut FbConn| {
        conn.execute(
            "UPDATE OR INSERT INTO PONTE_TRIGGER_EPOCH (ID, EPOCH) VALUES (1, \
             COALESCE((SELECT MAX(EPOCH) FROM PONTE_TRIGGER_EPOCH), 0) + 1) MATCHING (ID)",
            (),
        )?;
        conn.execute(&format!("ALTER TRIGGER \"{quoted}\" {source}"), ())
    };
    match work(conn) {
        Ok(_) => conn.commit(),
        Err(e) => {
            let _ = conn.rollback();
            Err(e)
        }
    }
}

/// Guards one trigger (by RDB$ name).
pub fn guard_trigger(conn: &mut FbConn, name: &str) -> Result<GuardOutcome, FbError> {
    let Some(t) = trigger(conn, name)? else {
        return Ok(GuardOutcome::Refused(format!(
            "no user trigger {name} on a table of this database"
        )));
    };
    let current = t.source.clone();
    if let Some((_, guarded)) = saved(conn, name)? {
        if current.as_deref() == Some(guarded.as_str()) {
            return Ok(GuardOutcome::AlreadyGuarded);
        }
        // Changed since it was guarded (a vendor update re-created it, or a crash came between
        // saving and rewriting): its current text is the original now.
    }
    let text = match guard_source(current.as_deref(), HOST_WRITE_FLAG) {
        Ok(text) => text,
        Err(Refusal::AlreadyTestsFlag) => {
            return Ok(GuardOutcome::Refused(Refusal::AlreadyTestsFlag.to_string()))
        }
        Err(why) => return Ok(GuardOutcome::Refused(why.to_string())),
    };
    let original = current.unwrap_or_default();
    conn.execute(
        "UPDATE OR INSERT INTO PONTE_TRIGGER_SOURCE (TRIGGER_NAME, RELATION_NAME, \
         ORIGINAL_SOURCE, GUARDED_SOURCE, GUARDED_AT) VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP) \
         MATCHING (TRIGGER_NAME)",
        (t.name.clone(), t.relation.clone(), original, text.clone()),
    )?;
    if let Err(e) = alter(conn, &t.name, &text) {
        let _ = conn.execute(
            "DELETE FROM PONTE_TRIGGER_SOURCE WHERE TRIGGER_NAME = ?",
            (t.name.clone(),),
        );
        return Ok(GuardOutcome::Refused(format!(
            "the server refused the guarded body: {e}"
        )));
    }
    Ok(GuardOutcome::Guarded)
}

/// Restores one guarded trigger to its saved original, byte for byte.
pub fn unguard_trigger(conn: &mut FbConn, name: &str) -> Result<GuardOutcome, FbError> {
    let Some((original, guarded)) = saved(conn, name)? else {
        return Ok(GuardOutcome::NotGuarded);
    };
    let current = trigger(conn, name)?.and_then(|t| t.source);
    let forget = |conn: &mut FbConn| {
        conn.execute(
            "DELETE FROM PONTE_TRIGGER_SOURCE WHERE TRIGGER_NAME = ?",
            (name.to_string(),),
        )
    };
    if current.as_deref() == Some(original.as_str()) {
        forget(conn)?;
        return Ok(GuardOutcome::NotGuarded);
    }
    if current.as_deref() != Some(guarded.as_str()) {
        return Ok(GuardOutcome::Refused(
            "its source changed since ponte guarded it (a vendor update?); restoring the saved \
             original would undo that change. Compare RDB$TRIGGER_SOURCE with \
             PONTE_TRIGGER_SOURCE.ORIGINAL_SOURCE and delete the saved row when done"
                .into(),
        ));
    }
    alter(conn, name, &original)?;
    let after = trigger(conn, name)?.and_then(|t| t.source);
    if after.as_deref() != Some(original.as_str()) {
        return Err(FbError::Other(format!(
            "trigger {name}: the restored source differs from the saved original; the saved \
             copy is kept in PONTE_TRIGGER_SOURCE"
        )));
    }
    forget(conn)?;
    Ok(GuardOutcome::Restored)
}

/// The triggers `guard` acts on without `--trigger`: the active user triggers of every
/// replicated table.
pub fn replicated_triggers(
    conn: &mut FbConn,
    config: &Config,
    only_guard_policy: bool,
) -> Result<Vec<UnitTrigger>, FbError> {
    let mut out: Vec<UnitTrigger> = Vec::new();
    for r in replicated(config) {
        if only_guard_policy && !r.guard {
            continue;
        }
        for t in triggers_on(conn, &r.unit_table)? {
            if t.active && !out.iter().any(|o| o.name == t.name) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// Guards (or unguards) `names`, or every replicated table's triggers when empty; the host
/// schema is brought up to date first. Returns (trigger, outcome) per trigger.
pub fn run_unit(
    conn: &mut FbConn,
    config: &Config,
    names: &[String],
    guard: bool,
) -> Result<Vec<(String, GuardOutcome)>, FbError> {
    migrate_unit(conn)?;
    let names: Vec<String> = if names.is_empty() {
        replicated_triggers(conn, config, false)?
            .into_iter()
            .map(|t| t.name)
            .collect()
    } else {
        names.iter().map(|n| n.to_ascii_uppercase()).collect()
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let outcome = if guard {
            guard_trigger(conn, &name)?
        } else {
            unguard_trigger(conn, &name)?
        };
        out.push((name, outcome));
    }
    Ok(out)
}

/// `unit_triggers = "guard"`, applied by `ponte migrate` and `capture install`: guards the
/// active triggers of those tables that do not test the flag yet. A trigger that already tests
/// it is left alone silently; other refusals are returned.
pub fn apply_policy(
    conn: &mut FbConn,
    config: &Config,
) -> Result<Vec<(String, GuardOutcome)>, FbError> {
    let mut out = Vec::new();
    let any = config
        .tables
        .values()
        .any(|t| t.unit_triggers == Some(crate::config::UnitTriggers::Guard));
    if !any {
        return Ok(out);
    }
    for t in replicated_triggers(conn, config, true)? {
        match guard_trigger(conn, &t.name)? {
            GuardOutcome::Refused(why) if why == Refusal::AlreadyTestsFlag.to_string() => {}
            outcome => out.push((t.name, outcome)),
        }
    }
    Ok(out)
}
