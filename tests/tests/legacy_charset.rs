//! Text a unit's charset cannot hold, on the real servers: a WIN1252 unit with an ISO8859_1 and a
//! UTF8 column. `doctor` notes the narrow columns; a stream through a running host applies every
//! change whose text fits and dead-letters, before anything is written, each change with a
//! character its column cannot hold — the reason names the table, the column, the value and the
//! character, and the dead letter keeps the change. A value fed through an expression (which the
//! pre-write check cannot map) fails at the server and its transliteration error is explained
//! the same way.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte::firebird::{apply_batch, FbFailureKind, Prepared};
use ponte::legacy::doctor::Severity;
use ponte::model::{Op, Output, Statement, Value};
use ponte_tests::legacy::{fb_rows, outbox_rows, unit_ddl, write};
use ponte_tests::upstream::wait_until;
use ponte_tests::{check, TestEnv, UnitSpec};

const PG_TEXT: &str = "CREATE TABLE leg_text (id bigint PRIMARY KEY, name varchar(60) NOT NULL, \
     note varchar(60), free varchar(60))";

const FB_TEXT: &str = "CREATE TABLE TEXTOS (ID BIGINT NOT NULL PRIMARY KEY, \
     NOME VARCHAR(60) NOT NULL, NOTA VARCHAR(60) CHARACTER SET ISO8859_1, \
     LIVRE VARCHAR(60) CHARACTER SET UTF8);";

const TEXT_TOML: &str = r#"
[tables.leg_text]
ops = "IUD"
transform = "generic"
[tables.leg_text.settings]
target = "TEXTOS"
key = ["ID"]
[tables.leg_text.settings.columns]
id = { column = "ID", type = "bigint" }
name = { column = "NOME", type = "text", max_len = 60, required = true }
note = { column = "NOTA", type = "text", max_len = 60 }
free = { column = "LIVRE", type = "text", max_len = 60 }
"#;

/// (id, name, note, free): the rows PostgreSQL writes.
const ROWS: [(i64, &str, Option<&str>, Option<&str>); 6] = [
    (1, "São Paulo €", Some("ação"), None),
    (2, "smile 😀", None, None),
    (3, "ok", Some("preço 10 €"), None),
    (4, "Łódź", None, None),
    (5, "fine", None, Some("😀 ok Ł")),
    (6, "Ñandú ÿ", Some("ÿ"), Some("€")),
];

/// (id, column, character) of the rows that cannot be written.
const REFUSED: [(i64, &str, &str, &str); 3] = [
    (2, "NOME", "U+1F600", "WIN1252"),
    (3, "NOTA", "U+20AC", "ISO8859_1"),
    (4, "NOME", "U+0141", "WIN1252"),
];

fn sql_text(v: Option<&str>) -> String {
    v.map_or("NULL".into(), |s| format!("'{}'", s.replace('\'', "''")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_the_column_charset_cannot_hold_is_dead_lettered_naming_the_column() {
    let mut env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await
    .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    env.extra_toml = TEXT_TOML.into();
    sqlx::raw_sql(PG_TEXT).execute(&env.pg).await.unwrap();
    unit_ddl(&env, FB_TEXT).unwrap();
    let db = env.units[0].1.clone();
    let config = env.config().unwrap();

    // doctor notes both narrow columns fed from PostgreSQL text, not the UTF8 one.
    let report = ponte::legacy::doctor(&config, 1).await.unwrap();
    let text = report.render();
    let note = |subject: &str| {
        report
            .findings
            .iter()
            .any(|f| f.severity == Severity::Note && f.subject == subject)
    };
    assert!(
        note("column TEXTOS.NOME") && text.contains("is WIN1252"),
        "{text}"
    );
    assert!(
        note("column TEXTOS.NOTA") && text.contains("is ISO8859_1"),
        "{text}"
    );
    assert!(!text.contains("TEXTOS.LIVRE"), "{text}");

    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    let values: Vec<String> = ROWS
        .iter()
        .map(|(id, name, note, free)| {
            format!(
                "({id}, {}, {}, {})",
                sql_text(Some(name)),
                sql_text(*note),
                sql_text(*free)
            )
        })
        .collect();
    write(
        &env,
        &format!("INSERT INTO leg_text VALUES {}", values.join(", ")),
        &outbox_rows("leg_text", "I", "true", "t.id"),
    )
    .await
    .unwrap();
    // The stream goes on after the refused changes: a later update of an applied row.
    write(
        &env,
        "UPDATE leg_text SET name = 'depois ç' WHERE id = 1",
        &outbox_rows("leg_text", "U", "t.id = 1", "t.id"),
    )
    .await
    .unwrap();
    env.wait_outbox_drained(Duration::from_secs(60))
        .await
        .unwrap();
    let letters = check::dead_letters(&env, REFUSED.len(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(letters.len(), REFUSED.len(), "{letters:?}");
    for (id, column, code, charset) in REFUSED {
        let (_, name, note, _) = ROWS[(id - 1) as usize];
        let value = if column == "NOME" {
            name
        } else {
            note.unwrap_or("")
        };
        let letter = letters
            .iter()
            .find(|l| {
                serde_json::from_str::<serde_json::Value>(&l.body)
                    .is_ok_and(|b| b["payload"]["id"].as_i64() == Some(id))
            })
            .unwrap_or_else(|| panic!("row {id} not dead-lettered: {letters:?}"));
        let reason = &letter.reason;
        println!("row {id}: {reason}");
        assert_eq!(letter.class, "firebird", "{reason}");
        assert!(
            reason.contains(&format!("table TEXTOS column {column}: value '{value}'")),
            "{reason}"
        );
        assert!(
            reason.contains(code) && reason.contains(&format!("charset {charset} cannot hold")),
            "{reason}"
        );
        // Nothing lost: the dead letter carries the change as it was sent.
        let body: serde_json::Value = serde_json::from_str(&letter.body).unwrap();
        assert_eq!(body["table"].as_str(), Some("leg_text"), "{body}");
        assert_eq!(body["payload"]["name"].as_str(), Some(name), "{body}");
    }

    // Every other change applied, accented text intact, in all three charsets.
    let wanted: Vec<Vec<Option<String>>> = vec![
        vec![
            Some("1".into()),
            Some("depois ç".into()),
            Some("ação".into()),
            None,
        ],
        vec![
            Some("5".into()),
            Some("fine".into()),
            None,
            Some("😀 ok Ł".into()),
        ],
        vec![
            Some("6".into()),
            Some("Ñandú ÿ".into()),
            Some("ÿ".into()),
            Some("€".into()),
        ],
    ];
    let read = "SELECT CAST(ID AS VARCHAR(20)), NOME, NOTA, LIVRE FROM TEXTOS ORDER BY ID";
    let probe = db.clone();
    wait_until(
        Duration::from_secs(30),
        "the fitting changes applied",
        || {
            let (db, wanted) = (probe.clone(), wanted.clone());
            async move { Ok(fb_rows(&db, read)? == wanted) }
        },
    )
    .await
    .unwrap();
    stop.cancel();
    running.wait().await;

    // A value fed through an expression is not mapped before the write: the server refuses it
    // and its error is explained with the column the expression feeds.
    let direct = db.clone();
    let failure = tokio::task::spawn_blocking(move || {
        let mut conn = ponte_tests::firebird::connect(&direct).unwrap();
        let change = Prepared {
            correlation_id: "00000000-0000-4000-8000-000000000050".into(),
            sequence: 50,
            table: "leg_text".into(),
            op: Op::Insert,
            output: Output {
                row_key: "50".into(),
                statements: vec![Statement {
                    sql: "INSERT INTO TEXTOS (ID, NOME) VALUES (?, TRIM(?))".into(),
                    params: vec![Value::Int(50), Value::Text(" via 😀 ".into())],
                }],
                id_claims: Vec::new(),
            },
        };
        let err = apply_batch(&mut conn, &[change]).unwrap_err();
        let _ = conn.close();
        err
    })
    .await
    .unwrap();
    println!("expression: {failure}");
    assert_eq!(failure.index, Some(0), "{failure}");
    assert_eq!(failure.failure.kind, FbFailureKind::Permanent, "{failure}");
    let message = &failure.failure.message;
    assert!(
        message.contains("table TEXTOS column NOME: value ' via 😀 '"),
        "{message}"
    );
    assert!(
        message.contains("U+1F600") && message.contains("WIN1252"),
        "{message}"
    );
    assert!(
        message.to_lowercase().contains("transliterate"),
        "{message}"
    );
    assert_eq!(fb_rows(&db, read).unwrap().len(), 3, "nothing written");
    env.cleanup().await;
}
