//! Unit tests of the statement validator: what must pass and every trick that must not.

use super::*;

fn allowed() -> AllowedWrites {
    AllowedWrites::new(&["CUSTOMERS".into(), "\"Mixed Case\"".into(), "ORDERS".into()]).unwrap()
}

fn check(sql: &str, params: usize) -> Result<String, String> {
    check_in(sql, params, Dialect::Firebird)
}

fn check_in(sql: &str, params: usize, dialect: Dialect) -> Result<String, String> {
    let mut s = sql.to_string();
    validate(&mut s, params, dialect, &allowed()).map(|()| s)
}

fn refused(sql: &str, params: usize, needle: &str) {
    match check(sql, params) {
        Ok(_) => panic!("{sql:?} should be refused"),
        Err(e) => assert!(
            e.contains(needle),
            "{sql:?}: reason {e:?} should mention {needle:?}"
        ),
    }
}

#[test]
fn accepts_the_five_kinds() {
    for (sql, n) in [
        ("INSERT INTO CUSTOMERS (ID, NAME) VALUES (?, ?)", 2),
        ("update customers set name = ? where id = ?", 2),
        ("DELETE FROM Customers WHERE ID = ?", 1),
        (
            "UPDATE OR INSERT INTO CUSTOMERS (ID, NAME) VALUES (?, ?) MATCHING (ID)",
            2,
        ),
        (
            "MERGE INTO CUSTOMERS C USING (SELECT CAST(? AS INTEGER) AS ID, ? AS NAME FROM \
             RDB$DATABASE) S ON C.ID = S.ID WHEN MATCHED THEN UPDATE SET C.NAME = S.NAME \
             WHEN NOT MATCHED THEN INSERT (ID, NAME) VALUES (S.ID, S.NAME)",
            2,
        ),
        (
            "MERGE INTO CUSTOMERS AS C USING ORDERS AS O ON C.ID = O.ID WHEN MATCHED THEN DELETE",
            0,
        ),
        (
            "UPDATE CUSTOMERS SET NAME = SUBSTRING(? FROM 1 FOR 10), A = TRIM(LEADING FROM ?)",
            2,
        ),
        (
            "UPDATE CUSTOMERS SET N = COALESCE(?, 'x;y--z') WHERE A IS DISTINCT FROM ?",
            2,
        ),
        ("INSERT INTO \"Mixed Case\" (\"Id\") VALUES (?)", 1),
        (
            "INSERT INTO CUSTOMERS (AMOUNT) VALUES (CAST(? AS NUMERIC(18, 2)))",
            1,
        ),
    ] {
        assert!(check(sql, n).is_ok(), "{sql:?}: {:?}", check(sql, n));
    }
}

#[test]
fn strips_one_trailing_semicolon() {
    assert_eq!(
        check("DELETE FROM CUSTOMERS WHERE ID = ? ;  \n", 1).unwrap(),
        "DELETE FROM CUSTOMERS WHERE ID = ?"
    );
    assert_eq!(
        check("DELETE FROM CUSTOMERS WHERE N = ';'", 0).unwrap(),
        "DELETE FROM CUSTOMERS WHERE N = ';'"
    );
    refused("DELETE FROM CUSTOMERS;;", 0, "more than one statement");
    refused(";", 0, "empty statement");
    refused("   ", 0, "empty statement");
}

#[test]
fn refuses_ddl_blocks_selects_and_control() {
    refused("CREATE TABLE X (A INTEGER)", 0, "CREATE is not allowed");
    refused("DROP TABLE CUSTOMERS", 0, "DROP is not allowed");
    refused(
        "ALTER TABLE CUSTOMERS ADD B INTEGER",
        0,
        "ALTER is not allowed",
    );
    refused("RECREATE TABLE CUSTOMERS (A INTEGER)", 0, "RECREATE");
    refused("GRANT ALL ON CUSTOMERS TO PUBLIC", 0, "GRANT");
    refused(
        "EXECUTE BLOCK AS BEGIN DELETE FROM CUSTOMERS; END",
        0,
        "more than one statement",
    );
    refused("EXECUTE BLOCK AS BEGIN END", 0, "EXECUTE is not allowed");
    refused("EXECUTE PROCEDURE P(?)", 1, "EXECUTE is not allowed");
    refused("SELECT * FROM CUSTOMERS", 0, "SELECT is not allowed");
    refused("COMMIT", 0, "COMMIT is not allowed");
    refused("SET GENERATOR G TO 0", 0, "SET is not allowed");
    refused(
        "WITH X AS (SELECT 1 FROM RDB$DATABASE) DELETE FROM CUSTOMERS",
        0,
        "WITH",
    );
    refused("(DELETE FROM CUSTOMERS)", 0, "non-keyword");
}

#[test]
fn refuses_two_statements_and_comment_tricks() {
    refused(
        "DELETE FROM CUSTOMERS; DROP TABLE ORDERS",
        0,
        "more than one statement",
    );
    refused(
        "DELETE FROM CUSTOMERS WHERE ID = ? -- and the rest",
        1,
        "comment",
    );
    refused("DELETE FROM CUSTOMERS /* x */ WHERE ID = ?", 1, "comment");
    refused("DELETE FROM CUSTOMERS WHERE ID = 1--1", 0, "comment");
    refused(
        "DELETE FROM CUSTOMERS WHERE N = 'it''s'; DROP TABLE X",
        0,
        "more than one",
    );
    refused("DELETE FROM CUSTOMERS WHERE N = 'open", 0, "unterminated");
    refused(
        "DELETE FROM CUSTOMERS WHERE N = E'\\''; DROP TABLE X; '",
        0,
        "prefixed string",
    );
    refused(
        "DELETE FROM CUSTOMERS WHERE N = $$';DROP TABLE X;'$$",
        0,
        "`$`",
    );
    refused("DELETE FROM CUSTOMERS WHERE ID = $1", 0, "`$`");
    refused(
        "DELETE FROM \"CUSTOMERS\"\"; DROP TABLE X; --\"",
        0,
        "did not declare",
    );
}

#[test]
fn checks_the_target_table_with_firebird_case_rules() {
    refused("INSERT INTO SECRETS (A) VALUES (?)", 1, "`SECRETS`");
    refused("INSERT INTO \"customers\" (A) VALUES (?)", 1, "`customers`");
    refused(
        "INSERT INTO \"Mixed case\" (A) VALUES (?)",
        1,
        "did not declare",
    );
    refused(
        "INSERT INTO mixed case (A) VALUES (?)",
        1,
        "did not declare",
    );
    assert!(check("INSERT INTO \"CUSTOMERS\" (A) VALUES (?)", 1).is_ok());
    refused("UPDATE OTHER SET A = ?", 1, "`OTHER`");
    refused("DELETE FROM PUBLIC.CUSTOMERS", 0, "no schemas");
    refused(
        "MERGE INTO OTHER USING CUSTOMERS ON 1 = 1 WHEN MATCHED THEN DELETE",
        0,
        "`OTHER`",
    );
    refused("INSERT INTO (A) VALUES (?)", 1, "table name");
}

#[test]
fn refuses_reads_of_other_tables_and_side_effects() {
    refused(
        "INSERT INTO CUSTOMERS (A) SELECT A FROM SECRETS",
        0,
        "SELECT",
    );
    refused(
        "UPDATE CUSTOMERS SET A = (SELECT MAX(A) FROM SECRETS)",
        0,
        "SELECT",
    );
    refused(
        "DELETE FROM CUSTOMERS WHERE ID IN (SELECT ID FROM ORDERS)",
        0,
        "SELECT",
    );
    refused(
        "INSERT INTO CUSTOMERS (ID) VALUES (GEN_ID(G_CUSTOMERS, 1))",
        0,
        "GEN_ID",
    );
    refused(
        "INSERT INTO CUSTOMERS (ID) VALUES (NEXT VALUE FOR G)",
        0,
        "NEXT VALUE",
    );
    refused(
        "UPDATE CUSTOMERS SET A = RDB$SET_CONTEXT('USER_TRANSACTION', 'X', NULL)",
        0,
        "RDB$",
    );
    refused("UPDATE CUSTOMERS SET A = MY_PROC(?)", 1, "MY_PROC");
    refused("UPDATE CUSTOMERS SET A = \"upper\"(?)", 1, "call of");
    refused("UPDATE CUSTOMERS SET A = X.UPPER(?)", 1, "UPPER");
    refused(
        "MERGE INTO CUSTOMERS USING SECRETS S ON 1 = 1 WHEN MATCHED THEN DELETE",
        0,
        "SECRETS",
    );
    refused(
        "MERGE INTO CUSTOMERS C USING (SELECT ID FROM SECRETS) S ON C.ID = S.ID WHEN MATCHED \
         THEN DELETE",
        0,
        "RDB$DATABASE",
    );
    refused(
        "MERGE INTO CUSTOMERS C USING (SELECT ? AS ID FROM RDB$DATABASE JOIN SECRETS ON 1=1) S \
         ON C.ID = S.ID WHEN MATCHED THEN DELETE",
        1,
        "RDB$DATABASE",
    );
    refused(
        "MERGE INTO CUSTOMERS C USING (SELECT (SELECT X FROM SECRETS) AS ID FROM RDB$DATABASE) \
         S ON C.ID = S.ID WHEN MATCHED THEN DELETE",
        0,
        "SELECT",
    );
    refused("MERGE INTO CUSTOMERS C ON 1 = 1", 0, "USING");
    refused("UPDATE CUSTOMERS SET A = (? ", 1, "unbalanced");
    refused("UPDATE CUSTOMERS SET A = ?) ", 1, "unbalanced");
}

#[test]
fn counts_placeholders_outside_literals() {
    refused(
        "UPDATE CUSTOMERS SET A = ?, B = ? WHERE ID = ?",
        2,
        "3 `?` placeholders but 2",
    );
    refused(
        "UPDATE CUSTOMERS SET A = '?' WHERE ID = ?",
        2,
        "1 `?` placeholders but 2",
    );
    assert!(check("UPDATE CUSTOMERS SET \"A?\" = '??' WHERE ID = ?", 1).is_ok());
}

#[test]
fn postgres_rules_for_upstream() {
    let pg = Dialect::Postgres;
    assert!(check_in(
        "INSERT INTO customers (id) VALUES (?) ON CONFLICT (id) DO UPDATE SET name \
                      = EXCLUDED.name",
        1,
        pg
    )
    .is_ok());
    assert!(check_in(
        "INSERT INTO \"customers\" (id) VALUES (?::numeric(18,2))",
        1,
        pg
    )
    .is_ok());
    assert!(check_in(
        "INSERT INTO customers (ts) VALUES (CAST(? AS TIMESTAMP WITH TIME ZONE))",
        1,
        pg
    )
    .is_ok());
    assert!(check_in("INSERT INTO \"CUSTOMERS\" (id) VALUES (?)", 1, pg).is_err());
    assert!(check_in(
        "UPDATE OR INSERT INTO customers (id) VALUES (?) MATCHING (id)",
        1,
        pg
    )
    .is_err());
    assert!(check_in("UPDATE customers SET a = o.a FROM orders o", 0, pg).is_err());
    assert!(check_in("DELETE FROM customers USING orders", 0, pg).is_err());
    assert!(check_in("UPDATE customers SET a = pg_sleep(10)", 0, pg).is_err());
    assert!(check_in("INSERT INTO customers (id) VALUES (nextval('s'))", 0, pg).is_err());
    assert!(check_in(
        "MERGE INTO customers c USING (SELECT ? AS id) s ON c.id = s.id WHEN MATCHED THEN DELETE",
        1,
        pg
    )
    .is_ok());
    let schema = AllowedWrites::new(&["public.customers".into()]).unwrap();
    let mut sql = "DELETE FROM PUBLIC.Customers WHERE id = ?".to_string();
    assert!(validate(&mut sql, 1, pg, &schema).is_ok());
    let mut sql = "DELETE FROM customers WHERE id = ?".to_string();
    assert!(validate(&mut sql, 1, pg, &schema).is_err());
}

#[test]
fn declared_names_parse_strictly() {
    assert!(TableName::parse("CUSTOMERS").is_ok());
    assert!(TableName::parse("\"Odd \"\"Name\"\"\"").is_ok());
    assert!(TableName::parse("A B").is_err());
    assert!(TableName::parse("A; DROP").is_err());
    assert!(TableName::parse("").is_err());
    assert!(AllowedWrites::new(&["*".into()]).is_err());
}

#[test]
fn ponte_tables_are_refused_even_when_declared() {
    assert!(AllowedWrites::new(&["SYNC_CONTROL".into()]).is_err());
    let err = AllowedWrites::new(&["CLIENTES".into(), "INDICE".into(), "ponte_inbox".into()])
        .unwrap_err();
    assert!(
        err.contains("INDICE") && err.contains("ponte_inbox"),
        "{err}"
    );
    // A validator given such a set anyway (defence in depth) still refuses the statement.
    let forged = AllowedWrites(vec![
        TableName::parse("SYNC_CONTROL").unwrap(),
        TableName::parse("pg_sync_outbox").unwrap(),
    ]);
    let mut fb = "INSERT INTO SYNC_CONTROL (CORRELATION_ID) VALUES (?)".to_string();
    let err = validate(&mut fb, 1, Dialect::Firebird, &forged).unwrap_err();
    assert!(err.contains("ponte's own tables"), "{err}");
    let mut pg = "DELETE FROM pg_sync_outbox WHERE id = ?".to_string();
    let err = validate(&mut pg, 1, Dialect::Postgres, &forged).unwrap_err();
    assert!(err.contains("pg_sync_outbox"), "{err}");
}
