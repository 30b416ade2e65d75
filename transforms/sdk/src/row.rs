//! `Row`, the payload of a change with typed getters that return WIT values or typed errors, and
//! `Settings`, the per-table settings object. A missing field is a `bad-payload` error (a row
//! image has every column); `opt_*` getters turn JSON null into SQL NULL, the others refuse it.

use serde_json::{Map, Value as Json};

use crate::coerce::{self, ColumnType};
use crate::time::{Zone, DEFAULT_ZONE};
use crate::types::{TransformError, Value};

/// The row image of one change: a JSON object whose numbers keep their exact text.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    fields: Map<String, Json>,
}

impl Row {
    /// Parses a payload; anything but a JSON object is a `bad-payload` error.
    pub fn parse(payload: &str) -> Result<Row, TransformError> {
        match serde_json::from_str::<Json>(payload) {
            Ok(Json::Object(fields)) => Ok(Row { fields }),
            Ok(_) => Err(TransformError::new(
                crate::ErrorKind::BadPayload,
                None,
                "the payload is not a JSON object",
            )),
            Err(e) => Err(TransformError::new(
                crate::ErrorKind::BadPayload,
                None,
                format!("the payload is not valid JSON: {e}"),
            )),
        }
    }

    /// The raw JSON of `field`, `None` when absent.
    pub fn get(&self, field: &str) -> Option<&Json> {
        self.fields.get(field)
    }

    /// Whether the payload has `field` (null or not).
    pub fn has(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    /// The payload's field names, in payload order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// `field` converted to a column of type `ty`. Absent is `bad-payload`; null is SQL NULL
    /// when `nullable`, else `invalid-value`.
    pub fn value(
        &self,
        field: &str,
        ty: &ColumnType,
        nullable: bool,
    ) -> Result<Value, TransformError> {
        coerce::coerce(field, self.lookup(field, nullable)?, ty)
    }

    /// The JSON of `field`: absent is `bad-payload`, null without `nullable` is `invalid-value`.
    pub fn lookup(&self, field: &str, nullable: bool) -> Result<&Json, TransformError> {
        let json = self
            .get(field)
            .ok_or_else(|| TransformError::bad_payload(field, "missing from the payload"))?;
        if json.is_null() && !nullable {
            return Err(TransformError::invalid(
                field,
                "is null; the column is NOT NULL",
            ));
        }
        Ok(json)
    }

    /// A non-null integer as `i64` (for keys, row keys and id-claims).
    pub fn i64(&self, field: &str) -> Result<i64, TransformError> {
        match coerce::int(field, self.lookup(field, false)?, i64::MIN, i64::MAX)? {
            Value::Int(i) => Ok(i),
            other => Err(TransformError::internal(format!(
                "`{field}` gave {other:?}"
            ))),
        }
    }

    /// A non-null integer in INTEGER range as `i32`.
    pub fn i32(&self, field: &str) -> Result<i32, TransformError> {
        match coerce::int(
            field,
            self.lookup(field, false)?,
            i32::MIN.into(),
            i32::MAX.into(),
        )? {
            Value::Int(i) => i32::try_from(i)
                .map_err(|_| TransformError::invalid(field, format!("{i} is outside INTEGER"))),
            other => Err(TransformError::internal(format!(
                "`{field}` gave {other:?}"
            ))),
        }
    }

    /// Non-null text of at most `max_len` characters.
    pub fn text(&self, field: &str, max_len: usize) -> Result<Value, TransformError> {
        coerce::text(field, self.lookup(field, false)?, max_len)
    }
    /// Text of at most `max_len` characters, or NULL.
    pub fn opt_text(&self, field: &str, max_len: usize) -> Result<Value, TransformError> {
        coerce::text(field, self.lookup(field, true)?, max_len)
    }

    /// Non-null integer (BIGINT range).
    pub fn int(&self, field: &str) -> Result<Value, TransformError> {
        coerce::int(field, self.lookup(field, false)?, i64::MIN, i64::MAX)
    }
    /// Integer (BIGINT range) or NULL.
    pub fn opt_int(&self, field: &str) -> Result<Value, TransformError> {
        coerce::int(field, self.lookup(field, true)?, i64::MIN, i64::MAX)
    }

    /// Non-null exact decimal that fits NUMERIC(`precision`,`scale`).
    pub fn decimal(&self, field: &str, precision: u8, scale: u8) -> Result<Value, TransformError> {
        coerce::numeric(field, self.lookup(field, false)?, precision, scale)
    }
    /// Exact decimal that fits NUMERIC(`precision`,`scale`), or NULL.
    pub fn opt_decimal(
        &self,
        field: &str,
        precision: u8,
        scale: u8,
    ) -> Result<Value, TransformError> {
        coerce::numeric(field, self.lookup(field, true)?, precision, scale)
    }

    /// Non-null boolean as CHAR(1) 'S'/'N'.
    pub fn bool_char(&self, field: &str) -> Result<Value, TransformError> {
        coerce::bool_text(field, self.lookup(field, false)?, "S", "N")
    }
    /// Boolean as CHAR(1) 'S'/'N', or NULL.
    pub fn opt_bool_char(&self, field: &str) -> Result<Value, TransformError> {
        coerce::bool_text(field, self.lookup(field, true)?, "S", "N")
    }

    /// Non-null boolean as SMALLINT 1/0.
    pub fn bool_smallint(&self, field: &str) -> Result<Value, TransformError> {
        coerce::bool_smallint(field, self.lookup(field, false)?)
    }
    /// Boolean as SMALLINT 1/0, or NULL.
    pub fn opt_bool_smallint(&self, field: &str) -> Result<Value, TransformError> {
        coerce::bool_smallint(field, self.lookup(field, true)?)
    }

    /// Non-null UUID as CHAR(36) text.
    pub fn uuid(&self, field: &str) -> Result<Value, TransformError> {
        coerce::uuid_text(field, self.lookup(field, false)?)
    }
    /// UUID as CHAR(36) text, or NULL.
    pub fn opt_uuid(&self, field: &str) -> Result<Value, TransformError> {
        coerce::uuid_text(field, self.lookup(field, true)?)
    }

    /// Non-null "YYYY-MM-DD" date.
    pub fn date(&self, field: &str) -> Result<Value, TransformError> {
        coerce::date(field, self.lookup(field, false)?)
    }
    /// "YYYY-MM-DD" date, or NULL.
    pub fn opt_date(&self, field: &str) -> Result<Value, TransformError> {
        coerce::date(field, self.lookup(field, true)?)
    }

    /// Non-null timestamp without zone.
    pub fn timestamp(&self, field: &str) -> Result<Value, TransformError> {
        coerce::timestamp(field, self.lookup(field, false)?)
    }
    /// Timestamp without zone, or NULL.
    pub fn opt_timestamp(&self, field: &str) -> Result<Value, TransformError> {
        coerce::timestamp(field, self.lookup(field, true)?)
    }

    /// Non-null instant with offset, as wall-clock TIMESTAMP in `zone`.
    pub fn timestamptz(&self, field: &str, zone: Zone) -> Result<Value, TransformError> {
        coerce::timestamptz(field, self.lookup(field, false)?, zone)
    }
    /// Instant with offset as wall-clock TIMESTAMP in `zone`, or NULL.
    pub fn opt_timestamptz(&self, field: &str, zone: Zone) -> Result<Value, TransformError> {
        coerce::timestamptz(field, self.lookup(field, true)?, zone)
    }

    /// Non-null number as DOUBLE PRECISION.
    pub fn double(&self, field: &str) -> Result<Value, TransformError> {
        coerce::double(field, self.lookup(field, false)?)
    }
    /// Number as DOUBLE PRECISION, or NULL.
    pub fn opt_double(&self, field: &str) -> Result<Value, TransformError> {
        coerce::double(field, self.lookup(field, true)?)
    }

    /// Non-null JSON as compact JSON text in a BLOB.
    pub fn json_blob(&self, field: &str) -> Result<Value, TransformError> {
        coerce::json_blob(field, self.lookup(field, false)?)
    }
    /// Any JSON as compact JSON text in a BLOB, or NULL.
    pub fn opt_json_blob(&self, field: &str) -> Result<Value, TransformError> {
        coerce::json_blob(field, self.lookup(field, true)?)
    }
    /// Non-null string as a text BLOB.
    pub fn text_blob(&self, field: &str) -> Result<Value, TransformError> {
        coerce::text_blob(field, self.lookup(field, false)?)
    }
    /// A string as a text BLOB, or NULL.
    pub fn opt_text_blob(&self, field: &str) -> Result<Value, TransformError> {
        coerce::text_blob(field, self.lookup(field, true)?)
    }
}

/// The per-table settings object (`change.settings`); every error is `bad-settings`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    fields: Map<String, Json>,
}

impl Settings {
    /// Parses the settings text; empty text counts as `{}`.
    pub fn parse(settings: &str) -> Result<Settings, TransformError> {
        if settings.trim().is_empty() {
            return Ok(Settings { fields: Map::new() });
        }
        match serde_json::from_str::<Json>(settings) {
            Ok(Json::Object(fields)) => Ok(Settings { fields }),
            Ok(_) => Err(TransformError::bad_settings(
                "the settings are not a JSON object",
            )),
            Err(e) => Err(TransformError::bad_settings(format!(
                "the settings are not JSON: {e}"
            ))),
        }
    }

    /// The raw JSON of `key`, `None` when absent.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.fields.get(key)
    }

    /// Fails when the settings have a key outside `known` (catches typos such as "timzone").
    pub fn only(&self, known: &[&str]) -> Result<(), TransformError> {
        match self.fields.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(TransformError::bad_settings(format!(
                "unknown setting `{k}`; known: {}",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// The string at `key`, `None` when absent or null.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, TransformError> {
        match self.fields.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(_) => Err(TransformError::bad_settings(format!(
                "`{key}` must be a string"
            ))),
        }
    }

    /// The IANA zone named at `key`, by default "America/Sao_Paulo".
    pub fn zone(&self, key: &str) -> Result<Zone, TransformError> {
        let name = self.opt_str(key)?.unwrap_or(DEFAULT_ZONE);
        Zone::parse(name).map_err(|e| TransformError::bad_settings(format!("`{key}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn missing_null_and_present() {
        let row = Row::parse(r#"{"id": 7, "email": null, "name": "José da Conceição"}"#).unwrap();
        assert_eq!(row.i64("id").unwrap(), 7);
        assert_eq!(row.opt_text("email", 120).unwrap(), Value::Null);
        assert_eq!(
            row.text("email", 120).unwrap_err().kind,
            ErrorKind::InvalidValue
        );
        let missing = row.opt_text("city", 60).unwrap_err();
        assert_eq!(
            (missing.kind, missing.field.as_deref()),
            (ErrorKind::BadPayload, Some("city"))
        );
        assert_eq!(
            row.text("name", 100).unwrap(),
            Value::Text("José da Conceição".into())
        );
        assert_eq!(row.fields().collect::<Vec<_>>(), ["id", "email", "name"]);
    }

    #[test]
    fn payload_must_be_an_object() {
        for bad in ["[1]", "42", "", "{\"id\": 1"] {
            assert_eq!(
                Row::parse(bad).unwrap_err().kind,
                ErrorKind::BadPayload,
                "{bad}"
            );
        }
    }

    #[test]
    fn settings_zone_default_and_errors() {
        assert_eq!(
            Settings::parse("{}")
                .unwrap()
                .zone("timezone")
                .unwrap()
                .name(),
            DEFAULT_ZONE
        );
        let s = Settings::parse(r#"{"timezone": "Europe/Lisbon"}"#).unwrap();
        assert_eq!(s.zone("timezone").unwrap().name(), "Europe/Lisbon");
        let bad = Settings::parse(r#"{"timezone": "Lisbon"}"#).unwrap();
        assert_eq!(
            bad.zone("timezone").unwrap_err().kind,
            ErrorKind::BadSettings
        );
        assert!(s.only(&["timezone"]).is_ok());
        assert_eq!(s.only(&["zone"]).unwrap_err().kind, ErrorKind::BadSettings);
        assert_eq!(
            Settings::parse("[]").unwrap_err().kind,
            ErrorKind::BadSettings
        );
    }
}
