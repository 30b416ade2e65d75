//! Unit tests of the generic transform upstream (Firebird row image -> PostgreSQL statements).

use super::*;
use ponte_transform_sdk::ErrorKind;
use serde_json::{json, Value as Json};

const CLIENTES: &str = include_str!("../examples/clientes.upstream.settings.json");

fn up(op: Op, payload: Json) -> Result<Output, TransformError> {
    Generic::transform(Change {
        table: "CLIENTES".into(),
        op,
        direction: Direction::Upstream,
        unit: 2,
        correlation_id: "c".into(),
        sequence: 1,
        payload: payload.to_string(),
        settings: CLIENTES.into(),
    })
}

#[test]
fn upsert_casts_every_parameter() {
    let out = up(
        Op::Update,
        json!({"ID": 2000000001, "NOME": "Conceição", "EMAIL": null,
        "CIDADE": "São Paulo", "ATIVO": "N", "LIMITE_CREDITO": "999999999999999.99",
        "DATA_NASCIMENTO": null, "REF_EXTERNA": null, "ATRIBUTOS": "{\"a\": [1]}",
        "ATUALIZADO_EM": "2026-11-23 10:15:30.1234"}),
    )
    .unwrap();
    assert_eq!(out.row_key, "2000000001");
    assert!(out.id_claims.is_empty());
    let s = &out.statements[0];
    assert_eq!(
        s.sql,
        "INSERT INTO customers (id, name, email, city, active, credit_limit, birth_date, external_ref, \
         attributes, updated_at) VALUES (CAST(? AS bigint), CAST(? AS text), CAST(? AS text), \
         CAST(? AS text), CAST(? AS boolean), CAST(? AS numeric(18,2)), CAST(? AS date), CAST(? AS uuid), \
         CAST(? AS jsonb), (CAST(? AS timestamp) AT TIME ZONE 'America/Sao_Paulo')) ON CONFLICT (id) DO \
         UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, city = EXCLUDED.city, active = \
         EXCLUDED.active, credit_limit = EXCLUDED.credit_limit, birth_date = EXCLUDED.birth_date, \
         external_ref = EXCLUDED.external_ref, attributes = EXCLUDED.attributes, updated_at = \
         EXCLUDED.updated_at"
    );
    assert_eq!(
        s.params,
        vec![
            Value::Int(2000000001),
            Value::Text("Conceição".into()),
            Value::Null,
            Value::Text("São Paulo".into()),
            Value::Text("false".into()),
            Value::Decimal("999999999999999.99".into()),
            Value::Null,
            Value::Null,
            Value::Text("{\"a\": [1]}".into()),
            Value::Timestamp("2026-11-23 10:15:30.1234".into()),
        ]
    );
}

#[test]
fn delete_by_key_and_refusals() {
    let del = up(Op::Delete, json!({"ID": "42"})).unwrap();
    assert_eq!(
        del.statements[0].sql,
        "DELETE FROM customers WHERE id = CAST(? AS bigint)"
    );
    assert_eq!(del.statements[0].params, vec![Value::Int(42)]);
    assert_eq!(del.row_key, "42");
    let row = json!({"ID": 1, "NOME": "x", "EMAIL": null, "CIDADE": null, "ATIVO": "?",
        "LIMITE_CREDITO": null, "DATA_NASCIMENTO": null, "REF_EXTERNA": null, "ATRIBUTOS": null});
    assert_eq!(
        up(Op::Insert, row.clone()).unwrap_err().kind,
        ErrorKind::InvalidValue
    );
    let mut long = row.clone();
    long["ATIVO"] = json!("S");
    long["CIDADE"] = json!("ã".repeat(61));
    assert_eq!(up(Op::Insert, long).unwrap_err().kind, ErrorKind::TooLong);
    let mut extra = row;
    extra["ATIVO"] = json!("S");
    extra["NOVA"] = json!(1);
    assert_eq!(
        up(Op::Insert, extra).unwrap_err().kind,
        ErrorKind::BadPayload
    );
    assert_eq!(
        up(Op::Delete, json!({"ID": null})).unwrap_err().kind,
        ErrorKind::BadPayload
    );
}

#[test]
fn smallint_booleans_and_key_only_tables() {
    let settings = r#"{"target": "flags", "key": ["id"], "columns": {
        "ID": {"column": "id", "type": "integer"}, "F": {"column": "f", "type": "bool_smallint"}}}"#;
    let change = |payload: Json| Change {
        table: "FLAGS".into(),
        op: Op::Insert,
        direction: Direction::Upstream,
        unit: 1,
        correlation_id: "c".into(),
        sequence: 1,
        payload: payload.to_string(),
        settings: settings.into(),
    };
    let out = Generic::transform(change(json!({"ID": 7, "F": 1}))).unwrap();
    assert_eq!(
        out.statements[0].params,
        vec![Value::Int(7), Value::Text("true".into())]
    );
    assert!(out.statements[0]
        .sql
        .contains("CAST(? AS integer), CAST(? AS boolean)"));
    assert_eq!(
        Generic::transform(change(json!({"ID": 7, "F": 2})))
            .unwrap_err()
            .kind,
        ErrorKind::InvalidValue
    );
    let only_key =
        r#"{"target": "k", "key": ["id"], "columns": {"ID": {"column": "id", "type": "bigint"}}}"#;
    let mut c = change(json!({"ID": 1}));
    c.settings = only_key.into();
    assert!(Generic::transform(c).unwrap().statements[0]
        .sql
        .ends_with("ON CONFLICT (id) DO NOTHING"));
}
