//! Transform `customers` (PostgreSQL) -> `CLIENTES` (Firebird 2.5), downstream; settings:
//! `{"timezone": "<IANA zone>"}` for `updated_at` (default "America/Sao_Paulo").

use ponte_transform_sdk::{
    downstream_only, export_transform, fixture, sql, Change, Info, Op, Output, Row, Settings,
    Transform, TransformError, Value,
};

/// The `customers` transform.
pub struct Customers;

const TABLE: &str = "CLIENTES";

impl Transform for Customers {
    fn describe() -> Info {
        Info::new(
            "customers",
            env!("CARGO_PKG_VERSION"),
            &["customers"],
            &[TABLE],
        )
    }

    fn self_check() -> Result<(), String> {
        let out = fixture::run::<Customers>(include_str!("../fixtures/insert.json"))?;
        fixture::ensure(out.row_key == "42", "insert: row key is not \"42\"")?;
        fixture::ensure(out.id_claims.len() == 1, "insert: no id-claim on CLIENTES")?;
        let credit = out.statements.first().and_then(|s| s.params.get(5));
        let exact = Some(&Value::Decimal("999999999999999.99".into()));
        fixture::ensure(credit == exact, "insert: credit_limit is not exact")?;
        fixture::run::<Customers>(include_str!("../fixtures/nulls.json"))?;
        let del = fixture::run::<Customers>(include_str!("../fixtures/delete.json"))?;
        fixture::ensure(del.statements.len() == 1, "delete: expected one statement")
    }

    fn transform(change: Change) -> Result<Output, TransformError> {
        downstream_only(&change)?;
        let settings = Settings::parse(&change.settings)?;
        settings.only(&["timezone"])?;
        let row = Row::parse(&change.payload)?;
        let id = row.i64("id")?;
        let out = Output::new(id.to_string());
        if change.op == Op::Delete {
            return Ok(out.statement(sql::delete(TABLE, vec![("ID", Value::Int(id))])?));
        }
        let zone = settings.zone("timezone")?;
        let upsert = sql::upsert(
            TABLE,
            vec![
                ("ID", Value::Int(id)),
                ("NOME", row.text("name", 100)?),
                ("EMAIL", row.opt_text("email", 120)?),
                ("CIDADE", row.opt_text("city", 60)?),
                ("ATIVO", row.bool_char("active")?),
                ("LIMITE_CREDITO", row.opt_decimal("credit_limit", 18, 2)?),
                ("DATA_NASCIMENTO", row.opt_date("birth_date")?),
                ("REF_EXTERNA", row.opt_uuid("external_ref")?),
                ("ATRIBUTOS", row.opt_json_blob("attributes")?),
                ("ATUALIZADO_EM", row.timestamptz("updated_at", zone)?),
            ],
            &["ID"],
        )?;
        Ok(out.statement(upsert).claim(TABLE, id))
    }
}

export_transform!(Customers);

#[cfg(test)]
mod tests {
    use super::*;
    use ponte_transform_sdk::{ErrorKind, IdClaim};

    fn run(fixture: &str) -> Output {
        fixture::run::<Customers>(fixture).unwrap()
    }

    #[test]
    fn self_check_passes() {
        Customers::self_check().unwrap();
    }

    #[test]
    fn insert_maps_every_column() {
        let out = run(include_str!("../fixtures/insert.json"));
        assert_eq!(out.row_key, "42");
        assert_eq!(
            out.id_claims,
            vec![IdClaim {
                indice_key: "CLIENTES".into(),
                id: 42
            }]
        );
        let s = &out.statements[0];
        assert_eq!(
            s.sql,
            "UPDATE OR INSERT INTO CLIENTES (ID, NOME, EMAIL, CIDADE, ATIVO, LIMITE_CREDITO, \
             DATA_NASCIMENTO, REF_EXTERNA, ATRIBUTOS, ATUALIZADO_EM) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) MATCHING (ID)"
        );
        let attrs = r#"{"segmento":"varejo","tags":["vip","ação"],"score":0.1}"#;
        assert_eq!(
            s.params,
            vec![
                Value::Int(42),
                Value::Text("José da Conceição".into()),
                Value::Text("jose@example.com.br".into()),
                Value::Text("São Paulo".into()),
                Value::Text("S".into()),
                Value::Decimal("999999999999999.99".into()),
                Value::Date("1980-02-29".into()),
                Value::Text("0e2b7c1a-58a4-4c4e-9f1b-1d2e3f405060".into()),
                Value::Blob(attrs.as_bytes().to_vec()),
                Value::Timestamp("2026-11-23 07:15:30.1234".into()),
            ]
        );
    }

    #[test]
    fn nulls_stay_null_and_default_zone_applies() {
        let out = run(include_str!("../fixtures/nulls.json"));
        let p = &out.statements[0].params;
        assert_eq!(p[4], Value::Text("N".into()));
        for i in [2, 3, 5, 6, 7, 8] {
            assert_eq!(p[i], Value::Null, "param {i}");
        }
        assert_eq!(p[9], Value::Timestamp("2026-11-23 07:15:30.0000".into()));
    }

    #[test]
    fn delete_takes_key_only_or_full_image() {
        let out = run(include_str!("../fixtures/delete.json"));
        assert_eq!(out.statements[0].sql, "DELETE FROM CLIENTES WHERE ID = ?");
        assert_eq!(out.statements[0].params, vec![Value::Int(42)]);
        assert!(out.id_claims.is_empty());
        let full = include_str!("../fixtures/insert.json").replace("\"insert\"", "\"delete\"");
        assert_eq!(run(&full).statements, out.statements);
    }

    #[test]
    fn refusals_are_typed() {
        let long = include_str!("../fixtures/insert.json")
            .replace("São Paulo\"", &format!("{}\"", "ã".repeat(61)));
        let err = fixture::run::<Customers>(&long);
        assert!(err.unwrap_err().contains("TooLong in field `city`"));
        let no_name = r#"{"table":"customers","op":"I","payload":{"id":1}}"#;
        fixture::run_err::<Customers>(no_name, ErrorKind::BadPayload).unwrap();
        let zone =
            r#"{"table":"customers","op":"I","payload":{"id":1},"settings":{"timezone":"X"}}"#;
        fixture::run_err::<Customers>(zone, ErrorKind::BadSettings).unwrap();
        let up = r#"{"table":"customers","op":"I","direction":"upstream","payload":{"id":1}}"#;
        fixture::run_err::<Customers>(up, ErrorKind::Unsupported).unwrap();
        let big = include_str!("../fixtures/insert.json").replace("999999999999999.99", "1e16");
        fixture::run_err::<Customers>(&big, ErrorKind::InvalidValue).unwrap();
    }
}
