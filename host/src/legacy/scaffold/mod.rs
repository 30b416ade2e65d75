//! `ponte tables scaffold --pg-table T [--unit N] [--target NAME] [--write] [--all]`: reads
//! PostgreSQL's catalog and the unit's RDB$ catalog, matches columns by name (case-insensitive)
//! and prints the `[tables.T]` block for the generic transform with every setting filled in, a
//! comment on every mismatch, and the generator the unit's triggers feed the key from.

mod map;

use std::fmt::Write as _;

use anyhow::{bail, Context};
use rsfbclient::FbError;

pub use map::{map_column, Mapped};

use super::catalog::{array_columns, primary_key, triggers_on, user_tables};
use super::pgcat::{self, PgColumn};
use super::psql::effects;
use crate::config::Config;
use crate::firebird::{table_columns, Column, FbConn, HOST_WRITE_FLAG};

/// What the unit says about one table.
#[derive(Debug, Clone)]
pub struct UnitTable {
    /// Its name.
    pub name: String,
    /// Columns in position order.
    pub columns: Vec<Column>,
    /// ARRAY columns.
    pub arrays: Vec<String>,
    /// Primary key columns.
    pub key: Vec<String>,
    /// The generator its triggers feed the key from (`NEW.ID = GEN_ID(G, 1)`).
    pub generator: Option<String>,
}

/// Reads one unit table; None when it does not exist.
pub fn read_unit_table(conn: &mut FbConn, name: &str) -> Result<Option<UnitTable>, FbError> {
    let Some(columns) = table_columns(conn, name)? else {
        return Ok(None);
    };
    let key = primary_key(conn, name)?;
    let mut generator = None;
    for t in triggers_on(conn, name)?.into_iter().filter(|t| t.active) {
        let Some(Ok(e)) = t.source.as_deref().map(|s| effects(s, HOST_WRITE_FLAG)) else {
            continue;
        };
        generator = generator.or_else(|| {
            e.assigns
                .iter()
                .filter(|a| key.iter().any(|k| k.eq_ignore_ascii_case(&a.column)))
                .find_map(|a| a.generator.clone())
        });
    }
    Ok(Some(UnitTable {
        name: name.to_string(),
        arrays: array_columns(conn, name)?,
        columns,
        key,
        generator,
    }))
}

/// The `[tables]` name of a PostgreSQL table: its name without the schema.
fn entry_name(pg_table: &str) -> String {
    pgcat::split_name(pg_table).1
}

/// The block for one table pair. `Err` when no block can work (no key, a key column unmapped).
pub fn render(
    pg_table: &str,
    pg: &[PgColumn],
    pg_key: &[String],
    unit: &UnitTable,
    unit_id: i32,
) -> Result<String, String> {
    let name = entry_name(pg_table);
    let mut head = String::new();
    let mut cols = String::new();
    let mut notes: Vec<String> = Vec::new();
    let mut mapped_fb: Vec<String> = Vec::new();
    let mut pg_only: Vec<String> = Vec::new();
    for p in pg {
        let Some(fb) = unit
            .columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&p.name))
        else {
            pg_only.push(p.name.clone());
            continue;
        };
        if fb.computed {
            notes.push(format!(
                "{}: COMPUTED BY at the unit (it calculates the value); PostgreSQL {} left out",
                fb.name, p.name
            ));
            pg_only.push(p.name.clone());
            continue;
        }
        if unit.arrays.contains(&fb.name) {
            notes.push(format!(
                "{}: an ARRAY column; no transform can bind Firebird arrays, left out",
                fb.name
            ));
            pg_only.push(p.name.clone());
            continue;
        }
        match map_column(p, fb) {
            Ok(m) => {
                for c in &m.comments {
                    let _ = writeln!(cols, "# {}: {c}", p.name);
                }
                let _ = writeln!(cols, "{} = {}", toml_key(&p.name), m.spec);
                mapped_fb.push(fb.name.clone());
            }
            Err(why) => {
                notes.push(format!("{}: {why}; left out", p.name));
                pg_only.push(p.name.clone());
            }
        }
    }
    for fb in unit.columns.iter().filter(|c| !mapped_fb.contains(&c.name)) {
        if pg.iter().any(|p| p.name.eq_ignore_ascii_case(&fb.name)) {
            continue;
        }
        let warn = if fb.not_null && !fb.has_default && !fb.computed {
            " WARNING: NOT NULL without a default, every insert ponte makes fails"
        } else {
            ""
        };
        let what = if fb.computed {
            "COMPUTED BY at the unit (it calculates the value)".to_string()
        } else if unit.arrays.contains(&fb.name) {
            "an ARRAY column (no transform can bind Firebird arrays)".to_string()
        } else {
            fb.type_text()
        };
        notes.push(format!(
            "{}: {what}, only at the unit, not written{warn}",
            fb.name
        ));
    }
    if unit.key.is_empty() {
        return Err(format!("unit table {} has no primary key", unit.name));
    }
    if let Some(k) = unit.key.iter().find(|k| !mapped_fb.contains(k)) {
        return Err(format!(
            "unit key column {}.{k} has no PostgreSQL column it can be fed from",
            unit.name
        ));
    }
    let pg_key_upper: Vec<String> = pg_key.iter().map(|k| k.to_ascii_uppercase()).collect();
    let _ = writeln!(
        head,
        "# scaffolded by `ponte tables scaffold` from PostgreSQL {pg_table} and unit {unit_id} {}",
        unit.name
    );
    for n in &notes {
        let _ = writeln!(head, "# {n}");
    }
    if pg_key_upper != unit.key {
        let _ = writeln!(
            head,
            "# key: the unit's primary key ({}) differs from PostgreSQL's ({})",
            unit.key.join(", "),
            pg_key.join(", ")
        );
    }
    let _ = writeln!(head, "[tables.{}]", toml_key(&name));
    let _ = writeln!(head, "ops = \"IUD\"\ntransform = \"generic\"");
    if pgcat::split_name(pg_table).0 != "public" {
        let _ = writeln!(head, "pg_table = \"{pg_table}\"");
    }
    if let Some(g) = &unit.generator {
        let _ = writeln!(
            head,
            "# the unit's triggers feed {} from {g}",
            unit.key.join(", ")
        );
        let _ = writeln!(head, "generator = \"{g}\"");
    }
    let _ = writeln!(head, "[tables.{}.settings]", toml_key(&name));
    let _ = writeln!(head, "target = \"{}\"", unit.name);
    let keys: Vec<String> = unit.key.iter().map(|k| format!("\"{k}\"")).collect();
    let _ = writeln!(head, "key = [{}]", keys.join(", "));
    if !pg_only.is_empty() {
        let _ = writeln!(
            head,
            "# PostgreSQL columns not written at the unit: {}",
            pg_only.join(", ")
        );
        let _ = writeln!(head, "unmapped = \"ignore\"");
    }
    let _ = writeln!(head, "[tables.{}.settings.columns]", toml_key(&name));
    Ok(format!("{head}{cols}"))
}

/// A TOML key: bare when it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// What to scaffold.
#[derive(Debug, Clone)]
pub struct Request {
    /// The PostgreSQL table (`schema.table` or bare); ignored with `all`.
    pub pg_table: Option<String>,
    /// The unit whose schema is read (default: the first configured).
    pub unit: Option<i32>,
    /// The unit table (default: the PostgreSQL name, case-insensitive).
    pub target: Option<String>,
    /// Every PostgreSQL table that has a unit table of the same name.
    pub all: bool,
}

/// The blocks, and the tables skipped with the reason.
pub async fn scaffold(config: &Config, req: &Request) -> anyhow::Result<(String, Vec<String>)> {
    let unit_id = match req.unit {
        Some(id) => id,
        None => config
            .units()
            .first()
            .map(|u| u.id)
            .context("no units configured")?,
    };
    let unit = super::unit(config, unit_id)?;
    let pool = crate::pg::connect(&config.postgres)
        .await
        .context("connecting to PostgreSQL")?;
    let pg_tables: Vec<String> = match (&req.pg_table, req.all) {
        (_, true) => pgcat::tables(&pool).await?,
        (Some(t), false) => vec![t.clone()],
        (None, false) => bail!("give --pg-table T, or --all"),
    };
    let unit_tables = super::with_unit(config, &unit, |conn, _| Ok(user_tables(conn)?)).await?;
    let mut pairs = Vec::new();
    let mut skipped = Vec::new();
    for t in &pg_tables {
        let wanted = match (&req.target, req.all) {
            (Some(target), false) => target.clone(),
            _ => entry_name(t),
        };
        match unit_tables.iter().find(|u| u.eq_ignore_ascii_case(&wanted)) {
            Some(u) => pairs.push((t.clone(), u.clone())),
            None if req.all => {}
            None => bail!("unit {unit_id} has no table {wanted} (give --target NAME)"),
        }
        if config.tables.contains_key(&entry_name(t)) && req.all {
            skipped.push(format!(
                "{t}: [tables.{}] is already configured",
                entry_name(t)
            ));
            pairs.retain(|(p, _)| p != t);
        }
    }
    let mut out = String::new();
    for (pg_table, unit_table) in pairs {
        let pg = pgcat::columns(&pool, &pg_table).await?;
        let pg_key = pgcat::primary_key(&pool, &pg_table).await?;
        let name = unit_table.clone();
        let fb = super::with_unit(config, &unit, move |conn, _| {
            read_unit_table(conn, &name)?.context("the unit table vanished")
        })
        .await?;
        match render(&pg_table, &pg, &pg_key, &fb, unit_id) {
            Ok(block) => {
                out.push_str(&block);
                out.push('\n');
            }
            Err(why) if req.all => skipped.push(format!("{pg_table}: {why}")),
            Err(why) => bail!("{pg_table}: {why}"),
        }
    }
    pool.close().await;
    Ok((out, skipped))
}

/// Appends `blocks` to the config file at `path` and validates the result; on an invalid
/// result the file is put back as it was and the error says why.
pub fn write(path: &std::path::Path, blocks: &str) -> anyhow::Result<()> {
    let before =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut after = before.clone();
    if !after.ends_with('\n') {
        after.push('\n');
    }
    after.push('\n');
    after.push_str(blocks);
    std::fs::write(path, &after).with_context(|| format!("writing {}", path.display()))?;
    if let Err(e) = Config::load(path) {
        std::fs::write(path, before).with_context(|| format!("restoring {}", path.display()))?;
        bail!(
            "the scaffolded blocks do not validate, {} is unchanged: {e}",
            path.display()
        );
    }
    Ok(())
}
