//! What capture needs to know about a Firebird table, read from RDB$ metadata: its columns, how
//! each is read into the JSON row image, and its primary key (which forms the SYNC_LOG row key).

use rsfbclient::prelude::*;
use rsfbclient::FbError;

use crate::firebird::FbConn;
use crate::lifecycle::verify::canon::Kind;

/// How a column is read into the row image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// SMALLINT, INTEGER, BIGINT: a JSON number.
    Int,
    /// NUMERIC/DECIMAL with a scale: exact text (never through a float).
    Scaled,
    /// FLOAT, DOUBLE PRECISION: a JSON number.
    Float,
    /// CHAR(n): text without the trailing padding.
    Char,
    /// VARCHAR(n): text.
    Varchar,
    /// DATE, TIME, TIMESTAMP: Firebird's text form (`YYYY-MM-DD HH:MM:SS.ffff`).
    Temporal,
    /// BLOB SUB_TYPE TEXT: text.
    TextBlob,
    /// Binary blobs and anything else: left out of the image.
    Unsupported,
}

/// One column.
#[derive(Debug, Clone)]
pub struct FbColumn {
    /// Name as stored in RDB$ (upper case for unquoted names).
    pub name: String,
    /// How it is read.
    pub kind: ColumnKind,
    /// Characters of a CHAR/VARCHAR (0 for other types).
    pub chars: usize,
    /// How its value is fingerprinted (periodic capture); None: not compared.
    pub canon: Option<Kind>,
}

/// A captured table.
#[derive(Debug, Clone)]
pub struct TableShape {
    /// Table name.
    pub table: String,
    /// Columns in position order.
    pub columns: Vec<FbColumn>,
    /// Primary key columns, in key order (indexes into `columns`).
    pub pk: Vec<usize>,
}

fn kind(field_type: i64, sub_type: i64, scale: i64) -> ColumnKind {
    match field_type {
        7 | 8 | 16 if scale < 0 => ColumnKind::Scaled,
        7 | 8 | 16 => ColumnKind::Int,
        10 | 27 => ColumnKind::Float,
        14 => ColumnKind::Char,
        37 => ColumnKind::Varchar,
        12 | 13 | 35 => ColumnKind::Temporal,
        261 if sub_type == 1 => ColumnKind::TextBlob,
        _ => ColumnKind::Unsupported,
    }
}

fn canon_kind(field_type: i64, sub_type: i64, scale: i64, chars: i64) -> Option<Kind> {
    let small = |v: i64| i16::try_from(v).ok();
    Kind::of(
        small(field_type)?,
        small(sub_type)?,
        small(scale)?,
        i32::try_from(chars).ok(),
    )
}

impl TableShape {
    /// Reads the shape of `table` (upper case); an error when it does not exist or has no
    /// primary key.
    pub fn read(conn: &mut FbConn, table: &str) -> Result<TableShape, FbError> {
        let rows: Vec<(String, i64, i64, i64, i64)> = conn.query(
            "SELECT TRIM(RF.RDB$FIELD_NAME), F.RDB$FIELD_TYPE, COALESCE(F.RDB$FIELD_SUB_TYPE, 0), \
             COALESCE(F.RDB$FIELD_SCALE, 0), \
             COALESCE(F.RDB$CHARACTER_LENGTH, F.RDB$FIELD_LENGTH, 0) FROM RDB$RELATION_FIELDS RF \
             JOIN RDB$FIELDS F ON F.RDB$FIELD_NAME = RF.RDB$FIELD_SOURCE \
             WHERE RF.RDB$RELATION_NAME = ? ORDER BY RF.RDB$FIELD_POSITION",
            (table.to_string(),),
        )?;
        if rows.is_empty() {
            return Err(FbError::Other(format!(
                "table {table} does not exist in this database"
            )));
        }
        let columns: Vec<FbColumn> = rows
            .into_iter()
            .map(|(name, t, sub, scale, chars)| FbColumn {
                name,
                kind: kind(t, sub, scale),
                chars: usize::try_from(chars).unwrap_or(0),
                canon: canon_kind(t, sub, scale, chars),
            })
            .collect();
        let keys: Vec<(String,)> = conn.query(
            "SELECT TRIM(S.RDB$FIELD_NAME) FROM RDB$RELATION_CONSTRAINTS RC \
             JOIN RDB$INDEX_SEGMENTS S ON S.RDB$INDEX_NAME = RC.RDB$INDEX_NAME \
             WHERE RC.RDB$RELATION_NAME = ? AND RC.RDB$CONSTRAINT_TYPE = 'PRIMARY KEY' \
             ORDER BY S.RDB$FIELD_POSITION",
            (table.to_string(),),
        )?;
        let mut pk = Vec::with_capacity(keys.len());
        for (name,) in keys {
            match columns.iter().position(|c| c.name == name) {
                Some(at)
                    if columns[at].kind != ColumnKind::Unsupported
                        && columns[at].kind != ColumnKind::TextBlob =>
                {
                    pk.push(at)
                }
                _ => {
                    return Err(FbError::Other(format!(
                        "table {table}: key column {name} cannot form a row key"
                    )))
                }
            }
        }
        if pk.is_empty() {
            return Err(FbError::Other(format!(
                "table {table} has no primary key; capture needs one"
            )));
        }
        Ok(TableShape {
            table: table.to_string(),
            columns,
            pk,
        })
    }

    /// The PSQL expression of the row key from `NEW` or `OLD`: key values as text joined by
    /// `|`, text escaped the way the transforms' row keys are (`\` -> `\\`, `|` -> `\|`).
    /// The longest row key the trigger can build for this table, in characters: text key
    /// columns count twice (every `\\` and `|` is escaped), other types their longest text form,
    /// plus the separators. Capture refuses a table whose key may not fit SYNC_LOG's ROW_KEY.
    pub fn key_width(&self) -> usize {
        let parts: usize = self
            .pk
            .iter()
            .map(|&at| {
                let c = &self.columns[at];
                match c.kind {
                    ColumnKind::Char | ColumnKind::Varchar => c.chars * 2,
                    _ => 40,
                }
            })
            .sum();
        parts + self.pk.len().saturating_sub(1)
    }

    /// The key columns and their widths, for messages: `A VARCHAR(150), B VARCHAR(100)`.
    pub fn key_columns(&self) -> String {
        let parts: Vec<String> = self
            .pk
            .iter()
            .map(|&at| {
                let c = &self.columns[at];
                match c.kind {
                    ColumnKind::Char | ColumnKind::Varchar => {
                        format!("{} ({} characters)", c.name, c.chars)
                    }
                    _ => c.name.clone(),
                }
            })
            .collect();
        parts.join(", ")
    }

    pub fn key_expr(&self, record: &str) -> String {
        let parts: Vec<String> = self
            .pk
            .iter()
            .map(|&at| {
                let c = &self.columns[at];
                let col = format!("{record}.\"{}\"", c.name);
                match c.kind {
                    ColumnKind::Char => format!(
                        "REPLACE(REPLACE(TRIM(TRAILING FROM {col}), '\\', '\\\\'), '|', '\\|')"
                    ),
                    ColumnKind::Varchar => {
                        format!("REPLACE(REPLACE({col}, '\\', '\\\\'), '|', '\\|')")
                    }
                    _ => format!("CAST({col} AS VARCHAR(40))"),
                }
            })
            .collect();
        parts.join(" || '|' || ")
    }

    /// PSQL statements that build the JSON image of `NEW` into the text blob variable `IMG`, in
    /// the same form the publisher reads rows (numbers; exact numerics and times as text; CHAR
    /// trimmed; text escaped for JSON). Appended piece by piece to a blob, so no intermediate
    /// string meets the 32 KB VARCHAR limit.
    pub fn image_psql(&self) -> String {
        self.image_psql_of(&|_, c: &FbColumn| format!("NEW.\"{}\"", c.name))
    }

    /// The columns of the row image (every column but binary blobs), in position order.
    pub fn image_columns(&self) -> impl Iterator<Item = &FbColumn> {
        self.columns
            .iter()
            .filter(|c| c.kind != ColumnKind::Unsupported)
    }

    /// [`TableShape::image_psql`] reading each column's value from `value(position, column)`
    /// (a record field or a PSQL variable; `position` counts the image columns only).
    pub fn image_psql_of(&self, value: &dyn Fn(usize, &FbColumn) -> String) -> String {
        let mut out = String::from("IMG = '{';\n");
        for (i, c) in self.image_columns().enumerate() {
            let col = value(i, c);
            let quoted = |e: String| format!("COALESCE('\"' || {e} || '\"', 'null')");
            let value = match c.kind {
                ColumnKind::Int => format!("COALESCE(CAST({col} AS VARCHAR(20)), 'null')"),
                ColumnKind::Float => format!("COALESCE(CAST({col} AS VARCHAR(40)), 'null')"),
                ColumnKind::Scaled => quoted(format!("CAST({col} AS VARCHAR(40))")),
                ColumnKind::Temporal => quoted(format!("CAST({col} AS VARCHAR(24))")),
                ColumnKind::Char => quoted(json_escape(&format!("TRIM(TRAILING FROM {col})"))),
                _ => quoted(json_escape(&col)),
            };
            let sep = if i == 0 { "" } else { "," };
            let name = c.name.replace('\'', "''");
            out.push_str(&format!("IMG = IMG || '{sep}\"{name}\":' || {value};\n"));
        }
        out.push_str("IMG = IMG || '}';");
        out
    }

    /// `SELECT <image columns> FROM T WHERE <pk> = ? ...` and the image columns it reads.
    pub fn select_by_key(&self) -> (String, Vec<&FbColumn>) {
        let read: Vec<&FbColumn> = self
            .columns
            .iter()
            .filter(|c| c.kind != ColumnKind::Unsupported)
            .collect();
        let list: Vec<String> = read
            .iter()
            .map(|c| match c.kind {
                ColumnKind::Scaled => format!("CAST(\"{}\" AS VARCHAR(40))", c.name),
                ColumnKind::Temporal => format!("CAST(\"{}\" AS VARCHAR(24))", c.name),
                _ => format!("\"{}\"", c.name),
            })
            .collect();
        let cond: Vec<String> = self
            .pk
            .iter()
            .map(|&at| format!("\"{}\" = ?", self.columns[at].name))
            .collect();
        let sql = format!(
            "SELECT {} FROM \"{}\" WHERE {}",
            list.join(", "),
            self.table,
            cond.join(" AND ")
        );
        (sql, read)
    }
}

/// PSQL that escapes a text expression for a JSON string (`\`, `"`, LF, CR, TAB).
fn json_escape(e: &str) -> String {
    format!(
        "REPLACE(REPLACE(REPLACE(REPLACE(REPLACE({e}, '\\', '\\\\'), '\"', '\\\"'), \
         ASCII_CHAR(10), '\\n'), ASCII_CHAR(13), '\\r'), ASCII_CHAR(9), '\\t')"
    )
}

/// Splits a row key at unescaped `|` and unescapes each part.
pub fn split_key(key: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(last)) = (chars.next(), parts.last_mut()) {
                    last.push(next);
                }
            }
            '|' => parts.push(String::new()),
            c => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_and_expressions() {
        assert_eq!(split_key("42"), vec!["42"]);
        assert_eq!(split_key("a\\|b|2"), vec!["a|b", "2"]);
        assert_eq!(split_key("x\\\\|y"), vec!["x\\", "y"]);
        let shape = TableShape {
            table: "T".into(),
            columns: vec![
                FbColumn {
                    name: "A".into(),
                    kind: ColumnKind::Varchar,
                    chars: 10,
                    canon: None,
                },
                FbColumn {
                    name: "B".into(),
                    kind: ColumnKind::Int,
                    chars: 0,
                    canon: None,
                },
                FbColumn {
                    name: "C".into(),
                    kind: ColumnKind::Unsupported,
                    chars: 0,
                    canon: None,
                },
            ],
            pk: vec![0, 1],
        };
        assert_eq!(
            shape.key_expr("NEW"),
            "REPLACE(REPLACE(NEW.\"A\", '\\', '\\\\'), '|', '\\|') || '|' || CAST(NEW.\"B\" AS VARCHAR(40))"
        );
        let (sql, cols) = shape.select_by_key();
        assert_eq!(
            sql,
            "SELECT \"A\", \"B\" FROM \"T\" WHERE \"A\" = ? AND \"B\" = ?"
        );
        assert_eq!(cols.len(), 2);
    }
}
