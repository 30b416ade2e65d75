//! The host's Firebird apply transaction against a real WIN1252 unit database: the ledger applies a
//! correlation id once, an older change never overwrites a newer one, INDICE stays ahead of the
//! ids replication writes, and exact decimals, accents, NULLs and timestamps arrive intact.

use ponte::firebird::{apply_batch, BatchOutcome, FbFailureKind, Prepared};
use ponte::model::{IdClaim, Op, Output, Statement, Value};
use ponte_tests::firebird::{connect, create_unit_db, drop_unit_dbs};
use rsfbclient::prelude::*;

fn upsert(id: i64, name: &str, limit: Value, seq: i64) -> Prepared {
    Prepared {
        correlation_id: uuid::Uuid::new_v4().to_string(),
        sequence: seq,
        table: "customers".into(),
        op: Op::Update,
        output: Output {
            row_key: id.to_string(),
            statements: vec![Statement {
                sql: "UPDATE OR INSERT INTO CLIENTES (ID, NOME, CIDADE, ATIVO, LIMITE_CREDITO, DATA_NASCIMENTO, ATUALIZADO_EM) \
                      VALUES (?, ?, ?, ?, ?, ?, ?) MATCHING (ID)"
                    .into(),
                params: vec![
                    Value::Int(id),
                    Value::Text(name.into()),
                    Value::Null,
                    Value::Text("S".into()),
                    limit,
                    Value::Date("1980-02-29".into()),
                    Value::Timestamp("2026-11-23 10:15:30.1234".into()),
                ],
            }],
            id_claims: vec![IdClaim { indice_key: "CLIENTES".into(), id }],
        },
    }
}

type ClienteRow = (i64, String, Option<String>, String, Option<String>, String);

fn read_cliente(conn: &mut ponte::firebird::FbConn, id: i64) -> Option<ClienteRow> {
    conn.query_first(
        "SELECT ID, NOME, CIDADE, ATIVO, CAST(LIMITE_CREDITO AS VARCHAR(40)), \
         CAST(DATA_NASCIMENTO AS VARCHAR(20)) || ' ' || CAST(ATUALIZADO_EM AS VARCHAR(30)) \
         FROM CLIENTES WHERE ID = ?",
        (id,),
    )
    .expect("read CLIENTES")
}

#[tokio::test]
async fn ledger_guard_indice_and_exact_values_on_win1252() {
    let prefix = format!("fa{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let db = create_unit_db(&prefix, 1, "WIN1252").expect("create unit database");
    let env_units = vec![(1, db.clone())];
    let config = ponte::config::Config::parse(&format!(
        "[postgres]\nurl='postgres://x'\n[amqp]\nurl='amqp://x'\n[firebird]\npassword='{}'\n[units]\nids='1'\ndatabase='{db}'\n[transforms]\ndir='/tmp'\n",
        ponte_tests::fb_password()
    ))
    .unwrap();
    ponte::ops::migrate(&config, false, true)
        .await
        .expect("migrate");
    // Idempotent: a second run applies nothing and fails nothing.
    ponte::ops::migrate(&config, false, true)
        .await
        .expect("migrate again");

    let mut conn = connect(&db).unwrap();
    let name = "José da Conceição — São Paulo ÀÉÎÕÜ ç";
    let first = upsert(42, name, Value::Decimal("999999999999999.99".into()), 100);
    let outcomes = apply_batch(&mut conn, std::slice::from_ref(&first)).expect("apply");
    assert_eq!(outcomes, vec![BatchOutcome::Applied]);
    let row = read_cliente(&mut conn, 42).expect("row exists");
    assert_eq!(row.1, name, "accented text must survive a WIN1252 database");
    assert_eq!(row.2, None, "NULL stays NULL");
    assert_eq!(
        row.4.as_deref(),
        Some("999999999999999.99"),
        "exact decimal, no f64 rounding"
    );
    assert_eq!(row.5, "1980-02-29 2026-11-23 10:15:30.1234");

    // The same correlation id again (redelivery): nothing happens.
    let again = apply_batch(&mut conn, std::slice::from_ref(&first)).expect("apply dup");
    assert_eq!(again, vec![BatchOutcome::Duplicate]);

    // Two copies of one change in the same batch (a message stored by the broker but not
    // confirmed, then published again): one applies, the other is a duplicate, in both paths.
    let twin = upsert(30, "Gêmeo", Value::Null, 250);
    let outcomes = apply_batch(&mut conn, &[twin.clone(), twin.clone()]).expect("apply twins");
    assert_eq!(
        outcomes,
        vec![BatchOutcome::Applied, BatchOutcome::Duplicate]
    );
    // A text too long to pack takes the statement-by-statement path.
    let mut long_twin = upsert(31, "Longo", Value::Null, 260);
    long_twin.output.statements[0] = Statement {
        sql: "UPDATE OR INSERT INTO CLIENTES (ID, NOME, ATRIBUTOS) VALUES (?, ?, ?) MATCHING (ID)"
            .into(),
        params: vec![
            Value::Int(31),
            Value::Text("Longo".into()),
            Value::Text("ç".repeat(1_500)),
        ],
    };
    let outcomes =
        apply_batch(&mut conn, &[long_twin.clone(), long_twin]).expect("apply long twins");
    assert_eq!(
        outcomes,
        vec![BatchOutcome::Applied, BatchOutcome::Duplicate]
    );

    // A newer change, then an older one arriving late (replay): the older is skipped.
    let newer = upsert(42, "Novo nome", Value::Decimal("1.50".into()), 300);
    let older = upsert(42, "Nome antigo", Value::Decimal("2.00".into()), 200);
    let outcomes = apply_batch(&mut conn, &[newer, older]).expect("apply pair");
    assert_eq!(outcomes, vec![BatchOutcome::Applied, BatchOutcome::Stale]);
    let row = read_cliente(&mut conn, 42).unwrap();
    assert_eq!(
        (row.1.as_str(), row.4.as_deref()),
        ("Novo nome", Some("1.50"))
    );

    // INDICE is at least the highest id replication wrote, so a local application allocates 43+.
    let (ultimo,): (i64,) = conn
        .query_first("SELECT ULTIMO_ID FROM INDICE WHERE TABELA = 'CLIENTES'", ())
        .unwrap()
        .unwrap();
    assert_eq!(ultimo, 42);

    // A failing statement names the message at fault and rolls back the whole batch.
    let good = upsert(50, "Bom", Value::Null, 400);
    let mut bad = upsert(51, "Mau", Value::Null, 401);
    bad.output.statements[0].params[1] = Value::Null; // NOME is NOT NULL
    let err = apply_batch(&mut conn, &[good.clone(), bad]).unwrap_err();
    assert_eq!(err.index, Some(1));
    assert_eq!(err.failure.kind, FbFailureKind::Permanent);
    assert!(
        read_cliente(&mut conn, 50).is_none(),
        "the batch was rolled back"
    );
    // Without the bad one the rest applies.
    assert_eq!(
        apply_batch(&mut conn, &[good]).unwrap(),
        vec![BatchOutcome::Applied]
    );

    // Every correlation id is in the ledger exactly once.
    let (ledger,): (i64,) = conn
        .query_first("SELECT COUNT(*) FROM SYNC_CONTROL", ())
        .unwrap()
        .unwrap();
    assert_eq!(ledger, 6);
    let _ = conn.close();
    drop_unit_dbs(&env_units).unwrap();
}
