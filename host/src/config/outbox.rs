//! `[tables.T] outbox` (or `capture`): who writes a table's `pg_sync_outbox` rows.
//! `application` (the default): the application, in its own transaction. `trigger`: the triggers
//! `ponte outbox install` creates. `periodic`: a sync round every `every` (docs/capture.md). The
//! rows go to the units `unit_column` / `unit_sql` name, or to every configured unit when neither
//! is set. The checks that need PostgreSQL's catalog (the table, its primary key, the routing
//! column) are in `outbox_capture::check` and `periodic::resolve`.

use serde::Deserialize;

use super::{Config, ConfigError};

/// Who writes the outbox rows of a table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxCapture {
    /// The application writes them in its transaction (default).
    #[default]
    Application,
    /// ponte-installed PostgreSQL triggers write them (`ponte outbox install`).
    Trigger,
    /// `ponte run` writes them in a sync round every `every` (no trigger, no application change).
    Periodic,
}

impl OutboxCapture {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxCapture::Application => "application",
            OutboxCapture::Trigger => "trigger",
            OutboxCapture::Periodic => "periodic",
        }
    }
}

/// The names of the tables whose outbox rows the triggers write, in config order.
pub fn trigger_tables(config: &Config) -> Vec<&str> {
    config
        .tables
        .iter()
        .filter(|(_, t)| t.outbox == OutboxCapture::Trigger)
        .map(|(n, _)| n.as_str())
        .collect()
}

/// The names of the tables the periodic sync captures, in config order.
pub fn periodic_tables(config: &Config) -> Vec<&str> {
    config
        .tables
        .iter()
        .filter(|(_, t)| t.outbox == OutboxCapture::Periodic)
        .map(|(n, _)| n.as_str())
        .collect()
}

/// The rules that need no database.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    for (name, table) in &config.tables {
        validate_periodic(name, table)?;
        if table.outbox != OutboxCapture::Trigger {
            continue;
        }
        let bad = |m: String| {
            Err(ConfigError::Invalid(format!(
                "[tables.{name}] outbox = \"trigger\": {m}"
            )))
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return bad(format!(
                "the table name `{name}` names the trigger and its function (ponte_ob_{name}); \
                 use letters, digits and `_` (set pg_table for the PostgreSQL name)"
            ));
        }
        let pg = table.pg_table(name);
        if crate::model::is_own_table(pg) {
            return bad(crate::model::own_table_refusal(pg));
        }
        if let Some(column) = &table.unit_column {
            if column.is_empty() || column.contains('"') {
                return bad(format!("unit_column {column:?} is not a column name"));
            }
        }
        if let Some(sql) = &table.unit_sql {
            if sql.contains("$ponte$") || sql.contains(';') {
                return bad(format!(
                    "unit_sql {sql:?} must be one scalar expression (no `;`)"
                ));
            }
        }
    }
    Ok(())
}

/// `every`, `change_column` and `lookback` belong to `outbox = "periodic"` and it needs `every`.
fn validate_periodic(name: &str, table: &super::TableConfig) -> Result<(), ConfigError> {
    let bad = |m: String| Err(ConfigError::Invalid(format!("[tables.{name}] {m}")));
    if table.outbox != OutboxCapture::Periodic {
        for (key, set) in [
            ("every", table.every.is_some()),
            ("change_column", table.change_column.is_some()),
            ("lookback", table.lookback.is_some()),
        ] {
            if set {
                return bad(format!(
                    "{key} is a setting of outbox = \"periodic\" (this table's outbox is \"{}\")",
                    table.outbox.as_str()
                ));
            }
        }
        return Ok(());
    }
    match table.every {
        None => {
            return bad(
                "outbox = \"periodic\" needs every = \"5m\" (how often a sync round runs)".into(),
            )
        }
        Some(d) if d < std::time::Duration::from_secs(1) => {
            return bad("outbox = \"periodic\": every must be at least 1s".into())
        }
        Some(_) => {}
    }
    if let Some(column) = &table.change_column {
        if column.is_empty() || column.contains('"') {
            return bad(format!("change_column {column:?} is not a column name"));
        }
    } else if table.lookback.is_some() {
        return bad("lookback needs change_column (without it every round reads every row)".into());
    }
    if let Some(sql) = &table.unit_sql {
        if sql.contains(';') {
            return bad(format!(
                "unit_sql {sql:?} must be one scalar expression (no `;`)"
            ));
        }
    }
    let pg = table.pg_table(name);
    if crate::model::is_own_table(pg) {
        return bad(format!(
            "outbox = \"periodic\": {}",
            crate::model::own_table_refusal(pg)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, OutboxCapture};

    const BASE: &str = r#"
[postgres]
url = "postgres://postgres@127.0.0.1/ponte"
[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
[units]
ids = "1-3"
database = "127.0.0.1:/var/lib/ponte/unit_{id}.fdb"
[firebird]
password = "masterkey"
[transforms]
dir = "var/transforms"
"#;

    fn parse(extra: &str) -> Result<Config, String> {
        let c = Config::parse(&format!("{BASE}{extra}")).map_err(|e| e.to_string())?;
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn outbox_defaults_to_the_application() {
        let c = parse("[tables.customers]\n[tables.orders]\noutbox = \"trigger\"\nunit_column = \"unit_id\"\n")
            .unwrap();
        assert_eq!(c.tables["customers"].outbox, OutboxCapture::Application);
        assert_eq!(c.tables["orders"].outbox, OutboxCapture::Trigger);
        assert_eq!(super::trigger_tables(&c), vec!["orders"]);
    }

    #[test]
    fn periodic_needs_every_and_owns_its_settings() {
        let c = parse(
            "[tables.products]\ncapture = \"periodic\"\nevery = \"5m\"\nchange_column = \"changed_at\"\n",
        )
        .unwrap();
        let t = &c.tables["products"];
        assert_eq!(t.outbox, OutboxCapture::Periodic);
        assert_eq!(t.every, Some(std::time::Duration::from_secs(300)));
        assert_eq!(super::periodic_tables(&c), vec!["products"]);
        let err = parse("[tables.products]\noutbox = \"periodic\"\n").unwrap_err();
        assert!(
            err.contains("[tables.products]") && err.contains("every"),
            "{err}"
        );
        let err = parse("[tables.products]\nevery = \"5m\"\n").unwrap_err();
        assert!(err.contains("setting of outbox = \"periodic\""), "{err}");
        let err = parse("[tables.p]\noutbox = \"periodic\"\nevery = \"5 min\"\n").unwrap_err();
        assert!(err.contains("5 min"), "{err}");
        let err = parse("[tables.p]\noutbox = \"periodic\"\nevery = \"1m\"\nlookback = \"2s\"\n")
            .unwrap_err();
        assert!(err.contains("lookback needs change_column"), "{err}");
    }

    #[test]
    fn bad_trigger_settings_name_the_table() {
        let err = parse("[tables.orders]\noutbox = \"triggers\"\n").unwrap_err();
        assert!(err.contains("unknown variant `triggers`"), "{err}");
        let err = parse("[tables.\"or-ders\"]\noutbox = \"trigger\"\n").unwrap_err();
        assert!(
            err.contains("[tables.or-ders]") && err.contains("pg_table"),
            "{err}"
        );
        let err =
            parse("[tables.x]\noutbox = \"trigger\"\npg_table = \"pg_sync_outbox\"\n").unwrap_err();
        assert!(err.contains("ponte's own tables"), "{err}");
        let err = parse("[tables.x]\noutbox = \"trigger\"\nunit_sql = \"1; DROP TABLE x\"\n")
            .unwrap_err();
        assert!(
            err.contains("[tables.x]") && err.contains("unit_sql"),
            "{err}"
        );
    }
}
