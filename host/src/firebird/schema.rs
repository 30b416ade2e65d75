//! A unit's real schema, for `ponte transform check`: the columns of a table with their types,
//! whether a value fits a column (length, range, scale, NOT NULL), and a compile check that has
//! the server resolve a statement's tables and columns without running it.

use rsfbclient::prelude::*;
use rsfbclient::FbError;

use super::block::{substitute, Block};
use super::connect::FbConn;
use crate::model::Value;

/// One column of a table, as RDB$RELATION_FIELDS / RDB$FIELDS describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name (trimmed).
    pub name: String,
    /// RDB$FIELD_TYPE.
    pub field_type: i16,
    /// RDB$FIELD_SUB_TYPE (NUMERIC/DECIMAL for integers, TEXT for blobs).
    pub sub_type: i16,
    /// Characters of CHAR/VARCHAR.
    pub char_length: Option<i32>,
    /// Precision of NUMERIC/DECIMAL.
    pub precision: Option<i16>,
    /// Scale (negative: digits after the point).
    pub scale: i16,
    /// NOT NULL.
    pub not_null: bool,
    /// COMPUTED BY (cannot be written).
    pub computed: bool,
    /// Has a DEFAULT (on the column or its domain).
    pub has_default: bool,
}

/// The columns of `table` in position order; `None` when the table does not exist.
pub fn table_columns(conn: &mut FbConn, table: &str) -> Result<Option<Vec<Column>>, FbError> {
    type Row = (
        String,
        i16,
        Option<i16>,
        Option<i32>,
        Option<i16>,
        Option<i16>,
        i16,
        i16,
        i16,
    );
    let rows: Vec<Row> = conn.query(
        "SELECT TRIM(RF.RDB$FIELD_NAME), F.RDB$FIELD_TYPE, F.RDB$FIELD_SUB_TYPE, \
         F.RDB$CHARACTER_LENGTH, F.RDB$FIELD_PRECISION, F.RDB$FIELD_SCALE, \
         COALESCE(RF.RDB$NULL_FLAG, F.RDB$NULL_FLAG, 0), \
         IIF(F.RDB$COMPUTED_BLR IS NULL, 0, 1), \
         IIF(RF.RDB$DEFAULT_SOURCE IS NULL AND F.RDB$DEFAULT_SOURCE IS NULL, 0, 1) \
         FROM RDB$RELATION_FIELDS RF JOIN RDB$FIELDS F ON F.RDB$FIELD_NAME = RF.RDB$FIELD_SOURCE \
         WHERE RF.RDB$RELATION_NAME = ? ORDER BY RF.RDB$FIELD_POSITION",
        (table.to_string(),),
    )?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        rows.into_iter()
            .map(
                |(
                    name,
                    field_type,
                    sub_type,
                    char_length,
                    precision,
                    scale,
                    not_null,
                    computed,
                    has_default,
                )| Column {
                    name,
                    field_type,
                    sub_type: sub_type.unwrap_or(0),
                    char_length,
                    precision,
                    scale: scale.unwrap_or(0),
                    not_null: not_null != 0,
                    computed: computed != 0,
                    has_default: has_default != 0,
                },
            )
            .collect(),
    ))
}

impl Column {
    /// The column's type as DDL spells it.
    pub fn type_text(&self) -> String {
        let len = self.char_length.unwrap_or(0);
        match (self.field_type, self.sub_type, self.scale) {
            (7 | 8 | 16, 1 | 2, scale) | (7 | 8 | 16, _, scale @ ..=-1) => {
                let kind = if self.sub_type == 2 {
                    "DECIMAL"
                } else {
                    "NUMERIC"
                };
                format!("{kind}({}, {})", self.precision.unwrap_or(18), -scale)
            }
            (7, ..) => "SMALLINT".into(),
            (8, ..) => "INTEGER".into(),
            (16, ..) => "BIGINT".into(),
            (10, ..) => "FLOAT".into(),
            (27, ..) => "DOUBLE PRECISION".into(),
            (12, ..) => "DATE".into(),
            (13, ..) => "TIME".into(),
            (35, ..) => "TIMESTAMP".into(),
            (14, ..) => format!("CHAR({len})"),
            (37, ..) => format!("VARCHAR({len})"),
            (23, ..) => "BOOLEAN".into(),
            (261, 1, _) => "BLOB SUB_TYPE TEXT".into(),
            (261, ..) => "BLOB".into(),
            (other, ..) => format!("type {other}"),
        }
    }

    fn is_integer_family(&self) -> bool {
        matches!(self.field_type, 7 | 8 | 16)
    }

    fn is_text(&self) -> bool {
        matches!(self.field_type, 14 | 37)
    }

    /// Why `value` would fail or be altered when written to this column; `None` when it fits.
    pub fn misfit(&self, value: &Value) -> Option<String> {
        let ty = self.type_text();
        if self.computed {
            return Some(format!(
                "{} is COMPUTED BY and cannot be written",
                self.name
            ));
        }
        match value {
            Value::Null if self.not_null => {
                Some(format!("NULL into NOT NULL column {} {ty}", self.name))
            }
            Value::Null | Value::NewId(_) => None,
            Value::Text(s)
            | Value::Decimal(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s)
                if self.is_text() =>
            {
                let chars = s.chars().count();
                let max = self.char_length.unwrap_or(0);
                (chars > usize::try_from(max).unwrap_or(0)).then(|| {
                    format!(
                        "{chars} characters into {} {ty} (the server would refuse the row)",
                        self.name
                    )
                })
            }
            Value::Int(v) if self.is_integer_family() && self.scale == 0 => {
                let (low, high) = match self.field_type {
                    7 => (i64::from(i16::MIN), i64::from(i16::MAX)),
                    8 => (i64::from(i32::MIN), i64::from(i32::MAX)),
                    _ => (i64::MIN, i64::MAX),
                };
                (*v < low || *v > high).then(|| format!("{v} out of range for {} {ty}", self.name))
            }
            Value::Decimal(s) | Value::Text(s) if self.is_integer_family() => {
                self.decimal_misfit(s, &ty)
            }
            Value::Int(v) if self.is_integer_family() => self.decimal_misfit(&v.to_string(), &ty),
            Value::Float(_) if self.is_integer_family() => Some(format!(
                "a float into {} {ty}: inexact, send an exact decimal",
                self.name
            )),
            Value::Blob(b) if self.is_text() => {
                let max = usize::try_from(self.char_length.unwrap_or(0)).unwrap_or(0);
                (b.len() > max * 4).then(|| format!("{} bytes into {} {ty}", b.len(), self.name))
            }
            Value::Text(s) if matches!(self.field_type, 12 | 13 | 35) && s.trim().is_empty() => {
                Some(format!("empty text into {} {ty}", self.name))
            }
            Value::Blob(_) | Value::Text(_)
                if matches!(self.field_type, 7 | 8 | 16 | 10 | 27 | 12 | 13 | 35) =>
            {
                Some(format!("{} into {} {ty}", kind(value), self.name))
            }
            _ => None,
        }
    }

    /// An exact number into an integer-backed column (NUMERIC, DECIMAL or plain integer).
    fn decimal_misfit(&self, text: &str, ty: &str) -> Option<String> {
        let digits = text.trim().trim_start_matches(['-', '+']);
        let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
        if int_part.is_empty() && frac_part.is_empty()
            || !int_part
                .bytes()
                .chain(frac_part.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Some(format!("`{text}` is not a number, into {} {ty}", self.name));
        }
        let scale = usize::from(self.scale.unsigned_abs());
        let kept_frac = frac_part.trim_end_matches('0');
        if kept_frac.len() > scale {
            return Some(format!(
                "`{text}` has {} decimals; {} {ty} would round it",
                kept_frac.len(),
                self.name
            ));
        }
        let max_int = match self.precision {
            Some(p) if p > 0 => usize::from(p.unsigned_abs()).saturating_sub(scale),
            _ => 18usize.saturating_sub(scale),
        };
        let significant = int_part.trim_start_matches('0').len();
        (significant > max_int).then(|| {
            format!(
                "`{text}` has {significant} integer digits; {} {ty} holds {max_int}",
                self.name
            )
        })
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Blob(_) => "a blob",
        _ => "text",
    }
}

/// Has the server compile `sql` with `params` inside a block that never runs it: unknown
/// tables, columns, and syntax the server rejects come back as the server's own error. Runs in
/// its own transaction, always rolled back.
pub fn compile_check(conn: &mut FbConn, sql: &str, params: &[Value]) -> Result<(), FbError> {
    let mut block = Block::default();
    let refs: Vec<String> = params.iter().map(|v| block.bind(v)).collect();
    let body = substitute(sql.trim_end_matches(';'), &refs)
        .ok_or_else(|| FbError::Other("placeholder count does not match the parameters".into()))?;
    block.push(&format!("IF (1 = 0) THEN\n{body}"));
    let (text, values) = block.take();
    conn.begin_transaction()?;
    let result = conn.execute(&text, values).map(|_| ());
    let _ = conn.rollback();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(
        field_type: i16,
        sub_type: i16,
        len: Option<i32>,
        precision: Option<i16>,
        scale: i16,
        not_null: bool,
    ) -> Column {
        Column {
            name: "C".into(),
            field_type,
            sub_type,
            char_length: len,
            precision,
            scale,
            not_null,
            computed: false,
            has_default: false,
        }
    }

    #[test]
    fn names_types_as_ddl_does() {
        assert_eq!(
            col(16, 1, None, Some(15), -2, false).type_text(),
            "NUMERIC(15, 2)"
        );
        assert_eq!(col(8, 0, None, Some(0), 0, false).type_text(), "INTEGER");
        assert_eq!(
            col(37, 0, Some(60), None, 0, false).type_text(),
            "VARCHAR(60)"
        );
        assert_eq!(
            col(261, 1, None, None, 0, false).type_text(),
            "BLOB SUB_TYPE TEXT"
        );
    }

    #[test]
    fn finds_values_that_do_not_fit() {
        let varchar = col(37, 0, Some(5), None, 0, true);
        assert!(
            varchar.misfit(&Value::Text("José!".into())).is_none(),
            "5 characters, not bytes"
        );
        assert!(varchar.misfit(&Value::Text("Josés!".into())).is_some());
        assert!(varchar.misfit(&Value::Null).is_some(), "NOT NULL");
        let money = col(16, 1, None, Some(15), -2, false);
        assert!(money
            .misfit(&Value::Decimal("1234567890123.45".into()))
            .is_none());
        assert!(
            money
                .misfit(&Value::Decimal("12345678901234.5".into()))
                .is_some(),
            "14 integer digits"
        );
        assert!(
            money.misfit(&Value::Decimal("1.005".into())).is_some(),
            "would round"
        );
        assert!(
            money.misfit(&Value::Decimal("1.500".into())).is_none(),
            "trailing zeros are exact"
        );
        assert!(money.misfit(&Value::Text("abc".into())).is_some());
        let small = col(7, 0, None, Some(0), 0, false);
        assert!(small.misfit(&Value::Int(40_000)).is_some());
        assert!(small.misfit(&Value::Int(1)).is_none());
        assert!(col(35, 0, None, None, 0, false)
            .misfit(&Value::Blob(vec![1]))
            .is_some());
    }
}
