//! `ponte verify` and `ponte repair` on hand-edited sites: after a row deleted, a row added, a
//! column changed, a NUMERIC off by one cent, accented text changed and CHAR padding changed at
//! unit 1, verify reports exactly those (and nothing for the padding a CHAR ignores), with zero
//! false positives while the application keeps writing; repair fixes them and keeps the extra
//! row unless asked; a site joining with rows of its own keeps them and has them reported.

use std::time::Duration;

use ponte::daemon::Roles;
use ponte::demo::{load, LoadOptions};
use ponte::lifecycle::{self, RepairOptions, TableVerify, Tools, UnitVerify};
use ponte::progress::Progress;
use ponte::telemetry::LifecycleMetrics;
use ponte_tests::{check, firebird, paced, TestEnv, UnitSpec};
use rsfbclient::prelude::*;

const UNITS: [UnitSpec; 2] = [
    UnitSpec {
        id: 1,
        charset: "WIN1252",
    },
    UnitSpec {
        id: 2,
        charset: "UTF8",
    },
];

fn edit(db: &str, statements: &[String]) {
    let mut conn = firebird::connect(db).unwrap();
    conn.begin_transaction().unwrap();
    for s in statements {
        conn.execute(s, ()).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    conn.commit().unwrap();
}

fn ids(db: &str, sql: &str) -> Vec<i64> {
    let mut conn = firebird::connect(db).unwrap();
    let rows: Vec<(i64,)> = conn.query(sql, ()).unwrap();
    rows.into_iter().map(|(i,)| i).collect()
}

fn table<'a>(r: &'a UnitVerify, name: &str) -> &'a TableVerify {
    r.tables.iter().find(|t| t.table == name).unwrap()
}

async fn verify(env: &TestEnv, tools: &Tools, unit: i32) -> UnitVerify {
    let config = env.config().unwrap();
    let units: Vec<_> = config
        .units()
        .into_iter()
        .filter(|u| u.id == unit)
        .collect();
    let mut r = lifecycle::verify_units(&env.pg, &config, tools, &units, &[], &Progress::lines())
        .await
        .unwrap();
    let r = r.remove(0);
    print!("{r}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_reports_exactly_the_hand_edits_and_repair_fixes_them() {
    let mut env = TestEnv::new(&UNITS).await.expect("env");
    env.extra_toml = "[verify]\nchunk_size = 200\nleaf_rows = 16\n".into();
    env.install_transforms(&["customers", "orders", "generic"])
        .unwrap();
    let (running, stop) = env
        .start(Roles {
            relay: true,
            apply: true,
            ..Roles::none()
        })
        .await
        .unwrap();
    load(
        &env.pg,
        &LoadOptions {
            changes: 1_500,
            units: vec![1, 2],
            concurrency: 4,
            seed: 5,
        },
        |_| {},
    )
    .await
    .unwrap();
    env.wait_outbox_drained(Duration::from_secs(120))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(60))
        .await
        .unwrap();
    let config = env.config().unwrap();
    let tools = Tools::open(&config, LifecycleMetrics::detached().unwrap())
        .await
        .unwrap();
    let (db1, db2) = (env.units[0].1.clone(), env.units[1].1.clone());

    // Hand edits at unit 1, each on its own row.
    let free = ids(
        &db1,
        "SELECT ID FROM CLIENTES C WHERE NOT EXISTS \
         (SELECT 1 FROM PEDIDOS P WHERE P.CLIENTE_ID = C.ID) ORDER BY ID",
    );
    let mut c = ids(
        &db1,
        "SELECT ID FROM CLIENTES WHERE REF_EXTERNA IS NOT NULL ORDER BY ID",
    );
    c.retain(|id| *id != free[0]);
    c.insert(0, free[0]);
    let accented = ids(
        &db1,
        "SELECT ID FROM CLIENTES WHERE CIDADE LIKE '%ã%' OR CIDADE LIKE '%é%' ORDER BY ID",
    );
    let accented = *accented
        .iter()
        .find(|id| !c[..5].contains(id))
        .expect("an accented city");
    let p = ids(&db1, "SELECT ID FROM PRODUTOS ORDER BY ID");
    assert!(c.len() >= 6 && !p.is_empty());
    edit(
        &db1,
        &[
            format!("DELETE FROM CLIENTES WHERE ID = {}", c[0]),
            "INSERT INTO CLIENTES (ID, NOME, ATIVO) VALUES (987654321, 'Cliente local', 'S')"
                .into(),
            format!(
                "UPDATE CLIENTES SET NOME = NOME || ' (editado)' WHERE ID = {}",
                c[1]
            ),
            format!(
                "UPDATE PRODUTOS SET PRECO = PRECO + 0.01 WHERE ID = {}",
                p[0]
            ),
            format!(
                "UPDATE CLIENTES SET CIDADE = REPLACE(REPLACE(CIDADE, 'ã', 'a'), 'é', 'e') \
             WHERE ID = {accented}"
            ),
            // Trailing blanks of a CHAR are padding: not a difference.
            format!(
                "UPDATE CLIENTES SET REF_EXTERNA = TRIM(REF_EXTERNA) WHERE ID = {}",
                c[2]
            ),
            // A leading blank is one.
            format!(
                "UPDATE CLIENTES SET REF_EXTERNA = ' ' || SUBSTRING(REF_EXTERNA FROM 1 FOR 35) \
             WHERE ID = {}",
                c[3]
            ),
        ],
    );

    // The application keeps writing meanwhile (its rows change while verify reads them), at a
    // pace the units keep up with on a shared 2-core box.
    let (writing, writer) = paced::paced_writer(&env, 1, 30, Duration::from_millis(250), 900);
    let r = verify(&env, &tools, 1).await;
    let customers = table(&r, "customers");
    assert_eq!(
        (customers.missing, customers.extra, customers.differing),
        (1, 1, 3),
        "customers: {:?}",
        customers.samples
    );
    let lines = customers.samples.join("\n");
    assert!(lines.contains("extra ID=987654321"), "{lines}");
    assert!(
        lines.contains(&format!("differs ID={}: NOME", c[1])),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("differs ID={accented}: CIDADE")),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("differs ID={}: REF_EXTERNA", c[3])),
        "{lines}"
    );
    assert!(
        !lines.contains(&format!("ID={}:", c[2])),
        "CHAR padding is no difference: {lines}"
    );
    assert!(lines.contains(&format!("missing ID={}", c[0])), "{lines}");
    let products = table(&r, "products");
    assert_eq!(
        (products.missing, products.extra, products.differing),
        (0, 0, 1)
    );
    assert!(
        products.samples[0].contains(&format!("differs ID={}: PRECO", p[0])),
        "{:?}",
        products.samples
    );
    for t in ["orders", "order_items"] {
        assert!(table(&r, t).is_clean(), "{t}: {:?}", table(&r, t).samples);
    }
    let r2 = verify(&env, &tools, 2).await;
    assert!(r2.is_clean(), "unit 2 has no edits");
    // `ponte status` shows the last verify result of each unit and table.
    let status = ponte::ops::status::report(&config).await.unwrap();
    let line = |unit: &str, t: &str| {
        status
            .lines()
            .find(|l| l.split_whitespace().take(2).eq([unit, t]))
            .unwrap_or_else(|| panic!("no verify line for unit {unit} {t} in:\n{status}"))
            .to_string()
    };
    assert!(line("1", "products").contains("DIFFERS"), "{status}");
    assert!(line("2", "products").contains("clean"), "{status}");

    // Repair without --delete-extra: the edits are undone, the local row stays.
    let unit1 = config.units().remove(0);
    let fixed = lifecycle::repair_unit(
        &env.pg,
        &config,
        &tools,
        &unit1,
        &RepairOptions::default(),
        &Progress::lines(),
    )
    .await
    .unwrap();
    print!("{fixed}");
    writing.cancel();
    assert!(
        writer.await.unwrap() > 0,
        "the application wrote during verify and repair"
    );
    env.wait_outbox_drained(Duration::from_secs(120))
        .await
        .unwrap();
    let r = verify(&env, &tools, 1).await;
    let customers = table(&r, "customers");
    assert_eq!(
        (customers.missing, customers.extra, customers.differing),
        (0, 1, 0)
    );
    assert!(table(&r, "products").is_clean());
    // With --delete-extra it goes too; then verify is clean, and so is the row-by-row check.
    let fixed = lifecycle::repair_unit(
        &env.pg,
        &config,
        &tools,
        &unit1,
        &RepairOptions {
            delete_extra: true,
            ..RepairOptions::default()
        },
        &Progress::lines(),
    )
    .await
    .unwrap();
    assert_eq!(fixed.tables.iter().map(|t| t.deleted).sum::<u64>(), 1);
    let r = verify(&env, &tools, 1).await;
    assert!(r.is_clean());

    // A site joining with rows of its own: a load keeps them and reports them.
    edit(
        &db2,
        &[
            "INSERT INTO CLIENTES (ID, NOME, ATIVO) VALUES (900000101, 'Loja própria 1', 'S')"
                .into(),
            "INSERT INTO CLIENTES (ID, NOME, ATIVO) VALUES (900000102, 'Loja própria 2', 'N')"
                .into(),
        ],
    );
    let unit2 = config.units().remove(1);
    let keep = lifecycle::LoadOptions {
        tables: vec!["customers".into()],
        delete_extra: false,
        skip_extra: false,
    };
    let done = lifecycle::load_unit(&env.pg, &config, &tools, &unit2, &keep, &Progress::lines())
        .await
        .unwrap();
    print!("{done}");
    assert_eq!(done.tables[0].extra, Some(2));
    assert_eq!(done.tables[0].deleted, 0);
    env.wait_outbox_drained(Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(
        ids(&db2, "SELECT COUNT(*) FROM CLIENTES WHERE ID > 900000100")[0],
        2
    );
    let drop = lifecycle::LoadOptions {
        delete_extra: true,
        ..keep
    };
    let done = lifecycle::load_unit(&env.pg, &config, &tools, &unit2, &drop, &Progress::lines())
        .await
        .unwrap();
    assert_eq!(done.tables[0].deleted, 2);
    env.wait_outbox_drained(Duration::from_secs(120))
        .await
        .unwrap();
    check::units_match(&env, Duration::from_secs(60))
        .await
        .unwrap();
    // And the latest load run of unit 2, per table, with the extras it deleted.
    let status = ponte::ops::status::report(&config).await.unwrap();
    assert!(
        status.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 8 && f[0] == "2" && f[2] == "load" && f[4] == "customers" && f[8] == "2-2"
        }),
        "no load line for unit 2 in:\n{status}"
    );

    stop.cancel();
    running.wait().await;
    env.cleanup().await;
}
