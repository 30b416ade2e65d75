//! Per-table settings for legacy unit schemas (docs/legacy.md): whether `ponte migrate` guards the
//! unit's own triggers on the table, and the generator that feeds the table's key at the units.

use serde::Deserialize;

use super::{Config, ConfigError};

/// What `ponte migrate` / `capture install` do with the unit's own triggers on a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitTriggers {
    /// Leave them as they are (default); `ponte doctor` reports the ones that fire on ponte's
    /// writes.
    Keep,
    /// Rewrite them so their body is skipped inside ponte's apply transactions (reversible with
    /// `ponte unit-triggers unguard`).
    Guard,
}

/// Whether `name` is a plain Firebird identifier ponte may put into SQL text (generators cannot
/// be parameters): letters, digits, `_` and `$`, starting with a letter, at most 31 bytes.
pub fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    first_ok && name.len() <= 31 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// The cross-field rules of the legacy settings of `[tables]`.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    for (name, table) in &config.tables {
        if let Some(generator) = &table.generator {
            if !is_plain_identifier(generator) {
                return Err(ConfigError::Invalid(format!(
                    "[tables.{name}] generator = {generator:?}: a generator is a plain \
                     identifier (letters, digits, `_`, `$`; at most 31 bytes), as RDB$GENERATORS \
                     spells it"
                )));
            }
            if crate::model::is_own_table(generator) || generator.starts_with("GEN_SYNC") {
                return Err(ConfigError::Invalid(format!(
                    "[tables.{name}] generator = {generator:?} is one of ponte's own generators"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_only() {
        assert!(is_plain_identifier("GEN_ITENS"));
        assert!(is_plain_identifier("G$1"));
        assert!(!is_plain_identifier("1GEN"));
        assert!(!is_plain_identifier("GEN ITENS"));
        assert!(!is_plain_identifier("GEN\"X"));
        assert!(!is_plain_identifier(&"G".repeat(32)));
    }
}
