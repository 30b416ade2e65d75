//! Config parsing and validation tests.

use super::*;

const MINIMAL: &str = r#"
[postgres]
url = "postgres://postgres@127.0.0.1/ponte"
[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
[firebird]
password = "masterkey"
[units]
ids = "1-3,7"
database = "127.0.0.1:/var/lib/ponte/units/unit_{id}.fdb"
databases = { "7" = "10.0.0.7:/data/loja.fdb" }
[transforms]
dir = "var/transforms"
[tables.customers]
ops = "IU"
settings = { timezone = "America/Sao_Paulo" }
"#;

#[test]
fn parses_units_tables_and_defaults() {
    let c = Config::parse(MINIMAL).unwrap();
    c.validate().unwrap();
    let units = c.units();
    assert_eq!(
        units.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![1, 2, 3, 7]
    );
    assert_eq!(
        units[1].database,
        "127.0.0.1:/var/lib/ponte/units/unit_2.fdb"
    );
    assert_eq!(units[3].database, "10.0.0.7:/data/loja.fdb");
    assert!(c.allows("customers", Op::Update));
    assert!(!c.allows("customers", Op::Delete));
    assert!(!c.allows("orders", Op::Insert));
    assert_eq!(
        c.table_settings_json("customers"),
        r#"{"timezone":"America/Sao_Paulo"}"#
    );
    assert_eq!(c.relay.batch_size, 500);
    assert_eq!(c.amqp.unit_queue(7), "pax.unit.7");
}

#[test]
fn an_apply_batch_larger_than_the_prefetch_is_refused() {
    let text = format!("{MINIMAL}\n[apply]\nbatch_size = 2000\n");
    let err = Config::parse(&text)
        .and_then(|c| c.validate())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch_size = 2000") && err.contains("prefetch = 1000"),
        "{err}"
    );
}

#[test]
fn bad_op_reports_the_line() {
    let text = MINIMAL.replace("ops = \"IU\"", "ops = \"IX\"");
    let err = Config::parse(&text).unwrap_err().to_string();
    assert!(err.contains("operation `X`"), "{err}");
    assert!(err.contains("line 15"), "{err}");
}

#[test]
fn unknown_field_reports_the_line() {
    let text = MINIMAL.replace("[transforms]", "[transforms]\ndirr = 1");
    let err = Config::parse(&text).unwrap_err().to_string();
    assert!(err.contains("dirr") && err.contains("line 13"), "{err}");
}

#[test]
fn bad_ids_and_overrides_are_refused() {
    assert!(IdList::parse("3-1").is_err());
    assert!(IdList::parse("a").is_err());
    assert!(IdList::parse("").is_err());
    let text = MINIMAL.replace("\"7\" = ", "\"8\" = ");
    let c = Config::parse(&text).unwrap();
    assert!(c.validate().unwrap_err().to_string().contains("`8`"));
}

#[test]
fn env_overrides_secrets() {
    let mut c = Config::parse(MINIMAL).unwrap();
    c.apply_env(|k| (k == "PONTE_FIREBIRD_PASSWORD").then(|| "s3cret".to_string()));
    assert_eq!(c.firebird.password, "s3cret");
}
