//! ponte's own tables, on both sides: the ledger, the row versions, the capture log and its info,
//! INDICE (written only through the host's `new-id` placeholder and id claims), the schema version
//! and every other `PONTE_*` table at a unit; the outbox and every `ponte_*` table in PostgreSQL.
//! No transform, generic setting or upstream binding may touch one of them.

/// Unit-side tables by exact name (compared case-insensitively).
const UNIT_TABLES: &[&str] = &[
    "SYNC_CONTROL",
    "SYNC_ROW_VERSION",
    "SYNC_LOG",
    "SYNC_CAPTURE_INFO",
    "SYNC_PERIODIC",
    "SYNC_PERIODIC_TABLE",
    "INDICE",
];

/// Whether `name` (a bare or `schema.`-qualified table name, quotes allowed) is one of ponte's
/// own tables.
pub fn is_own_table(name: &str) -> bool {
    let last = name
        .rsplit('.')
        .next()
        .unwrap_or(name)
        .trim()
        .trim_matches('"');
    let upper = last.to_ascii_uppercase();
    UNIT_TABLES.contains(&upper.as_str())
        || upper.starts_with("PONTE_")
        || upper == "PG_SYNC_OUTBOX"
}

/// The sentence every refusal uses.
pub fn own_table_refusal(name: &str) -> String {
    format!(
        "`{name}` is one of ponte's own tables (ledger, row versions, capture log, INDICE, \
         outbox, ponte_*): no transform may write it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_tables_are_known_on_both_sides_in_any_case() {
        for name in [
            "SYNC_CONTROL",
            "sync_row_version",
            "\"SYNC_LOG\"",
            "SYNC_CAPTURE_INFO",
            "Indice",
            "PONTE_SCHEMA_VERSION",
            "PONTE_TRIGGER_GUARD",
            "pg_sync_outbox",
            "public.pg_sync_outbox",
            "ponte_inbox",
            "ponte_unit_lease",
        ] {
            assert!(is_own_table(name), "{name}");
        }
        for name in [
            "CLIENTES",
            "customers",
            "public.orders",
            "SYNC_CONTROLE",
            "INDICES",
        ] {
            assert!(!is_own_table(name), "{name}");
        }
    }
}
