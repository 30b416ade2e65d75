//! No transform, generic settings or upstream binding may touch ponte's own tables (the ledger,
//! the row versions, the capture log and info, INDICE outside the host's placeholder, the schema
//! version, the outbox, the inbox, any `ponte_*` table): a component that declares them is
//! refused at load, and a configuration that points a generic target at one is refused at start,
//! each with a reason that names the table.

use std::path::Path;

use ponte::config::Config;
use ponte::transform::{EngineSettings, TableBinding, TransformRegistry};

const COMPONENTS: &str = env!("PONTE_TEST_TRANSFORMS_DIR");

/// The tables the hostile component declares (and writes).
const OWN: &[&str] = &[
    "SYNC_CONTROL",
    "SYNC_ROW_VERSION",
    "SYNC_LOG",
    "SYNC_CAPTURE_INFO",
    "INDICE",
    "PONTE_SCHEMA_VERSION",
    "pg_sync_outbox",
    "ponte_inbox",
];

#[test]
fn a_component_declaring_ponte_tables_is_refused_at_load() {
    let dir = std::env::temp_dir().join(format!("ponte-own-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let from = Path::new(COMPONENTS).join("hostile_own_tables.wasm");
    assert!(from.is_file(), "{} was not built", from.display());
    std::fs::copy(&from, dir.join("hostile_own_tables.wasm")).unwrap();
    let metrics = ponte::telemetry::Metrics::new().unwrap();
    let binding = TableBinding {
        table: "hostile_own_tables".into(),
        transform: None,
        settings_json: "{}".into(),
    };
    let registry = TransformRegistry::load(
        EngineSettings::default(),
        &dir,
        vec![binding],
        &metrics.registry,
    )
    .unwrap();
    let status = registry.status();
    assert!(
        status.loaded.is_empty(),
        "a component writing ponte's tables was loaded"
    );
    assert_eq!(status.refused.len(), 1, "{status:?}");
    let reason = &status.refused[0].reason;
    for table in OWN {
        assert!(
            reason.contains(table),
            "the reason does not name {table}: {reason}"
        );
    }
    assert!(registry.pin("hostile_own_tables").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn config_with(tables: &str) -> String {
    format!(
        "[postgres]\nurl='postgres://x'\n[amqp]\nurl='amqp://x'\n[firebird]\npassword='x'\n\
         [units]\nids='1'\ndatabase='127.0.0.1:/u.fdb'\n[transforms]\ndir='/tmp'\n{tables}"
    )
}

#[test]
fn a_generic_target_on_a_ponte_table_is_refused_at_start() {
    for target in [
        "SYNC_CONTROL",
        "sync_row_version",
        "SYNC_LOG",
        "SYNC_CAPTURE_INFO",
        "INDICE",
        "PONTE_TRIGGER_GUARD",
        "\"SYNC_CONTROL\"",
    ] {
        let text = config_with(&format!(
            "[tables.evil]\ntransform = 'generic'\nsettings = {{ target = '{target}', key = ['ID'] }}\n"
        ));
        let err = Config::parse(&text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        let bare = target.trim_matches('"').to_ascii_uppercase();
        assert!(
            err.contains("[tables.evil]") && err.to_ascii_uppercase().contains(&bare),
            "target {target}: {err}"
        );
    }
}

#[test]
fn an_upstream_binding_on_a_ponte_table_is_refused_at_start() {
    for pg_table in [
        "pg_sync_outbox",
        "public.pg_sync_outbox",
        "ponte_inbox",
        "ponte_unit_lease",
    ] {
        let text = config_with(&format!(
            "[upstream.tables.CLIENTES]\npg_table = '{pg_table}'\nkey = ['id']\n\
             transform = 'generic'\n"
        ));
        let err = match Config::parse(&text) {
            Ok(config) => config.validate().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(pg_table.rsplit('.').next().unwrap()),
            "{pg_table}: {err}"
        );
        assert!(err.contains("ponte's own"), "{pg_table}: {err}");
    }
}
