//! The `[upstream]` section: Firebird -> PostgreSQL capture, the PG applier, and per-table bindings
//! keyed by the Firebird table (conflict policy, fan-out, the PG key). Format: docs/upstream.md.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Config, ConfigError};

/// Capture and PG applier tuning, and the tables that flow upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// SYNC_LOG rows read and published per round, per unit.
    pub batch_size: u32,
    /// How often an idle capture publisher looks at its unit's SYNC_LOG, in milliseconds.
    pub poll_interval_ms: u64,
    /// IANA zone of the units' clocks (Firebird 2.5 TIMESTAMP has no zone); used to compare a
    /// unit's change time with PostgreSQL's for `last_writer_wins`.
    pub unit_timezone: String,
    /// Messages the PG applier may hold unacked.
    pub prefetch: u16,
    /// A foreign-key failure in PostgreSQL is retried this long before dead-lettering, in seconds.
    pub fk_retry_secs: u64,
    /// ponte_inbox and ponte_upstream_row rows older than this are pruned, in days.
    pub inbox_retention_days: u32,
    /// Tables captured at the units, keyed by the Firebird table name (upper case).
    pub tables: BTreeMap<String, UpstreamTable>,
}

/// What happens when a unit changed a row on top of a state PostgreSQL has since changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// The unit's change is dropped; PostgreSQL's newer change is already on its way to the unit.
    PgWins,
    /// The newer of the unit's change time and the PG row's `version_column` wins.
    LastWriterWins,
    /// The unit's change is parked in `ponte_conflict` for an operator; PostgreSQL keeps its state.
    Manual,
}

impl ConflictPolicy {
    /// The label and ledger word.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::PgWins => "pg_wins",
            ConflictPolicy::LastWriterWins => "last_writer_wins",
            ConflictPolicy::Manual => "manual",
        }
    }
}

/// Which other units receive a change that came from one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fanout {
    /// Nobody: the table lives only at its unit and in PostgreSQL.
    None,
    /// Every other configured unit (never the origin).
    All,
}

/// One Firebird table captured at the units.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTable {
    /// The PostgreSQL table the changes are applied to (lower case, optionally `schema.table`).
    pub pg_table: String,
    /// The `[tables]` entry (downstream) whose changes write this Firebird table; its ledger rows
    /// give each captured change its base version, and fan-out uses it. Default: `pg_table`.
    #[serde(default)]
    pub downstream_table: Option<String>,
    /// PostgreSQL key columns, in the order of the transform's row key ("v1|v2").
    pub key: Vec<String>,
    /// Transform by name or file stem; default: the one declaring the Firebird table.
    #[serde(default)]
    pub transform: Option<String>,
    /// Settings handed to the transform (for `generic`: `target` = `pg_table`, columns keyed by
    /// Firebird column).
    #[serde(default)]
    pub settings: Option<toml::Table>,
    /// Conflict policy; default `pg_wins`.
    #[serde(default = "default_conflict")]
    pub conflict: ConflictPolicy,
    /// For `last_writer_wins`: the PG `timestamptz` column that says when the row last changed;
    /// the applier stamps it with the unit's change time.
    #[serde(default)]
    pub version_column: Option<String>,
    /// Hub fan-out to the other units; default `none`.
    #[serde(default = "default_fanout")]
    pub fanout: Fanout,
    /// INDICE key of this table's ids (for the id ranges); default: the Firebird table name.
    #[serde(default)]
    pub indice_key: Option<String>,
    /// How the unit's changes are found: `trigger` (default, a SYNC$ trigger logs each write) or
    /// `periodic` (no trigger: a round every `every` compares row fingerprints, docs/upstream.md).
    #[serde(default)]
    pub capture: UnitCapture,
    /// `capture = "periodic"`: how often a round runs ("30s", "5m").
    #[serde(default, deserialize_with = "super::lifecycle::every")]
    pub every: Option<std::time::Duration>,
    /// `capture = "periodic"`: a unit TIMESTAMP column the legacy application sets when it writes
    /// a row; its value becomes the change time (else the time the round found the change).
    #[serde(default)]
    pub change_column: Option<String>,
}

/// How a unit table's changes are captured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitCapture {
    /// A generated trigger logs every write in its transaction.
    #[default]
    Trigger,
    /// No trigger: rounds compare every row's fingerprint with the last one captured.
    Periodic,
}

fn default_conflict() -> ConflictPolicy {
    ConflictPolicy::PgWins
}

fn default_fanout() -> Fanout {
    Fanout::None
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            batch_size: 200,
            poll_interval_ms: 200,
            unit_timezone: "UTC".into(),
            prefetch: 100,
            fk_retry_secs: 60,
            inbox_retention_days: 30,
            tables: BTreeMap::new(),
        }
    }
}

impl UpstreamTable {
    /// The downstream table name (outbox `table_name`, SYNC_ROW_VERSION `TABLE_NAME`).
    pub fn downstream(&self) -> &str {
        self.downstream_table.as_deref().unwrap_or(&self.pg_table)
    }

    /// The settings as JSON text ("{}" when none).
    pub fn settings_json(&self) -> String {
        self.settings
            .as_ref()
            .and_then(|s| serde_json::to_string(s).ok())
            .unwrap_or_else(|| "{}".into())
    }
}

/// A plain SQL identifier (letters, digits, `_`, `$`; starts with a letter or `_`).
pub(crate) fn plain_ident(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && name.len() <= 63
}

impl UpstreamConfig {
    /// Cross-field rules of the section.
    pub(crate) fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.batch_size == 0 || self.poll_interval_ms == 0 || self.prefetch == 0 {
            return bad(
                "[upstream] batch_size, poll_interval_ms and prefetch must be at least 1".into(),
            );
        }
        for (name, t) in &self.tables {
            let at = format!("[upstream.tables.{name}]");
            let target = t
                .settings
                .as_ref()
                .and_then(|s| s.get("target"))
                .and_then(|v| v.as_str());
            for table in [Some(t.pg_table.as_str()), target].into_iter().flatten() {
                if crate::model::is_own_table(table) {
                    return bad(format!("{at}: {}", crate::model::own_table_refusal(table)));
                }
            }
            // Firebird identifiers: the trigger and queries name the table unquoted.
            if name.len() > 26 || !plain_ident(name) || name.to_uppercase() != *name {
                return bad(format!("{at}: the Firebird table name must be an upper-case identifier of at most 26 characters (trigger SYNC$<table>)"));
            }
            let pg_ok =
                t.pg_table.split('.').all(plain_ident) && t.pg_table.to_lowercase() == t.pg_table;
            if !pg_ok {
                return bad(format!(
                    "{at} pg_table `{}` must be a lower-case identifier (schema.table allowed)",
                    t.pg_table
                ));
            }
            if t.key.is_empty()
                || !t
                    .key
                    .iter()
                    .all(|k| plain_ident(k) && k.to_lowercase() == *k)
            {
                return bad(format!(
                    "{at} key must list the lower-case PostgreSQL key column(s)"
                ));
            }
            match (&t.version_column, t.conflict) {
                (None, ConflictPolicy::LastWriterWins) => {
                    return bad(format!(
                        "{at}: conflict = \"last_writer_wins\" needs version_column"
                    ));
                }
                (Some(v), _) if !plain_ident(v) => {
                    return bad(format!(
                        "{at} version_column `{v}` is not a plain identifier"
                    ));
                }
                _ => {}
            }
            validate_capture(t).map_err(|m| ConfigError::Invalid(format!("{at}: {m}")))?;
            if config.tables.contains_key(name) {
                return bad(format!("{at}: `{name}` is also a [tables] entry; transform bindings share one namespace"));
            }
            if t.fanout == Fanout::All && !config.tables.contains_key(t.downstream()) {
                return bad(format!(
                    "{at}: fanout = \"all\" sends through [tables.{}], which is not configured",
                    t.downstream()
                ));
            }
        }
        if let Some(block) = config.units.id_block {
            let top = config.units.ids.0.last().copied().unwrap_or(0);
            if block < 1 || block.checked_mul(i64::from(top) + 1).is_none() {
                return bad("[units] id_block must be positive and (max unit + 1) * id_block must fit BIGINT".into());
            }
        }
        Ok(())
    }
}

/// `every` and `change_column` belong to `capture = "periodic"`, which needs `every`.
fn validate_capture(t: &UpstreamTable) -> Result<(), String> {
    if t.capture == UnitCapture::Trigger {
        if t.every.is_some() || t.change_column.is_some() {
            return Err("every and change_column belong to capture = \"periodic\"".into());
        }
        return Ok(());
    }
    match t.every {
        None => Err("capture = \"periodic\" needs every = \"5m\" (how often a round runs)".into()),
        Some(d) if d < std::time::Duration::from_secs(1) => {
            Err("capture = \"periodic\": every must be at least 1s".into())
        }
        _ => match &t.change_column {
            Some(c) if !plain_ident(c) || c.to_uppercase() != *c => Err(format!(
                "change_column `{c}` must be an upper-case Firebird column name"
            )),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConflictPolicy, Fanout};

    const BASE: &str = r#"
[postgres]
url = "postgres://postgres@127.0.0.1/ponte"
[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
[units]
ids = "1-3"
database = "127.0.0.1:/var/lib/ponte/unit_{id}.fdb"
id_block = 1000000000
[firebird]
password = "masterkey"
[transforms]
dir = "var/transforms"
[tables.customers]
transform = "customers"
"#;

    fn parse(extra: &str) -> Result<Config, String> {
        let c = Config::parse(&format!("{BASE}{extra}")).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn upstream_tables_parse_with_defaults() {
        let c = parse(
            "[upstream.tables.CLIENTES]\npg_table = \"customers\"\nkey = [\"id\"]\nconflict = \"last_writer_wins\"\n\
             version_column = \"updated_at\"\nfanout = \"all\"\nsettings = { target = \"customers\" }\n",
        )
        .unwrap();
        let t = &c.upstream.tables["CLIENTES"];
        assert_eq!(
            (t.conflict, t.fanout, t.downstream()),
            (ConflictPolicy::LastWriterWins, Fanout::All, "customers")
        );
        assert_eq!(t.settings_json(), r#"{"target":"customers"}"#);
        assert_eq!(c.units.id_range(2), Some((2_000_000_000, 3_000_000_000)));
        assert_eq!(c.upstream.poll_interval_ms, 200);
        let plain =
            parse("[upstream.tables.PRODUTOS]\npg_table = \"products\"\nkey = [\"id\"]\n").unwrap();
        assert_eq!(
            plain.upstream.tables["PRODUTOS"].conflict,
            ConflictPolicy::PgWins
        );
        assert_eq!(plain.upstream.tables["PRODUTOS"].fanout, Fanout::None);
    }

    #[test]
    fn upstream_rules_are_enforced() {
        let t = "[upstream.tables.CLIENTES]\npg_table = \"customers\"\nkey = [\"id\"]\n";
        let lww = format!("{t}conflict = \"last_writer_wins\"\n");
        assert!(parse(&lww).unwrap_err().contains("version_column"));
        assert!(
            parse(&format!("{t}fanout = \"all\"\ndownstream_table = \"x\"\n"))
                .unwrap_err()
                .contains("[tables.x]")
        );
        assert!(parse(&t.replace("CLIENTES", "clientes"))
            .unwrap_err()
            .contains("upper-case"));
        assert!(parse(&t.replace("\"customers\"", "\"Customers\""))
            .unwrap_err()
            .contains("pg_table"));
        assert!(parse(&format!("{t}conflict = \"coin_flip\"\n"))
            .unwrap_err()
            .contains("unknown variant"));
        assert!(parse(&format!("{t}colour = 1\n"))
            .unwrap_err()
            .contains("unknown field"));
        assert!(parse(&t.replace("CLIENTES", "customers")).is_err());
        let periodic = format!("{t}capture = \"periodic\"\n");
        assert!(parse(&periodic).unwrap_err().contains("needs every"));
        assert!(parse(&format!("{t}every = \"5m\"\n"))
            .unwrap_err()
            .contains("belong to capture"));
        assert!(parse(&format!(
            "{periodic}every = \"5m\"\nchange_column = \"x\"\n"
        ))
        .unwrap_err()
        .contains("upper-case"));
        let ok = parse(&format!(
            "{periodic}every = \"5m\"\nchange_column = \"ALTERADO\"\n"
        ))
        .unwrap();
        assert_eq!(
            ok.upstream.tables["CLIENTES"].every,
            Some(std::time::Duration::from_secs(300))
        );
    }
}
