//! Onboarding a legacy schema with zero hand-written column specs, on the real servers: a
//! multi-table schema (composite key, self-referencing and circular foreign keys, BLOB text,
//! NUMERIC(18,2), DATE/TIMESTAMP, a COMPUTED BY and an ARRAY column, a PostgreSQL-only generated
//! column) is scaffolded with `tables scaffold --all`, written into the config file (which then
//! validates), and that config, unedited, syncs PostgreSQL -> 3 units with 0 differences, row by
//! row, through inserts, updates and deletes.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte::legacy::scaffold::{scaffold, write as write_config, Request};
use ponte_tests::legacy::{fb_rows, outbox_rows, pg_rows, unit_ddl, wait_applied, write};
use ponte_tests::{TestEnv, UnitSpec};

const PG: &str = "
CREATE TABLE sc_region (code varchar(10) PRIMARY KEY, name text NOT NULL,
    parent_code varchar(10) REFERENCES sc_region (code));
CREATE TABLE sc_store (id bigint PRIMARY KEY, region_code varchar(10) NOT NULL REFERENCES sc_region,
    name varchar(80) NOT NULL, opened date, manager_id bigint, notes text);
CREATE TABLE sc_employee (id bigint PRIMARY KEY, store_id bigint REFERENCES sc_store,
    name varchar(80) NOT NULL, salary numeric(18,2) NOT NULL, hired_at timestamp,
    annual numeric(18,2) GENERATED ALWAYS AS (salary * 12) STORED);
ALTER TABLE sc_store ADD FOREIGN KEY (manager_id) REFERENCES sc_employee;
CREATE TABLE sc_stock (store_id bigint REFERENCES sc_store, sku varchar(20), qty integer NOT NULL,
    price numeric(18,2) NOT NULL, updated_at timestamp NOT NULL,
    total numeric(18,2) GENERATED ALWAYS AS (qty * price) STORED, PRIMARY KEY (store_id, sku));
";

const FB: &str = "
CREATE TABLE SC_REGION (CODE VARCHAR(10) NOT NULL PRIMARY KEY, NAME VARCHAR(100) NOT NULL,
    PARENT_CODE VARCHAR(10) REFERENCES SC_REGION (CODE));
CREATE TABLE SC_STORE (ID BIGINT NOT NULL PRIMARY KEY,
    REGION_CODE VARCHAR(10) NOT NULL REFERENCES SC_REGION (CODE), NAME VARCHAR(80) NOT NULL,
    OPENED DATE, MANAGER_ID BIGINT, NOTES BLOB SUB_TYPE TEXT, FLAGS INTEGER [1:4]);
CREATE TABLE SC_EMPLOYEE (ID BIGINT NOT NULL PRIMARY KEY, STORE_ID BIGINT REFERENCES SC_STORE (ID),
    NAME VARCHAR(80) NOT NULL, SALARY NUMERIC(18,2) NOT NULL, HIRED_AT TIMESTAMP,
    ANNUAL COMPUTED BY (SALARY * 12));
ALTER TABLE SC_STORE ADD CONSTRAINT FK_SC_STORE_MANAGER FOREIGN KEY (MANAGER_ID)
    REFERENCES SC_EMPLOYEE (ID);
CREATE TABLE SC_STOCK (STORE_ID BIGINT NOT NULL REFERENCES SC_STORE (ID), SKU VARCHAR(20) NOT NULL,
    QTY INTEGER NOT NULL, PRICE NUMERIC(18,2) NOT NULL, UPDATED_AT TIMESTAMP NOT NULL,
    PRIMARY KEY (STORE_ID, SKU));
";

/// (PostgreSQL query, unit query) per table, every column as text in the same form.
const COMPARE: [(&str, &str); 4] = [
    (
        "SELECT code, name, parent_code FROM sc_region ORDER BY code",
        "SELECT CODE, NAME, PARENT_CODE FROM SC_REGION ORDER BY CODE",
    ),
    (
        "SELECT id::text, region_code, name, opened::text, manager_id::text, notes \
         FROM sc_store t ORDER BY t.id",
        "SELECT CAST(ID AS VARCHAR(20)), REGION_CODE, NAME, CAST(OPENED AS VARCHAR(10)), \
         CAST(MANAGER_ID AS VARCHAR(20)), NOTES FROM SC_STORE ORDER BY ID",
    ),
    (
        "SELECT id::text, store_id::text, name, salary::text, \
         to_char(hired_at, 'YYYY-MM-DD HH24:MI:SS.FF4'), (salary * 12)::text \
         FROM sc_employee t ORDER BY t.id",
        "SELECT CAST(ID AS VARCHAR(20)), CAST(STORE_ID AS VARCHAR(20)), NAME, \
         CAST(SALARY AS VARCHAR(30)), CAST(HIRED_AT AS VARCHAR(30)), CAST(ANNUAL AS VARCHAR(30)) \
         FROM SC_EMPLOYEE ORDER BY ID",
    ),
    (
        "SELECT store_id::text, sku, qty::text, price::text, \
         to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS.FF4') FROM sc_stock t \
         ORDER BY t.store_id, t.sku",
        "SELECT CAST(STORE_ID AS VARCHAR(20)), SKU, CAST(QTY AS VARCHAR(20)), \
         CAST(PRICE AS VARCHAR(30)), CAST(UPDATED_AT AS VARCHAR(30)) FROM SC_STOCK \
         ORDER BY STORE_ID, SKU",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaffolded_schema_syncs_with_zero_differences() {
    let units = [1, 2, 3].map(|id| UnitSpec {
        id,
        charset: "WIN1252",
    });
    let mut env = TestEnv::new(&units)
        .await
        .expect("test environment (PostgreSQL, RabbitMQ, Firebird)");
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    sqlx::raw_sql(PG).execute(&env.pg).await.unwrap();
    unit_ddl(&env, FB).unwrap();

    let request = Request {
        pg_table: None,
        unit: Some(1),
        target: None,
        all: true,
    };
    let (blocks, skipped) = scaffold(&env.config().unwrap(), &request).await.unwrap();
    println!("{blocks}\nskipped: {skipped:?}");
    for table in ["sc_region", "sc_store", "sc_employee", "sc_stock"] {
        assert!(
            blocks.contains(&format!("[tables.{table}]\n")),
            "{table}: {blocks}"
        );
    }
    assert!(blocks.contains("key = [\"STORE_ID\", \"SKU\"]"), "{blocks}");
    assert!(
        blocks.contains("notes = { column = \"NOTES\", type = \"text_blob\" }"),
        "{blocks}"
    );
    assert!(
        blocks.contains(
            "salary = { column = \"SALARY\", type = \"decimal\", precision = 18, scale = 2, \
             required = true }"
        ),
        "{blocks}"
    );
    assert!(
        blocks.contains("opened = { column = \"OPENED\", type = \"date\" }"),
        "{blocks}"
    );
    assert!(
        blocks.contains("# ANNUAL: COMPUTED BY at the unit"),
        "{blocks}"
    );
    assert!(blocks.contains("# FLAGS: an ARRAY column"), "{blocks}");
    assert!(
        blocks.contains("# name: wider: PostgreSQL text has no length limit"),
        "{blocks}"
    );
    assert!(
        blocks.contains("not written at the unit: total"),
        "{blocks}"
    );

    // The command prints the same block for one table.
    let path = env.write_config().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ponte-under-test"))
        .arg("--config")
        .arg(&path)
        .args([
            "tables",
            "scaffold",
            "--pg-table",
            "sc_stock",
            "--unit",
            "2",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("[tables.sc_stock]\n") && stdout.contains("key = [\"STORE_ID\", \"SKU\"]"),
        "{stdout}"
    );

    // --write: appended to the config file, which still validates.
    write_config(&path, &blocks).unwrap();
    ponte::config::Config::load(&path).expect("the written config validates");
    env.extra_toml = blocks;

    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    // Parents before children; the circular store <-> employee link closed by an update.
    write(
        &env,
        "INSERT INTO sc_region VALUES ('BR', 'Brasil', NULL), ('NE', 'Nordeste', 'BR'), \
         ('AL', 'Alagoas — Maceió', 'NE'), ('SP', 'São Paulo', 'BR'); \
         INSERT INTO sc_store SELECT g, CASE WHEN g % 2 = 0 THEN 'AL' ELSE 'SP' END, \
           'Loja ' || g, DATE '2001-01-01' + g, NULL, \
           CASE WHEN g % 3 = 0 THEN NULL ELSE 'notas da loja ' || g || ' ção' END \
         FROM generate_series(1, 12) g; \
         INSERT INTO sc_employee (id, store_id, name, salary, hired_at) \
           SELECT g, (g % 12) + 1, 'Funcionário ' || g, 1000.10 * g + 0.05, \
           TIMESTAMP '2020-02-03 04:05:06.789' + g * INTERVAL '1 day 1.5 second' \
         FROM generate_series(1, 30) g; \
         INSERT INTO sc_stock SELECT s, 'SKU-' || k, s * k, 9.99 * k, \
           TIMESTAMP '2024-12-31 23:59:59.1234' \
         FROM generate_series(1, 12) s, generate_series(1, 5) k",
        &format!(
            "{}; {}; {}; {}",
            outbox_rows(
                "sc_region",
                "I",
                "true",
                "t.parent_code IS NOT NULL, t.code = 'AL', t.code"
            ),
            outbox_rows("sc_store", "I", "true", "t.id"),
            outbox_rows("sc_employee", "I", "true", "t.id"),
            outbox_rows("sc_stock", "I", "true", "t.store_id, t.sku")
        ),
    )
    .await
    .unwrap();
    write(
        &env,
        "UPDATE sc_store SET manager_id = id + 12, notes = NULL WHERE id % 4 = 0; \
         UPDATE sc_employee SET salary = salary + 0.01, hired_at = NULL WHERE id % 5 = 0; \
         UPDATE sc_stock SET qty = qty + 1 WHERE sku = 'SKU-2'",
        &format!(
            "{}; {}; {}",
            outbox_rows("sc_store", "U", "t.id % 4 = 0", "t.id"),
            outbox_rows("sc_employee", "U", "t.id % 5 = 0", "t.id"),
            outbox_rows("sc_stock", "U", "t.sku = 'SKU-2'", "t.store_id")
        ),
    )
    .await
    .unwrap();
    // Deletes carry the full image (the generic transform reads the key from it).
    write(
        &env,
        "CREATE TEMP TABLE gone AS SELECT * FROM sc_stock WHERE sku = 'SKU-5'; \
         DELETE FROM sc_stock WHERE sku = 'SKU-5'",
        "INSERT INTO pg_sync_outbox (unit_id, table_name, operation, payload) \
         SELECT u, 'sc_stock', 'D', to_jsonb(t) FROM gone t, unnest({units}) u \
         ORDER BY u, t.store_id; DROP TABLE gone",
    )
    .await
    .unwrap();
    wait_applied(&env, Duration::from_secs(90)).await.unwrap();
    stop.cancel();
    running.wait().await;
    let dead = ponte_tests::check::dead_letters(&env, 1, Duration::from_secs(1))
        .await
        .unwrap_or_default();
    assert!(dead.is_empty(), "no dead letters: {dead:?}");

    let mut compared = 0;
    for (pg_sql, fb_sql) in COMPARE {
        let expected = pg_rows(&env, pg_sql).await.unwrap();
        assert!(!expected.is_empty(), "{pg_sql}");
        for (unit, db) in &env.units {
            let got = fb_rows(db, fb_sql).unwrap();
            assert_eq!(got.len(), expected.len(), "unit {unit}: {fb_sql}");
            for (g, e) in got.iter().zip(&expected) {
                assert_eq!(g, e, "unit {unit}: {fb_sql}");
                compared += 1;
            }
        }
    }
    println!("{compared} rows compared, 0 differences");
    env.cleanup().await;
}
