//! Conversion of one JSON value to the typed parameter of one Firebird 2.5 column. The same code
//! serves hand-written transforms (through `Row`) and the generic one (types from settings).

use serde_json::Value as Json;

use crate::decimal;
use crate::time::{self, Zone};
use crate::types::{TransformError, Value};

/// The Firebird column type a JSON value is converted to.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    /// CHAR/VARCHAR(`max_len`): a JSON string (or number, as its text); longer than `max_len`
    /// characters is a `too-long` error, never truncated.
    Text {
        /// Column length in characters.
        max_len: usize,
    },
    /// An integer column; values outside `min..=max` are refused.
    Int {
        /// Smallest value the column holds.
        min: i64,
        /// Largest value the column holds.
        max: i64,
    },
    /// NUMERIC/DECIMAL(`precision`,`scale`), exact text.
    Decimal {
        /// Total digits, 1..=18.
        precision: u8,
        /// Digits after the point, <= precision.
        scale: u8,
    },
    /// DOUBLE PRECISION / FLOAT.
    Double,
    /// A JSON boolean into CHAR(1) text, e.g. 'S'/'N'.
    BoolText {
        /// Text for true.
        yes: String,
        /// Text for false.
        no: String,
    },
    /// A JSON boolean into SMALLINT 1/0.
    BoolSmallint,
    /// A UUID string into CHAR(36), lower case.
    Uuid,
    /// "YYYY-MM-DD" into DATE.
    Date,
    /// A timestamp without zone into TIMESTAMP.
    Timestamp,
    /// An instant with offset into TIMESTAMP, as wall-clock time in the zone.
    TimestampTz(Zone),
    /// Any JSON (object, array...) into a text BLOB as compact JSON.
    JsonBlob,
    /// A JSON string into a text BLOB, as is.
    TextBlob,
}

impl ColumnType {
    /// SMALLINT range.
    pub const SMALLINT: ColumnType = ColumnType::Int {
        min: i16::MIN as i64,
        max: i16::MAX as i64,
    };
    /// INTEGER range.
    pub const INTEGER: ColumnType = ColumnType::Int {
        min: i32::MIN as i64,
        max: i32::MAX as i64,
    };
    /// BIGINT range.
    pub const BIGINT: ColumnType = ColumnType::Int {
        min: i64::MIN,
        max: i64::MAX,
    };

    /// CHAR(1) 'S'/'N', the usual legacy boolean.
    pub fn bool_sn() -> ColumnType {
        ColumnType::BoolText {
            yes: "S".to_owned(),
            no: "N".to_owned(),
        }
    }
}

/// A short name for the JSON type of `v`, for error messages.
fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// The text of a number, or of a string holding one (some producers quote big numbers).
fn number_text(v: &Json) -> Option<String> {
    match v {
        Json::Number(n) => Some(n.to_string()),
        Json::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Converts `v` (the payload's `field`) to a parameter for a column of type `ty`.
/// JSON null becomes SQL NULL; whether NULL is allowed is the caller's decision.
pub fn coerce(field: &str, v: &Json, ty: &ColumnType) -> Result<Value, TransformError> {
    match ty {
        ColumnType::Text { max_len } => text(field, v, *max_len),
        ColumnType::Int { min, max } => int(field, v, *min, *max),
        ColumnType::Decimal { precision, scale } => numeric(field, v, *precision, *scale),
        ColumnType::Double => double(field, v),
        ColumnType::BoolText { yes, no } => bool_text(field, v, yes, no),
        ColumnType::BoolSmallint => bool_smallint(field, v),
        ColumnType::Uuid => uuid_text(field, v),
        ColumnType::Date => date(field, v),
        ColumnType::Timestamp => timestamp(field, v),
        ColumnType::TimestampTz(zone) => timestamptz(field, v, *zone),
        ColumnType::JsonBlob => json_blob(field, v),
        ColumnType::TextBlob => text_blob(field, v),
    }
}

// One function per type (each maps JSON null to NULL), so a transform that never converts a
// timestamptz does not link the tz database (~900 KB of data).

fn wrong(field: &str, v: &Json, want: &str) -> TransformError {
    TransformError::invalid(field, format!("expected {want}, found {}", json_type(v)))
}

/// CHAR/VARCHAR of at most `max_len` characters (a number is taken as its text).
pub fn text(field: &str, v: &Json, max_len: usize) -> Result<Value, TransformError> {
    let text = match v {
        Json::Null => return Ok(Value::Null),
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => return Err(wrong(field, v, "a string")),
    };
    let chars = text.chars().count();
    if chars > max_len {
        return Err(TransformError::new(
            crate::ErrorKind::TooLong,
            Some(field),
            format!("{chars} characters; the column holds {max_len}"),
        ));
    }
    Ok(Value::Text(text))
}

/// An integer within `min..=max`.
pub fn int(field: &str, v: &Json, min: i64, max: i64) -> Result<Value, TransformError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let text = number_text(v).ok_or_else(|| wrong(field, v, "an integer"))?;
    let i = decimal::integer(&text, min, max).map_err(|e| TransformError::invalid(field, e))?;
    Ok(Value::Int(i))
}

/// Exact NUMERIC(`precision`,`scale`) text.
pub fn numeric(field: &str, v: &Json, precision: u8, scale: u8) -> Result<Value, TransformError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let text = number_text(v).ok_or_else(|| wrong(field, v, "a decimal number"))?;
    decimal::numeric_text(&text, precision, scale)
        .map(Value::Decimal)
        .map_err(|e| TransformError::invalid(field, e))
}

/// DOUBLE PRECISION.
pub fn double(field: &str, v: &Json) -> Result<Value, TransformError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let text = number_text(v).ok_or_else(|| wrong(field, v, "a number"))?;
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Value::Float(f)),
        _ => Err(TransformError::invalid(
            field,
            format!("`{text}` is not a finite number"),
        )),
    }
}

/// A boolean as the text `yes` / `no`.
pub fn bool_text(field: &str, v: &Json, yes: &str, no: &str) -> Result<Value, TransformError> {
    match v {
        Json::Null => Ok(Value::Null),
        Json::Bool(b) => Ok(Value::Text(if *b { yes } else { no }.to_owned())),
        _ => Err(wrong(field, v, "a boolean")),
    }
}

/// A boolean as SMALLINT 1/0.
pub fn bool_smallint(field: &str, v: &Json) -> Result<Value, TransformError> {
    match v {
        Json::Null => Ok(Value::Null),
        Json::Bool(b) => Ok(Value::Int(i64::from(*b))),
        _ => Err(wrong(field, v, "a boolean")),
    }
}

/// A UUID as lower-case CHAR(36) text.
pub fn uuid_text(field: &str, v: &Json) -> Result<Value, TransformError> {
    match v {
        Json::Null => Ok(Value::Null),
        Json::String(s) => uuid(s)
            .map(Value::Text)
            .ok_or_else(|| TransformError::invalid(field, format!("`{s}` is not a UUID"))),
        _ => Err(wrong(field, v, "a UUID string")),
    }
}

/// "YYYY-MM-DD" DATE.
pub fn date(field: &str, v: &Json) -> Result<Value, TransformError> {
    match v {
        Json::Null => Ok(Value::Null),
        Json::String(s) => time::date(s)
            .map(Value::Date)
            .map_err(|e| TransformError::invalid(field, e)),
        _ => Err(wrong(field, v, "a date string")),
    }
}

/// A timestamp without zone as TIMESTAMP.
pub fn timestamp(field: &str, v: &Json) -> Result<Value, TransformError> {
    match v {
        Json::Null => Ok(Value::Null),
        Json::String(s) => time::timestamp(s)
            .map(Value::Timestamp)
            .map_err(|e| TransformError::invalid(field, e)),
        _ => Err(wrong(field, v, "a timestamp string")),
    }
}

/// An instant with offset as wall-clock TIMESTAMP in `zone`.
pub fn timestamptz(field: &str, v: &Json, zone: Zone) -> Result<Value, TransformError> {
    match v {
        Json::Null => Ok(Value::Null),
        Json::String(s) => time::timestamptz(s, zone)
            .map(Value::Timestamp)
            .map_err(|e| TransformError::invalid(field, e)),
        _ => Err(wrong(field, v, "a timestamp string")),
    }
}

/// Any JSON as compact JSON text (payload key order kept) in a BLOB.
pub fn json_blob(field: &str, v: &Json) -> Result<Value, TransformError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    serde_json::to_vec(v)
        .map(Value::Blob)
        .map_err(|e| TransformError::internal(format!("serialising `{field}`: {e}")))
}

/// A string as a text BLOB.
pub fn text_blob(field: &str, v: &Json) -> Result<Value, TransformError> {
    match v {
        Json::Null => Ok(Value::Null),
        Json::String(s) => Ok(Value::Blob(s.as_bytes().to_vec())),
        _ => Err(wrong(field, v, "a string")),
    }
}

/// The canonical (lower-case, hyphenated) form of a UUID; `None` if `s` is not one.
pub fn uuid(s: &str) -> Option<String> {
    let ok = s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    ok.then(|| s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::json;

    fn parse(text: &str) -> Json {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn text_counts_characters_not_bytes() {
        let name = "José da Conceição, São Paulo";
        let ok = coerce("name", &json!(name), &ColumnType::Text { max_len: 28 }).unwrap();
        assert_eq!(ok, Value::Text(name.to_owned()));
        let err = coerce("name", &json!(name), &ColumnType::Text { max_len: 27 }).unwrap_err();
        assert_eq!(
            (err.kind, err.field.as_deref()),
            (ErrorKind::TooLong, Some("name"))
        );
        assert!(coerce("n", &json!(true), &ColumnType::Text { max_len: 5 }).is_err());
        assert_eq!(
            coerce("n", &json!(42), &ColumnType::Text { max_len: 5 }).unwrap(),
            Value::Text("42".into())
        );
    }

    #[test]
    fn numbers_stay_exact() {
        let v = parse("999999999999999.99");
        let ty = ColumnType::Decimal {
            precision: 18,
            scale: 2,
        };
        assert_eq!(
            coerce("p", &v, &ty).unwrap(),
            Value::Decimal("999999999999999.99".into())
        );
        assert_eq!(
            coerce("p", &json!("12.5"), &ty).unwrap(),
            Value::Decimal("12.50".into())
        );
        assert_eq!(
            coerce("p", &json!(0.125), &ty).unwrap_err().kind,
            ErrorKind::InvalidValue
        );
        assert_eq!(
            coerce("i", &parse("9007199254740993"), &ColumnType::BIGINT).unwrap(),
            Value::Int(9007199254740993)
        );
        assert!(coerce("i", &json!(70000), &ColumnType::SMALLINT).is_err());
        assert!(coerce("i", &json!(1.5), &ColumnType::INTEGER).is_err());
        assert_eq!(
            coerce("f", &json!(1.5), &ColumnType::Double).unwrap(),
            Value::Float(1.5)
        );
    }

    #[test]
    fn nulls_booleans_uuids_blobs() {
        for ty in [
            ColumnType::BIGINT,
            ColumnType::Uuid,
            ColumnType::JsonBlob,
            ColumnType::bool_sn(),
        ] {
            assert_eq!(coerce("x", &Json::Null, &ty).unwrap(), Value::Null);
        }
        assert_eq!(
            coerce("a", &json!(true), &ColumnType::bool_sn()).unwrap(),
            Value::Text("S".into())
        );
        assert_eq!(
            coerce("a", &json!(false), &ColumnType::bool_sn()).unwrap(),
            Value::Text("N".into())
        );
        assert_eq!(
            coerce("a", &json!(true), &ColumnType::BoolSmallint).unwrap(),
            Value::Int(1)
        );
        assert!(coerce("a", &json!("true"), &ColumnType::BoolSmallint).is_err());
        let u = "0E2B7C1A-58A4-4C4E-9F1B-1D2E3F405060";
        assert_eq!(
            coerce("u", &json!(u), &ColumnType::Uuid).unwrap(),
            Value::Text(u.to_lowercase())
        );
        assert!(coerce(
            "u",
            &json!("0e2b7c1a58a44c4e9f1b1d2e3f405060"),
            &ColumnType::Uuid
        )
        .is_err());
        let attrs =
            parse(r#"{"z": 1, "cidade": "São Paulo", "n": 999999999999999.99, "l": [1, 2]}"#);
        let blob = coerce("attributes", &attrs, &ColumnType::JsonBlob).unwrap();
        let want = r#"{"z":1,"cidade":"São Paulo","n":999999999999999.99,"l":[1,2]}"#;
        assert_eq!(blob, Value::Blob(want.as_bytes().to_vec()));
        assert_eq!(
            coerce("n", &json!("ação"), &ColumnType::TextBlob).unwrap(),
            Value::Blob("ação".as_bytes().to_vec())
        );
    }
}
