//! Unit tests of the generic transform: the documented products example, every column type,
//! the missing/unmapped policies and the settings errors.

use super::*;
use ponte_transform_sdk::{ErrorKind, IdClaim};
use serde_json::{json, Value as Json};

const PRODUCTS: &str = include_str!("../examples/products.settings.json");

fn change(op: Op, payload: Json, settings: &str) -> Change {
    Change {
        table: "t".into(),
        op,
        direction: ponte_transform_sdk::Direction::Downstream,
        unit: 1,
        correlation_id: "c".into(),
        sequence: 1,
        payload: payload.to_string(),
        settings: settings.into(),
    }
}

fn err_kind(op: Op, payload: Json, settings: &str) -> ErrorKind {
    Generic::transform(change(op, payload, settings))
        .unwrap_err()
        .kind
}

#[test]
fn self_check_passes() {
    Generic::self_check().unwrap();
}

#[test]
fn products_example_upsert() {
    let out = products(include_str!("../fixtures/products_insert.json")).unwrap();
    assert_eq!(out.row_key, "17");
    assert_eq!(
        out.id_claims,
        vec![IdClaim {
            indice_key: "PRODUTOS".into(),
            id: 17
        }]
    );
    let s = &out.statements[0];
    assert_eq!(
        s.sql,
        "UPDATE OR INSERT INTO PRODUTOS (ID, SKU, DESCRICAO, PRECO, ESTOQUE, DESCONTINUADO) \
         VALUES (?, ?, ?, ?, ?, ?) MATCHING (ID)"
    );
    assert_eq!(
        s.params,
        vec![
            Value::Int(17),
            Value::Text("CAF-500G".into()),
            Value::Text("Café torrado e moído, São Paulo — 500 g".into()),
            Value::Decimal("999999999999999.99".into()),
            Value::Int(250),
            Value::Int(0),
        ]
    );
}

#[test]
fn products_example_delete_and_refusals() {
    let del = products(include_str!("../fixtures/products_delete.json")).unwrap();
    assert_eq!(del.statements[0].sql, "DELETE FROM PRODUTOS WHERE ID = ?");
    assert_eq!(del.statements[0].params, vec![Value::Int(17)]);
    assert!(del.id_claims.is_empty());
    let row = json!({"id": 1, "sku": "x".repeat(31), "description": "d", "price": 1,
        "stock": 0, "discontinued": true});
    assert_eq!(
        err_kind(Op::Insert, row.clone(), PRODUCTS),
        ErrorKind::TooLong
    );
    let mut extra = row.clone();
    extra["sku"] = json!("A");
    extra["weight"] = json!(1.5);
    let e = Generic::transform(change(Op::Update, extra, PRODUCTS)).unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (ErrorKind::BadPayload, Some("weight"))
    );
    let mut null_sku = row;
    null_sku["sku"] = Json::Null;
    assert_eq!(
        err_kind(Op::Insert, null_sku, PRODUCTS),
        ErrorKind::InvalidValue
    );
    assert_eq!(
        err_kind(Op::Insert, json!({"sku": "A"}), PRODUCTS),
        ErrorKind::BadPayload
    );
    assert_eq!(
        err_kind(Op::Delete, json!({"id": null}), PRODUCTS),
        ErrorKind::InvalidValue
    );
}

const ALL_TYPES: &str = r#"{
  "target": "tudo", "key": ["CODIGO", "SEQ"], "unmapped": "ignore", "timezone": "UTC",
  "columns": {
    "code": {"column": "codigo", "type": "text", "max_len": 10},
    "seq": {"column": "SEQ", "type": "smallint"},
    "n": {"column": "N", "type": "numeric", "precision": 12, "scale": 3},
    "f": {"column": "F", "type": "double"},
    "b": {"column": "B", "type": "bool_char", "true_value": "T", "false_value": "F"},
    "u": {"column": "U", "type": "uuid"},
    "d": {"column": "D", "type": "date"},
    "ts": {"column": "TS", "type": "timestamp"},
    "tz": {"column": "TZ", "type": "timestamptz", "zone": "America/Manaus"},
    "tu": {"column": "TU", "type": "timestamptz"},
    "j": {"column": "J", "type": "json_blob"},
    "t": {"column": "T", "type": "text_blob", "if_missing": "null"},
    "s": {"column": "S", "type": "int", "if_missing": "skip"}
  }
}"#;

#[test]
fn every_type_composite_key_and_missing_policies() {
    let payload = json!({"code": "a|b", "seq": 2, "n": 1.5, "f": 2.25, "b": true,
        "u": "0E2B7C1A-58A4-4C4E-9F1B-1D2E3F405060", "d": "2026-01-31",
        "ts": "2026-01-31T23:59:59.99999", "tz": "2026-01-31T12:00:00Z",
        "tu": "2026-01-31T12:00:00-03:00", "j": [1, {"a": "ç"}], "ignored": 1});
    let out = Generic::transform(change(Op::Insert, payload, ALL_TYPES)).unwrap();
    assert_eq!(out.row_key, "a\\|b|2");
    assert!(out.id_claims.is_empty());
    let s = &out.statements[0];
    assert_eq!(
        s.sql,
        "UPDATE OR INSERT INTO TUDO (CODIGO, SEQ, N, F, B, U, D, TS, TZ, TU, J, T) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) MATCHING (CODIGO, SEQ)"
    );
    assert_eq!(
        s.params,
        vec![
            Value::Text("a|b".into()),
            Value::Int(2),
            Value::Decimal("1.500".into()),
            Value::Float(2.25),
            Value::Text("T".into()),
            Value::Text("0e2b7c1a-58a4-4c4e-9f1b-1d2e3f405060".into()),
            Value::Date("2026-01-31".into()),
            Value::Timestamp("2026-01-31 23:59:59.9999".into()),
            Value::Timestamp("2026-01-31 08:00:00.0000".into()),
            Value::Timestamp("2026-01-31 15:00:00.0000".into()),
            Value::Blob(r#"[1,{"a":"ç"}]"#.as_bytes().to_vec()),
            Value::Null,
        ]
    );
}

#[test]
fn bad_settings_are_refused_with_the_reason() {
    let cases = [
        ("", "EOF"),
        ("{}", "missing field `target`"),
        (
            r#"{"target":"T","key":["ID"],"columns":{"id":{"column":"ID","type":"bigint"}},"x":1}"#,
            "unknown field `x`",
        ),
        (
            r#"{"target":"T;","key":["ID"],"columns":{"id":{"column":"ID","type":"bigint"}}}"#,
            "target",
        ),
        (
            r#"{"target":"T","key":[],"columns":{"id":{"column":"ID","type":"bigint"}}}"#,
            "key",
        ),
        (
            r#"{"target":"T","key":["X"],"columns":{"id":{"column":"ID","type":"bigint"}}}"#,
            "key: column X",
        ),
        (
            r#"{"target":"T","key":["ID"],"columns":{"id":{"column":"ID","type":"varchar"}}}"#,
            "unknown type",
        ),
        (
            r#"{"target":"T","key":["ID"],"columns":{"id":{"column":"ID","type":"text"}}}"#,
            "max_len",
        ),
        (
            r#"{"target":"T","key":["ID"],"columns":{"id":{"column":"ID","type":"bigint","max_len":3}}}"#,
            "does not apply",
        ),
        (
            r#"{"target":"T","key":["ID"],"columns":{"id":{"column":"ID","type":"decimal","precision":19,"scale":2}}}"#,
            "precision",
        ),
        (
            r#"{"target":"T","key":["ID"],"columns":{"id":{"column":"ID","type":"bigint"},"j":{"column":"ID","type":"bigint"}}}"#,
            "mapped twice",
        ),
        (
            r#"{"target":"T","key":["ID"],"columns":{"id":{"column":"ID","type":"bigint","if_missing":"skip"}}}"#,
            "if_missing",
        ),
        (
            r#"{"target":"T","key":["ID"],"columns":{"id":{"column":"ID","type":"text","max_len":5}},"indice_key":"T"}"#,
            "integer",
        ),
        (
            r#"{"target":"T","key":["ID"],"columns":{"id":{"column":"ID","type":"bigint"}},"unmapped":"drop"}"#,
            "unmapped",
        ),
        (
            r#"{"target":"T","key":["ID"],"columns":{"id":{"column":"ID","type":"bigint"}},"timezone":"BRT"}"#,
            "timezone",
        ),
    ];
    for (settings, reason) in cases {
        let e = Generic::transform(change(Op::Insert, json!({"id": 1}), settings)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadSettings, "{settings}");
        assert!(e.message.contains(reason), "{settings}: {}", e.message);
    }
}
