//! Loading a configuration: read, parse, environment overrides, validation.

use std::path::Path;

use super::*;

impl Config {
    /// Reads, parses, applies env overrides and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        config.apply_env(|k| std::env::var(k).ok());
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (no env, no validation).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })
    }

    /// Applies the secret overrides from the environment.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(v) = get("PONTE_POSTGRES_URL") {
            self.postgres.url = v;
        }
        if let Some(v) = get("PONTE_AMQP_URL") {
            self.amqp.url = v;
        }
        if let Some(v) = get("PONTE_FIREBIRD_USER") {
            self.firebird.user = v;
        }
        if let Some(v) = get("PONTE_FIREBIRD_PASSWORD") {
            self.firebird.password = v;
        }
    }

    /// Cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.units.database.contains("{id}") && self.units.ids.0.len() > 1 {
            return Err(ConfigError::Invalid(
                "[units] database must contain `{id}` when several units are configured".into(),
            ));
        }
        for key in self.units.databases.keys() {
            let ok = key.parse::<i32>().map(|id| self.units.ids.0.contains(&id));
            if ok != Ok(true) {
                return Err(ConfigError::Invalid(format!(
                    "[units.databases] key `{key}` is not a configured unit id"
                )));
            }
        }
        for (name, table) in &self.tables {
            if name.is_empty() || name.len() > 50 || name.contains('.') || name.contains('#') {
                return Err(ConfigError::Invalid(format!(
                    "[tables.{name}]: a table name is 1..50 characters without `.` or `#`"
                )));
            }
            if table.ops.0.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "[tables.{name}] ops is empty"
                )));
            }
            let target = table
                .settings
                .as_ref()
                .and_then(|s| s.get("target"))
                .and_then(|v| v.as_str());
            if let Some(target) = target.filter(|t| crate::model::is_own_table(t)) {
                return Err(ConfigError::Invalid(format!(
                    "[tables.{name}] settings.target: {}",
                    crate::model::own_table_refusal(target)
                )));
            }
            if table.unit_column.is_some() && table.unit_sql.is_some() {
                return Err(ConfigError::Invalid(format!(
                    "[tables.{name}]: set unit_column or unit_sql, not both"
                )));
            }
        }
        if self.relay.batch_size == 0 || self.apply.batch_size == 0 {
            return Err(ConfigError::Invalid(
                "batch sizes must be at least 1".into(),
            ));
        }
        if self.apply.batch_size > usize::from(self.amqp.prefetch) {
            return Err(ConfigError::Invalid(format!(
                "[apply] batch_size = {} is larger than [amqp] prefetch = {}: a batch could never fill \
                 (keep prefetch at about twice batch_size so the next batch arrives while one commits)",
                self.apply.batch_size, self.amqp.prefetch
            )));
        }
        self.upstream.validate(self)?;
        legacy::validate(self)?;
        outbox::validate(self)?;
        self.load.validate().map_err(ConfigError::Invalid)?;
        self.verify.validate().map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The configured units with their resolved databases.
    pub fn units(&self) -> Vec<Unit> {
        self.units
            .ids
            .0
            .iter()
            .map(|&id| Unit {
                id,
                database: self
                    .units
                    .databases
                    .get(&id.to_string())
                    .cloned()
                    .unwrap_or_else(|| self.units.database.replace("{id}", &id.to_string())),
            })
            .collect()
    }

    /// Whether `table`/`op` is whitelisted.
    pub fn allows(&self, table: &str, op: Op) -> bool {
        self.tables.get(table).is_some_and(|t| t.ops.allows(op))
    }

    /// The table's settings as JSON text ("{}" when none).
    pub fn table_settings_json(&self, table: &str) -> String {
        self.tables
            .get(table)
            .and_then(|t| t.settings.as_ref())
            .and_then(|s| serde_json::to_string(s).ok())
            .unwrap_or_else(|| "{}".into())
    }
}
