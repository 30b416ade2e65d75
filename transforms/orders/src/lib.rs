//! Transform `orders` -> `PEDIDOS` and `order_items` -> `PEDIDO_ITENS` (Firebird 2.5),
//! downstream; settings: `{"timezone": "<IANA zone>"}` for `ordered_at` (default
//! "America/Sao_Paulo").

use ponte_transform_sdk::{
    downstream_only, export_transform, fixture, sql, Change, Info, Op, Output, Row, Settings,
    Transform, TransformError, Value,
};

/// The `orders` transform (two source tables).
pub struct Orders;

const ORDERS: &str = "PEDIDOS";
const ITEMS: &str = "PEDIDO_ITENS";

/// `orders` -> `PEDIDOS`, id-claim on INDICE key "PEDIDOS"; row key "<id>".
fn order(op: Op, row: &Row, settings: &Settings) -> Result<Output, TransformError> {
    let id = row.i64("id")?;
    let out = Output::new(id.to_string());
    if op == Op::Delete {
        return Ok(out.statement(sql::delete(ORDERS, vec![("ID", Value::Int(id))])?));
    }
    let zone = settings.zone("timezone")?;
    let upsert = sql::upsert(
        ORDERS,
        vec![
            ("ID", Value::Int(id)),
            ("CLIENTE_ID", row.int("customer_id")?),
            ("DATA_PEDIDO", row.timestamptz("ordered_at", zone)?),
            ("SITUACAO", row.text("status", 12)?),
            ("TOTAL", row.decimal("total", 18, 2)?),
            ("OBSERVACAO", row.opt_text_blob("notes")?),
        ],
        &["ID"],
    )?;
    Ok(out.statement(upsert).claim(ORDERS, id))
}

/// `order_items` -> `PEDIDO_ITENS`, no id-claim (no INDICE key); row key "<order_id>|<line_no>".
fn item(op: Op, row: &Row) -> Result<Output, TransformError> {
    let (order_id, line_no) = (row.i64("order_id")?, row.i32("line_no")?);
    let key = vec![
        ("PEDIDO_ID", Value::Int(order_id)),
        ("ITEM", Value::Int(line_no.into())),
    ];
    let out = Output::new(format!("{order_id}|{line_no}"));
    if op == Op::Delete {
        return Ok(out.statement(sql::delete(ITEMS, key)?));
    }
    let mut columns = key;
    columns.extend([
        ("PRODUTO_ID", row.int("product_id")?),
        ("QUANTIDADE", row.decimal("quantity", 12, 3)?),
        ("PRECO_UNITARIO", row.decimal("unit_price", 18, 2)?),
    ]);
    Ok(out.statement(sql::upsert(ITEMS, columns, &["PEDIDO_ID", "ITEM"])?))
}

impl Transform for Orders {
    fn describe() -> Info {
        Info::new(
            "orders",
            env!("CARGO_PKG_VERSION"),
            &["orders", "order_items"],
            &[ORDERS, ITEMS],
        )
    }

    fn self_check() -> Result<(), String> {
        let o = fixture::run::<Orders>(include_str!("../fixtures/order.json"))?;
        fixture::ensure(
            o.row_key == "9001" && o.id_claims.len() == 1,
            "order: key or claim",
        )?;
        let i = fixture::run::<Orders>(include_str!("../fixtures/item.json"))?;
        fixture::ensure(
            i.row_key == "9001|3" && i.id_claims.is_empty(),
            "item: key or claim",
        )?;
        let d = fixture::run::<Orders>(include_str!("../fixtures/item_delete.json"))?;
        fixture::ensure(
            d.statements.len() == 1,
            "item delete: expected one statement",
        )
    }

    fn transform(change: Change) -> Result<Output, TransformError> {
        downstream_only(&change)?;
        let settings = Settings::parse(&change.settings)?;
        settings.only(&["timezone"])?;
        let row = Row::parse(&change.payload)?;
        match change.table.as_str() {
            "orders" => order(change.op, &row, &settings),
            "order_items" => item(change.op, &row),
            other => Err(TransformError::unsupported(format!(
                "table `{other}` is not handled by orders (orders, order_items)"
            ))),
        }
    }
}

export_transform!(Orders);

#[cfg(test)]
mod tests {
    use super::*;
    use ponte_transform_sdk::ErrorKind;

    fn run(fixture: &str) -> Output {
        fixture::run::<Orders>(fixture).unwrap()
    }

    #[test]
    fn self_check_passes() {
        Orders::self_check().unwrap();
    }

    #[test]
    fn order_upsert_local_time_exact_total_plain_notes() {
        let out = run(include_str!("../fixtures/order.json"));
        let s = &out.statements[0];
        assert_eq!(
            s.sql,
            "UPDATE OR INSERT INTO PEDIDOS (ID, CLIENTE_ID, DATA_PEDIDO, SITUACAO, TOTAL, \
             OBSERVACAO) VALUES (?, ?, ?, ?, ?, ?) MATCHING (ID)"
        );
        assert_eq!(
            s.params,
            vec![
                Value::Int(9001),
                Value::Int(42),
                // 02:30 UTC is 23:30 of the day before in São Paulo.
                Value::Timestamp("2026-11-22 23:30:00.9876".into()),
                Value::Text("aberto".into()),
                Value::Decimal("999999999999999.99".into()),
                Value::Blob(
                    "Entregar na Rua da Conceição, São Paulo"
                        .as_bytes()
                        .to_vec()
                ),
            ]
        );
        assert_eq!(out.id_claims[0].indice_key, "PEDIDOS");
        assert_eq!(out.id_claims[0].id, 9001);
    }

    #[test]
    fn item_upsert_and_delete() {
        let out = run(include_str!("../fixtures/item.json"));
        assert_eq!(out.row_key, "9001|3");
        let s = &out.statements[0];
        assert_eq!(
            s.sql,
            "UPDATE OR INSERT INTO PEDIDO_ITENS (PEDIDO_ID, ITEM, PRODUTO_ID, QUANTIDADE, \
             PRECO_UNITARIO) VALUES (?, ?, ?, ?, ?) MATCHING (PEDIDO_ID, ITEM)"
        );
        assert_eq!(s.params[3], Value::Decimal("123456789.125".into()));
        assert_eq!(s.params[4], Value::Decimal("10.50".into()));
        let del = run(include_str!("../fixtures/item_delete.json"));
        assert_eq!(del.row_key, "9001|3");
        assert_eq!(
            del.statements[0].sql,
            "DELETE FROM PEDIDO_ITENS WHERE PEDIDO_ID = ? AND ITEM = ?"
        );
        assert_eq!(
            del.statements[0].params,
            vec![Value::Int(9001), Value::Int(3)]
        );
        let full = include_str!("../fixtures/item.json").replace("\"insert\"", "\"delete\"");
        assert_eq!(run(&full).statements, del.statements);
    }

    #[test]
    fn refusals_are_typed() {
        let long_status =
            include_str!("../fixtures/order.json").replace("aberto", "aguardando-pagamento");
        fixture::run_err::<Orders>(&long_status, ErrorKind::TooLong).unwrap();
        let null_notes = include_str!("../fixtures/order.json")
            .replace("\"Entregar na Rua da Conceição, São Paulo\"", "null");
        assert_eq!(run(&null_notes).statements[0].params[5], Value::Null);
        let qty = include_str!("../fixtures/item.json").replace("123456789.125", "1.0001");
        fixture::run_err::<Orders>(&qty, ErrorKind::InvalidValue).unwrap();
        let other = r#"{"table":"products","op":"I","payload":{"id":1}}"#;
        fixture::run_err::<Orders>(other, ErrorKind::Unsupported).unwrap();
        let no_ts = include_str!("../fixtures/order.json").replace("+00:00", "");
        fixture::run_err::<Orders>(&no_ts, ErrorKind::InvalidValue).unwrap();
    }
}
