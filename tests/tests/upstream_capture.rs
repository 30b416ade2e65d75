//! Capture at a unit on the real Firebird server, without a host: `capture install` is
//! idempotent and `remove` undoes it; the triggers log inserts, updates (with the row's base
//! version), key changes (D + I) and deletes from legacy sessions, and skip the host's own
//! transactions (the PONTE_APPLY context flag); INDICE claims from replication stay inside the
//! unit's id range.

use ponte::capture::{install_unit, remove_unit};
use ponte::firebird::{apply_batch, Prepared};
use ponte::model::{IdClaim, Op, Output};
use ponte_tests::upstream::{legacy_next_id, legacy_session, upstream_env, ID_BLOCK};
use ponte_tests::UnitSpec;
use rsfbclient::prelude::*;

const UNITS: [UnitSpec; 1] = [UnitSpec {
    id: 2,
    charset: "WIN1252",
}];

type LogRow = (String, String, String, Option<i64>);

fn log(conn: &mut ponte::firebird::FbConn) -> Vec<LogRow> {
    let rows: Vec<LogRow> = conn
        .query(
            "SELECT TABLE_NAME, OP, ROW_KEY, BASE_SEQ FROM SYNC_LOG ORDER BY ID",
            (),
        )
        .unwrap();
    conn.execute("DELETE FROM SYNC_LOG", ()).unwrap();
    rows.into_iter()
        .map(|(t, o, k, b)| (t.trim().into(), o.trim().into(), k, b))
        .collect()
}

fn row(table: &str, op: &str, key: i64, base: Option<i64>) -> LogRow {
    (table.into(), op.into(), key.to_string(), base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_capture_legacy_writes_and_skip_the_host() {
    let started = std::time::Instant::now();
    let env = upstream_env(&UNITS, "pg_wins")
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    let config = env.config().unwrap();
    let db = env.units[0].1.clone();
    tokio::task::spawn_blocking(move || {
        let mut admin = ponte_tests::firebird::connect(&db).unwrap();
        let epoch: (String,) = admin.query_first("SELECT EPOCH FROM SYNC_CAPTURE_INFO", ()).unwrap().unwrap();
        // Idempotent: a second install replaces the same triggers and raises nothing.
        let again = install_unit(&mut admin, &config, 2).unwrap();
        assert_eq!(again.tables, vec!["CLIENTES".to_string(), "PRODUTOS".to_string()]);
        assert!(again.dropped.is_empty() && again.indice.is_empty(), "{again:?}");

        let mut legacy = legacy_session(&db, "WIN1252").unwrap();
        let id = legacy_next_id(&mut legacy, "CLIENTES").unwrap();
        assert_eq!(id, 2 * ID_BLOCK + 1, "INDICE starts the unit's range");
        let name = "Joÿ Ação \"q\" \\ fim\nlinha";
        legacy
            .execute("INSERT INTO CLIENTES (ID, NOME, LIMITE_CREDITO) VALUES (?, ?, 12.5)", (id, name.to_string()))
            .unwrap();
        // The trigger's JSON image: the unit's own values, escaped, numerics exact.
        let (image,): (String,) = admin.query_first("SELECT FIRST 1 IMAGE FROM SYNC_LOG ORDER BY ID", ()).unwrap().unwrap();
        let image: serde_json::Value = serde_json::from_str(&image).unwrap();
        assert_eq!(image["ID"].as_i64(), Some(id), "{image}");
        assert_eq!(image["NOME"].as_str(), Some(name), "{image}");
        assert_eq!((image["ATIVO"].as_str(), image["LIMITE_CREDITO"].as_str()), (Some("S"), Some("12.50")));
        assert!(image["EMAIL"].is_null() && image["ATRIBUTOS"].is_null(), "{image}");
        admin
            .execute("INSERT INTO SYNC_ROW_VERSION (TABLE_NAME, ROW_KEY, SEQ) VALUES ('customers', ?, 42)", (id.to_string(),))
            .unwrap();
        legacy.execute("UPDATE CLIENTES SET CIDADE = 'Maceió' WHERE ID = ?", (id,)).unwrap();
        legacy.execute("UPDATE CLIENTES SET ID = ? WHERE ID = ?", (id + 1, id)).unwrap();
        legacy.execute("DELETE FROM CLIENTES WHERE ID = ?", (id + 1,)).unwrap();
        assert_eq!(
            log(&mut admin),
            vec![
                row("CLIENTES", "I", id, None),
                row("CLIENTES", "U", id, Some(42)),
                row("CLIENTES", "D", id, Some(42)),
                row("CLIENTES", "I", id + 1, None),
                row("CLIENTES", "D", id + 1, None),
            ]
        );

        // The host's own transaction (the flag every apply batch sets) is never captured.
        legacy.begin_transaction().unwrap();
        let _: Option<(Option<i64>,)> = legacy
            .query_first("SELECT RDB$SET_CONTEXT('USER_TRANSACTION', 'PONTE_APPLY', '1') FROM RDB$DATABASE", ())
            .unwrap();
        legacy.execute("INSERT INTO CLIENTES (ID, NOME) VALUES (77, 'Do PostgreSQL')", ()).unwrap();
        legacy.commit().unwrap();
        assert!(log(&mut admin).is_empty(), "a host write must not be captured");

        // Replicated ids outside the unit's range leave INDICE alone; inside, they raise it.
        let claims = |ids: &[i64]| Prepared {
            correlation_id: uuid_text(ids[0]),
            sequence: ids[0],
            table: "customers".into(),
            op: Op::Insert,
            output: Output {
                row_key: ids[0].to_string(),
                statements: Vec::new(),
                id_claims: ids.iter().map(|&id| IdClaim { indice_key: "CLIENTES".into(), id }).collect(),
            },
        };
        apply_batch(&mut admin, &[claims(&[77, 3 * ID_BLOCK + 5])]).unwrap();
        assert_eq!(legacy_next_id(&mut legacy, "CLIENTES").unwrap(), 2 * ID_BLOCK + 2);
        apply_batch(&mut admin, &[claims(&[2 * ID_BLOCK + 500])]).unwrap();
        assert_eq!(legacy_next_id(&mut legacy, "CLIENTES").unwrap(), 2 * ID_BLOCK + 501);
        assert!(log(&mut admin).is_empty());

        // Remove drops the triggers (writes go uncaptured); install brings them back, same epoch.
        assert_eq!(remove_unit(&mut admin).unwrap(), vec!["SYNC$CLIENTES".to_string(), "SYNC$PRODUTOS".to_string()]);
        legacy.execute("UPDATE CLIENTES SET NOME = 'x' WHERE ID = 77", ()).unwrap();
        assert!(log(&mut admin).is_empty());
        install_unit(&mut admin, &config, 2).unwrap();
        legacy.execute("UPDATE CLIENTES SET NOME = 'y' WHERE ID = 77", ()).unwrap();
        // Its base version is the row-sequence the batch above recorded for customers 77.
        assert_eq!(log(&mut admin), vec![row("CLIENTES", "U", 77, Some(77))]);
        let after: (String,) = admin.query_first("SELECT EPOCH FROM SYNC_CAPTURE_INFO", ()).unwrap().unwrap();
        assert_eq!(after, epoch, "re-install keeps the capture epoch");
        let _ = legacy.close();
        let _ = admin.close();
    })
    .await
    .unwrap();
    env.cleanup().await;
    eprintln!("capture test: {:?}", started.elapsed());
}

fn uuid_text(n: i64) -> String {
    format!(
        "00000000-0000-4000-8000-{:012x}",
        n.unsigned_abs() % 0x1_0000_0000_0000
    )
}

/// A key whose columns can hold more than SYNC_LOG's 200-character ROW_KEY would make the
/// capture trigger fail the legacy application's own insert: install refuses it, naming the
/// table and the width, before any trigger is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_refuses_a_key_wider_than_the_log_row_key() {
    let mut env = ponte_tests::TestEnv::new(&UNITS)
        .await
        .expect("test environment");
    env.units_toml = format!("id_block = {ID_BLOCK}");
    env.extra_toml = format!(
        "{}\n[upstream.tables.WIDE_KEY]\npg_table = \"wide_key\"\nkey = [\"a\", \"b\"]\n\
         transform = \"generic\"\n[upstream.tables.WIDE_KEY.settings]\ntarget = \"wide_key\"\n\
         key = [\"a\", \"b\"]\n",
        ponte_tests::upstream::upstream_toml("pg_wins")
    );
    let db = env.units[0].1.clone();
    ponte_tests::firebird::isql(&format!(
        "CONNECT '{db}';\nCREATE TABLE WIDE_KEY (A VARCHAR(150) NOT NULL, B VARCHAR(100) NOT NULL, \
         V INTEGER, PRIMARY KEY (A, B));\nCOMMIT;\n"
    ))
    .unwrap();
    let config = env.config().unwrap();
    let result = tokio::task::spawn_blocking(move || {
        let mut conn = ponte_tests::firebird::connect(&db).unwrap();
        let result = install_unit(&mut conn, &config, 2).map_err(|e| e.to_string());
        let triggers: Option<(i64,)> = conn
            .query_first(
                "SELECT COUNT(*) FROM RDB$TRIGGERS WHERE RDB$TRIGGER_NAME STARTING WITH 'SYNC$'",
                (),
            )
            .unwrap();
        (result, triggers.map(|(n,)| n))
    })
    .await
    .unwrap();
    let err = result
        .0
        .expect_err("install accepted a key wider than the log's row key");
    assert!(err.contains("WIDE_KEY") && err.contains("200"), "{err}");
    assert_eq!(
        result.1,
        Some(0),
        "no trigger may be installed when one table is refused"
    );
    env.cleanup().await;
}
