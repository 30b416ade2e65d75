//! What `install` and `remove` change, worked out from what is installed (the triggers and
//! functions named `ponte_ob_*` and the `ponte_outbox_trigger` records) against what the config
//! generates; the statements of each step run in the caller's transaction.

use std::collections::BTreeMap;
use std::fmt;

use sqlx::PgConnection;

use super::body::{sha256_hex, Generated, PREFIX, VERSION};
use super::catalog::{quote_ident, quote_literal};
use super::OutboxCaptureError;

/// One installed `ponte_ob_*` trigger.
#[derive(Debug, Clone)]
struct Trigger {
    name: String,
    relation: String,
    tgtype: i16,
    enabled: String,
    plain: bool,
    /// (schema, name), unquoted.
    function: (String, String),
}

/// One recorded install.
#[derive(Debug, Clone)]
struct Record {
    relation: String,
    version: i32,
    sha256: String,
}

/// What is installed now.
#[derive(Debug, Clone, Default)]
pub struct Installed {
    triggers: Vec<Trigger>,
    /// (schema, name), unquoted -> body.
    functions: BTreeMap<(String, String), String>,
    /// By `[tables]` name.
    records: BTreeMap<String, Record>,
}

/// What happens to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Trigger and function created.
    Create,
    /// The function body was another one (an older version, or edited): replaced.
    Replace(String),
    /// The function was current; the trigger was missing, disabled or different: recreated.
    Retrigger(String),
    /// Already as generated.
    Unchanged,
    /// Trigger and function dropped (remove, or a table no longer trigger-captured).
    Drop(String),
    /// Nothing installed to remove.
    Absent,
}

/// One table's step: what and the statements.
#[derive(Debug, Clone)]
pub struct Step {
    /// The `[tables]` name.
    pub table: String,
    /// What happens.
    pub action: Action,
    /// A one-line description of the installed result (route, units) for reports.
    pub detail: String,
    /// The statements, in order (empty when unchanged).
    pub sql: Vec<String>,
}

impl Step {
    /// Whether the step changes the database.
    pub fn changes(&self) -> bool {
        !self.sql.is_empty()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Create => write!(f, "create"),
            Action::Replace(from) => write!(f, "replace {from}"),
            Action::Retrigger(why) => write!(f, "recreate the trigger ({why})"),
            Action::Unchanged => write!(f, "no change"),
            Action::Drop(why) => write!(f, "drop ({why})"),
            Action::Absent => write!(f, "nothing installed"),
        }
    }
}

impl Installed {
    /// Reads the installed state (call inside the install transaction, after its lock).
    pub async fn read(conn: &mut PgConnection) -> Result<Installed, OutboxCaptureError> {
        type Row = (String, String, i16, String, bool, String, String);
        let triggers: Vec<Row> = sqlx::query_as(
            "SELECT tg.tgname::text, quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
             tg.tgtype, tg.tgenabled::text, \
             (tg.tgqual IS NULL AND tg.tgattr::text = '' AND tg.tgnargs = 0), \
             pn.nspname::text, p.proname::text \
             FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_proc p ON p.oid = tg.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace \
             WHERE NOT tg.tgisinternal AND starts_with(tg.tgname::text, $1) ORDER BY 1, 2",
        )
        .bind(PREFIX)
        .fetch_all(&mut *conn)
        .await?;
        let functions: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT pn.nspname::text, p.proname::text, p.prosrc \
             FROM pg_proc p JOIN pg_namespace pn ON pn.oid = p.pronamespace \
             WHERE starts_with(p.proname::text, $1) AND p.pronargs = 0 \
             AND p.prorettype = 'trigger'::regtype",
        )
        .bind(PREFIX)
        .fetch_all(&mut *conn)
        .await?;
        let records: Vec<(String, String, i32, String)> = sqlx::query_as(
            "SELECT table_name::text, relation, version, body_sha256::text FROM ponte_outbox_trigger",
        )
        .fetch_all(&mut *conn)
        .await?;
        Ok(Installed {
            triggers: triggers
                .into_iter()
                .map(
                    |(name, relation, tgtype, enabled, plain, schema, function)| Trigger {
                        name,
                        relation,
                        tgtype,
                        enabled,
                        plain,
                        function: (schema, function),
                    },
                )
                .collect(),
            functions: functions
                .into_iter()
                .map(|(schema, name, body)| ((schema, name), body))
                .collect(),
            records: records
                .into_iter()
                .map(|(t, relation, version, sha256)| {
                    (
                        t,
                        Record {
                            relation,
                            version,
                            sha256,
                        },
                    )
                })
                .collect(),
        })
    }

    /// The `[tables]` names with something installed or recorded.
    pub fn tables(&self) -> Vec<String> {
        let mut names: Vec<String> = self.records.keys().cloned().collect();
        for t in &self.triggers {
            names.push(t.name.trim_start_matches(PREFIX).to_string());
        }
        for (_, name) in self.functions.keys() {
            names.push(name.trim_start_matches(PREFIX).to_string());
        }
        names.sort();
        names.dedup();
        names
    }

    /// The install step of one table.
    pub fn install_step(&self, table: &str, relation: &str, g: &Generated, detail: String) -> Step {
        let mut sql = Vec::new();
        let mine: Vec<&Trigger> = self
            .triggers
            .iter()
            .filter(|t| t.name == g.trigger)
            .collect();
        for t in mine.iter().filter(|t| t.relation != relation) {
            sql.push(format!(
                "DROP TRIGGER IF EXISTS {} ON {}",
                quote_ident(&t.name),
                t.relation
            ));
        }
        let record = self.records.get(table);
        let function = (g.schema.clone(), g.trigger.clone());
        let action = match self.functions.get(&function) {
            None => Action::Create,
            Some(body) if *body != g.body => {
                let found = sha256_hex(body);
                Action::Replace(match record {
                    Some(r) if r.sha256 == found => format!(
                        "version {} (body sha256 {}) with version {VERSION} (sha256 {})",
                        r.version,
                        &found[..12],
                        &g.sha256[..12]
                    ),
                    _ => format!(
                        "a body not written by this ponte (sha256 {}, edited or left by an \
                         older version) with version {VERSION} (sha256 {})",
                        &found[..12],
                        &g.sha256[..12]
                    ),
                })
            }
            Some(_) => Action::Unchanged,
        };
        if action != Action::Unchanged {
            sql.extend(g.function_sql.iter().cloned());
        }
        let here = mine.iter().find(|t| t.relation == relation);
        let trigger_issue = match here {
            None => Some("missing".to_string()),
            Some(t) if t.enabled != "O" => Some(format!("disabled (tgenabled {})", t.enabled)),
            Some(t) if t.tgtype != g.tgtype || !t.plain => Some("other events".to_string()),
            Some(t) if t.function != function => {
                Some(format!("runs {}.{}", t.function.0, t.function.1))
            }
            Some(_) => None,
        };
        let action = match (action, &trigger_issue) {
            (Action::Unchanged, Some(why)) if here.is_some() => Action::Retrigger(why.clone()),
            (Action::Unchanged, Some(_)) => Action::Retrigger("missing".into()),
            (Action::Unchanged, None) if sql.is_empty() => Action::Unchanged,
            (Action::Unchanged, None) => Action::Retrigger("moved to the configured table".into()),
            (other, _) => other,
        };
        if trigger_issue.is_some() || action != Action::Unchanged {
            sql.extend(g.trigger_sql.iter().cloned());
        }
        let recorded = record.is_some_and(|r| {
            r.relation == relation && r.version == VERSION && r.sha256 == g.sha256
        });
        if !sql.is_empty() || !recorded {
            sql.push(format!(
                "INSERT INTO ponte_outbox_trigger (table_name, relation, trigger_name, \
                 function_name, version, body_sha256) VALUES ({}, {}, {}, {}, {VERSION}, '{}') \
                 ON CONFLICT (table_name) DO UPDATE SET relation = EXCLUDED.relation, \
                 trigger_name = EXCLUDED.trigger_name, function_name = EXCLUDED.function_name, \
                 version = EXCLUDED.version, body_sha256 = EXCLUDED.body_sha256, \
                 installed_at = now()",
                quote_literal(table),
                quote_literal(relation),
                quote_literal(&g.trigger),
                quote_literal(&g.function),
                g.sha256
            ));
        }
        Step {
            table: table.to_string(),
            action,
            detail,
            sql,
        }
    }

    /// The removal of one table's trigger, function and record (its data and outbox rows stay).
    pub fn remove_step(&self, table: &str, why: &str) -> Step {
        let trigger = format!("{PREFIX}{table}");
        let mut sql: Vec<String> = self
            .triggers
            .iter()
            .filter(|t| t.name == trigger)
            .map(|t| {
                format!(
                    "DROP TRIGGER IF EXISTS {} ON {}",
                    quote_ident(&t.name),
                    t.relation
                )
            })
            .collect();
        for (schema, name) in self.functions.keys() {
            if *name == trigger {
                sql.push(format!(
                    "DROP FUNCTION IF EXISTS {}.{}()",
                    quote_ident(schema),
                    quote_ident(name)
                ));
            }
        }
        if self.records.contains_key(table) {
            sql.push(format!(
                "DELETE FROM ponte_outbox_trigger WHERE table_name = {}",
                quote_literal(table)
            ));
        }
        let action = if sql.is_empty() {
            Action::Absent
        } else {
            Action::Drop(why.to_string())
        };
        Step {
            table: table.to_string(),
            action,
            detail: String::new(),
            sql,
        }
    }
}
