//! The generic transform's per-table settings (format in README.md): parsed and validated into a
//! `Plan`; every mistake is a `bad-settings` error that names the setting at fault.

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use ponte_transform_sdk::{decimal, sql, ColumnType, TransformError, Zone};

/// What to do with payload keys that no column maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmapped {
    /// Refuse the change (`bad-payload`): a new source column is noticed, never dropped silently.
    Error,
    /// Leave them out.
    Ignore,
}

/// What to do when a mapped key is absent from an insert/update payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Refuse the change (`bad-payload`).
    Error,
    /// Write NULL.
    Null,
    /// Leave the column out of the statement (an update keeps the current value).
    Skip,
}

/// One mapped payload key.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Payload (JSON) key.
    pub field: String,
    /// Target column, upper case.
    pub column: String,
    /// Conversion.
    pub ty: ColumnType,
    /// NULL is refused (`invalid-value`) when true.
    pub required: bool,
    /// Policy for an absent key.
    pub if_missing: IfMissing,
}

/// Validated settings of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Target table, upper case.
    pub target: String,
    /// Mapped keys, in settings order.
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the key columns, in `key` order.
    pub key: Vec<usize>,
    /// Unmapped-key policy.
    pub unmapped: Unmapped,
    /// INDICE key and the index of the integer column whose value is claimed.
    pub claim: Option<(String, usize)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    target: String,
    key: Vec<String>,
    columns: Map<String, Json>,
    #[serde(default)]
    unmapped: Option<String>,
    #[serde(default)]
    indice_key: Option<String>,
    #[serde(default)]
    indice_column: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    column: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    max_len: Option<u32>,
    #[serde(default)]
    precision: Option<u8>,
    #[serde(default)]
    scale: Option<u8>,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    true_value: Option<String>,
    #[serde(default)]
    false_value: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    if_missing: Option<String>,
}

/// Firebird 2.5 VARCHAR holds at most 32765 bytes.
const MAX_VARCHAR: u32 = 32_765;

fn bad(message: String) -> TransformError {
    TransformError::bad_settings(message)
}

/// The column type named by `raw.ty`, with the options that type takes and no others.
fn column_type(field: &str, raw: &RawColumn, default_zone: Zone) -> Result<ColumnType, String> {
    let used = [
        ("max_len", raw.max_len.is_some()),
        ("precision", raw.precision.is_some()),
        ("scale", raw.scale.is_some()),
        ("zone", raw.zone.is_some()),
        ("true_value", raw.true_value.is_some()),
        ("false_value", raw.false_value.is_some()),
    ];
    let allowed: &[&str] = match raw.ty.as_str() {
        "text" => &["max_len"],
        "decimal" | "numeric" => &["precision", "scale"],
        "timestamptz" => &["zone"],
        "bool_char" => &["true_value", "false_value"],
        _ => &[],
    };
    if let Some((option, _)) = used.iter().find(|(o, set)| *set && !allowed.contains(o)) {
        return Err(format!(
            "columns.{field}: `{option}` does not apply to type {}",
            raw.ty
        ));
    }
    Ok(match raw.ty.as_str() {
        "text" => match raw.max_len {
            Some(n @ 1..=MAX_VARCHAR) => ColumnType::Text {
                max_len: n as usize,
            },
            _ => {
                return Err(format!(
                    "columns.{field}: text needs max_len 1..={MAX_VARCHAR}"
                ))
            }
        },
        "bigint" | "int" => ColumnType::BIGINT,
        "integer" => ColumnType::INTEGER,
        "smallint" => ColumnType::SMALLINT,
        "decimal" | "numeric" => match (raw.precision, raw.scale) {
            (Some(p @ 1..=decimal::MAX_PRECISION), Some(s)) if s <= p => ColumnType::Decimal {
                precision: p,
                scale: s,
            },
            _ => {
                return Err(format!(
                    "columns.{field}: decimal needs precision 1..={} and scale 0..=precision",
                    decimal::MAX_PRECISION
                ))
            }
        },
        "double" => ColumnType::Double,
        "bool_char" => ColumnType::BoolText {
            yes: raw.true_value.clone().unwrap_or_else(|| "S".to_owned()),
            no: raw.false_value.clone().unwrap_or_else(|| "N".to_owned()),
        },
        "bool_smallint" => ColumnType::BoolSmallint,
        "uuid" => ColumnType::Uuid,
        "date" => ColumnType::Date,
        "timestamp" => ColumnType::Timestamp,
        "timestamptz" => match &raw.zone {
            Some(name) => ColumnType::TimestampTz(
                Zone::parse(name).map_err(|e| format!("columns.{field}.zone: {e}"))?,
            ),
            None => ColumnType::TimestampTz(default_zone),
        },
        "json_blob" => ColumnType::JsonBlob,
        "text_blob" => ColumnType::TextBlob,
        other => {
            return Err(format!(
                "columns.{field}: unknown type `{other}`; one of text, bigint, integer, \
                 smallint, decimal, double, bool_char, bool_smallint, uuid, date, timestamp, \
                 timestamptz, json_blob, text_blob"
            ))
        }
    })
}

fn column(field: &str, spec: &Json, default_zone: Zone) -> Result<Column, String> {
    let raw = RawColumn::deserialize(spec).map_err(|e| format!("columns.{field}: {e}"))?;
    let column = sql::ident(&raw.column).map_err(|e| format!("columns.{field}.column: {e}"))?;
    let ty = column_type(field, &raw, default_zone)?;
    let if_missing = match raw.if_missing.as_deref() {
        None | Some("error") => IfMissing::Error,
        Some("null") => IfMissing::Null,
        Some("skip") => IfMissing::Skip,
        Some(other) => {
            return Err(format!(
                "columns.{field}.if_missing: `{other}`; one of error, null, skip"
            ))
        }
    };
    Ok(Column {
        field: field.to_owned(),
        column,
        ty,
        required: raw.required,
        if_missing,
    })
}

impl Plan {
    /// Parses and validates settings text.
    pub fn parse(settings: &str) -> Result<Plan, TransformError> {
        let raw: RawSettings = serde_json::from_str(settings).map_err(|e| {
            bad(format!(
                "generic settings: {e} (see transforms/generic/README.md)"
            ))
        })?;
        let target = sql::ident(&raw.target).map_err(|e| bad(format!("target: {e}")))?;
        let zone_name = raw
            .timezone
            .as_deref()
            .unwrap_or(ponte_transform_sdk::time::DEFAULT_ZONE);
        let zone = Zone::parse(zone_name).map_err(|e| bad(format!("timezone: {e}")))?;

        let mut columns: Vec<Column> = Vec::with_capacity(raw.columns.len());
        for (field, spec) in &raw.columns {
            let c = column(field, spec, zone).map_err(bad)?;
            if columns.iter().any(|o| o.column == c.column) {
                return Err(bad(format!(
                    "columns.{field}: column {} mapped twice",
                    c.column
                )));
            }
            columns.push(c);
        }
        if columns.is_empty() {
            return Err(bad("columns: map at least the key".to_owned()));
        }

        if raw.key.is_empty() {
            return Err(bad(
                "key: name the target key column(s), e.g. [\"ID\"]".to_owned()
            ));
        }
        let mut key = Vec::with_capacity(raw.key.len());
        for name in &raw.key {
            let name = sql::ident(name).map_err(|e| bad(format!("key: {e}")))?;
            let at = columns
                .iter()
                .position(|c| c.column == name)
                .ok_or_else(|| {
                    bad(format!(
                        "key: column {name} is not the target of any columns entry"
                    ))
                })?;
            if key.contains(&at) {
                return Err(bad(format!("key: column {name} given twice")));
            }
            let c = &mut columns[at];
            if c.if_missing != IfMissing::Error {
                return Err(bad(format!(
                    "columns.{}: a key column cannot set if_missing",
                    c.field
                )));
            }
            c.required = true;
            key.push(at);
        }

        let unmapped = match raw.unmapped.as_deref() {
            None | Some("error") => Unmapped::Error,
            Some("ignore") => Unmapped::Ignore,
            Some(other) => return Err(bad(format!("unmapped: `{other}`; one of error, ignore"))),
        };

        let claim = match (raw.indice_key, raw.indice_column) {
            (None, None) => None,
            (None, Some(_)) => return Err(bad("indice_column needs indice_key".to_owned())),
            (Some(k), column) => {
                if k.trim().is_empty() {
                    return Err(bad("indice_key: empty".to_owned()));
                }
                let at = match column {
                    Some(name) => {
                        let name =
                            sql::ident(&name).map_err(|e| bad(format!("indice_column: {e}")))?;
                        key.iter()
                            .copied()
                            .find(|&i| columns[i].column == name)
                            .ok_or_else(|| {
                                bad(format!("indice_column: {name} is not a key column"))
                            })?
                    }
                    None => match key.as_slice() {
                        [only] => *only,
                        _ => {
                            return Err(
                                bad("indice_column: name one of the key columns".to_owned()),
                            )
                        }
                    },
                };
                if !matches!(columns[at].ty, ColumnType::Int { .. }) {
                    return Err(bad(format!(
                        "indice_column: {} must have an integer type",
                        columns[at].column
                    )));
                }
                Some((k, at))
            }
        };

        Ok(Plan {
            target,
            columns,
            key,
            unmapped,
            claim,
        })
    }
}
