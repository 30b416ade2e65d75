//! The cost of periodic capture at a unit (`capture = "periodic"`), against the raw limits of the
//! same Firebird measured in the same run: a CLIENTES table of `PONTE_BENCH_ROWS` rows (default
//! 100,000) at one unit, then
//!   baseline     `capture install` records every row's fingerprint
//!   idle round   nothing changed: every row fingerprinted and compared, nothing written
//!   10% changed  a round that logs a tenth of the rows into SYNC_LOG
//!   1% deleted   a round whose count check finds deletes and runs the deletes pass
//! and, as the raw limits, `SELECT COUNT(*)` and reading every row to the host (what a capture
//! that compares on the host would have to move over the site's link). Every pass checks its
//! work (rows logged, fingerprints left). Run: `cargo bench -p ponte-tests --bench unit_periodic`.

use std::time::Instant;

use anyhow::ensure;
use ponte::capture::periodic::run_round;
use ponte_tests::measure::env_or;
use ponte_tests::upstream::{upstream_toml, FbCliente};
use ponte_tests::{TestEnv, UnitSpec};
use rsfbclient::prelude::*;

fn timed<T>(
    what: &str,
    rows: i64,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, f64)> {
    let at = Instant::now();
    let out = f()?;
    let secs = at.elapsed().as_secs_f64();
    println!(
        "{what:<34} {secs:>8.3} s  {:>10.0} rows/s",
        rows as f64 / secs
    );
    Ok((out, secs))
}

fn count(conn: &mut ponte::firebird::FbConn, sql: &str) -> anyhow::Result<i64> {
    let row: Option<(i64,)> = conn.query_first(sql, ())?;
    Ok(row.map(|(n,)| n).unwrap_or(-1))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: i64 = env_or("PONTE_BENCH_ROWS", 100_000);
    let mut env = TestEnv::new(&[UnitSpec {
        id: 1,
        charset: "WIN1252",
    }])
    .await?;
    env.extra_toml = upstream_toml("pg_wins").replace(
        "[upstream.tables.CLIENTES]\n",
        "[upstream.tables.CLIENTES]\ncapture = \"periodic\"\nevery = \"1h\"\n",
    );
    let config = env.config()?;
    let db = env.units[0].1.clone();
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = ponte_tests::firebird::connect(&db)?;
        conn.execute(
            "EXECUTE BLOCK (N BIGINT = ?) AS DECLARE I BIGINT = 1; BEGIN WHILE (I <= N) DO BEGIN \
             INSERT INTO CLIENTES (ID, NOME, EMAIL, CIDADE, ATIVO, LIMITE_CREDITO, DATA_NASCIMENTO) \
             VALUES (:I, 'Cliente ção ' || :I, 'c' || :I || '@exemplo.com.br', 'São Paulo', 'S', :I / 100.0, '1980-02-29'); \
             I = I + 1; END END",
            (rows,),
        )?;
        println!("unit periodic capture, CLIENTES with {rows} rows, one unit (Firebird on 127.0.0.1)");
        let (_, raw_count) = timed("raw: SELECT COUNT(*)", rows, || count(&mut conn, "SELECT COUNT(*) FROM CLIENTES"))?;
        let (read, raw_read) = timed("raw: read every row to the host", rows, || {
            let all: Vec<FbCliente> = conn.query(
                "SELECT ID, NOME, EMAIL, CIDADE, ATIVO, CAST(LIMITE_CREDITO AS VARCHAR(30)) FROM CLIENTES",
                (),
            )?;
            Ok(all.len() as i64)
        })?;
        ensure!(read == rows);
        let (_, seed) = timed("baseline (capture install)", rows, || {
            Ok(ponte::capture::install_unit(&mut conn, &config, 1)?)
        })?;
        ensure!(count(&mut conn, "SELECT COUNT(*) FROM SYNC_PERIODIC")? == rows);
        let due = vec!["CLIENTES".to_string()];
        let (report, idle) = timed("idle round (nothing changed)", rows, || Ok(run_round(&mut conn, &config, &due)?))?;
        ensure!(report.tables[0].1.changed == 0 && count(&mut conn, "SELECT COUNT(*) FROM SYNC_LOG")? == 0);
        conn.execute("UPDATE CLIENTES SET CIDADE = 'Maceió' WHERE MOD(ID, 10) = 0", ())?;
        let (report, changed) = timed("round, 10% changed", rows, || Ok(run_round(&mut conn, &config, &due)?))?;
        ensure!(report.tables[0].1.changed == rows / 10, "{report:?}");
        conn.execute("DELETE FROM SYNC_LOG", ())?;
        conn.execute("DELETE FROM CLIENTES WHERE MOD(ID, 100) = 1", ())?;
        let (report, deleted) = timed("round, 1% deleted", rows, || Ok(run_round(&mut conn, &config, &due)?))?;
        ensure!(report.tables[0].1.deleted == rows / 100, "{report:?}");
        ensure!(count(&mut conn, "SELECT COUNT(*) FROM SYNC_PERIODIC")? == rows - rows / 100);
        println!(
            "ratios: idle round = {:.1}x a raw COUNT(*), {:.2}x reading every row to the host \
             (bytes over the link for an idle round: a count and a few bytes); baseline {:.2}x, \
             10%-changed round {:.2}x, deletes round {:.2}x the raw read",
            idle / raw_count,
            idle / raw_read,
            seed / raw_read,
            changed / raw_read,
            deleted / raw_read
        );
        let _ = conn.close();
        Ok(())
    })
    .await?;
    env.cleanup().await;
    result
}
