//! One canonical text per Firebird column type, produced the same way on both sides: by SQL
//! inside the unit's Firebird (so checksums never leave the server), and on the host from the
//! values a transform bound for PostgreSQL's row. Exact NUMERIC at the column's scale, TIMESTAMP
//! and TIME at 100 us (4 digits), CHAR without its trailing blanks, text in UTF-8.
//!
//! Row checksums are Firebird 2.5's own `HASH()` (a 64-bit PJW/ELF hash), reproduced bit for bit
//! by [`fb_hash`]: each column's text, prefixed with the row key and the column's position, is
//! hashed forwards and reversed, each reduced modulo a prime below 2^32; a chunk's checksum is
//! its row count and the two sums (sums, not XOR: a pair of equal rows does not cancel).

use crate::model::Value;

/// Modulus of the forward hash sums.
pub const P1: i64 = 4_294_967_291;
/// Modulus of the second sum for blob columns (REVERSE does not take blobs).
pub const P2: i64 = 4_294_967_279;

/// How a Firebird column is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SMALLINT, INTEGER, BIGINT.
    Int,
    /// NUMERIC/DECIMAL with this many digits after the point.
    Decimal(u32),
    /// FLOAT, DOUBLE PRECISION: compared at 4 decimals.
    Float,
    /// CHAR(n): trailing blanks are padding.
    Char(i32),
    /// VARCHAR(n).
    Varchar(i32),
    /// DATE.
    Date,
    /// TIME.
    Time,
    /// TIMESTAMP.
    Timestamp,
    /// BLOB SUB_TYPE TEXT.
    TextBlob,
    /// Any other BLOB: compared as bytes (hex in reports).
    Blob,
}

impl Kind {
    /// From RDB$FIELD_TYPE / SUB_TYPE / SCALE / CHARACTER_LENGTH.
    pub fn of(field_type: i16, sub_type: i16, scale: i16, chars: Option<i32>) -> Option<Kind> {
        let n = chars.unwrap_or(1).max(1);
        Some(match field_type {
            7 | 8 | 16 if scale < 0 => Kind::Decimal(u32::from(scale.unsigned_abs())),
            7 | 8 | 16 => Kind::Int,
            10 | 11 | 27 => Kind::Float,
            14 => Kind::Char(n),
            37 => Kind::Varchar(n),
            12 => Kind::Date,
            13 => Kind::Time,
            35 => Kind::Timestamp,
            261 if sub_type == 1 => Kind::TextBlob,
            261 => Kind::Blob,
            _ => return None,
        })
    }

    /// Whether values are blobs (no REVERSE in the second hash).
    pub fn is_blob(self) -> bool {
        matches!(self, Kind::TextBlob | Kind::Blob)
    }

    /// The Firebird expression giving `col`'s canonical text (NULL stays NULL).
    pub fn fb_expr(self, col: &str) -> String {
        let utf8 = |n: i32| n.clamp(1, 8_000);
        match self {
            Kind::Int => format!("CAST({col} AS VARCHAR(21) CHARACTER SET UTF8)"),
            Kind::Decimal(_) => format!("CAST({col} AS VARCHAR(42) CHARACTER SET UTF8)"),
            Kind::Float => {
                format!("CAST(CAST({col} AS DECIMAL(18,4)) AS VARCHAR(42) CHARACTER SET UTF8)")
            }
            Kind::Char(n) => format!(
                "CAST(TRIM(TRAILING FROM {col}) AS VARCHAR({}) CHARACTER SET UTF8)",
                utf8(n)
            ),
            Kind::Varchar(n) => format!("CAST({col} AS VARCHAR({}) CHARACTER SET UTF8)", utf8(n)),
            Kind::Date => format!("CAST({col} AS VARCHAR(10) CHARACTER SET UTF8)"),
            Kind::Time => format!("CAST({col} AS VARCHAR(13) CHARACTER SET UTF8)"),
            Kind::Timestamp => format!("CAST({col} AS VARCHAR(24) CHARACTER SET UTF8)"),
            Kind::TextBlob => format!("CAST({col} AS BLOB SUB_TYPE TEXT CHARACTER SET UTF8)"),
            Kind::Blob => col.to_string(),
        }
    }

    /// The canonical text of a value a transform bound for this column; `Err` names what does
    /// not fit.
    pub fn canon(self, value: &Value) -> Result<Option<Vec<u8>>, String> {
        let text = match value {
            Value::Null => return Ok(None),
            Value::Int(v) => v.to_string(),
            Value::Float(v) => format!("{v}"),
            Value::Decimal(s) | Value::Text(s) | Value::Date(s) | Value::Time(s) => s.clone(),
            Value::Timestamp(s) => s.clone(),
            Value::Blob(b) => {
                return Ok(Some(match self {
                    Kind::TextBlob | Kind::Blob => b.clone(),
                    _ => String::from_utf8_lossy(b).into_owned().into_bytes(),
                }))
            }
            Value::NewId(key) => {
                return Err(format!("a new INDICE id (`{key}`) is not comparable"))
            }
        };
        let out = match self {
            Kind::Int => integer(&text)?,
            Kind::Decimal(scale) => decimal(&text, scale)?,
            Kind::Float => decimal(&text, 4)?,
            Kind::Char(_) => text.trim_end_matches(' ').to_string(),
            Kind::Varchar(_) | Kind::TextBlob | Kind::Blob => text,
            Kind::Date => text.get(..10).unwrap_or(&text).to_string(),
            Kind::Time => fraction4(&text),
            Kind::Timestamp => {
                let t = text.replace('T', " ");
                if t.len() == 10 {
                    format!("{t} 00:00:00.0000")
                } else {
                    fraction4(&t)
                }
            }
        };
        Ok(Some(out.into_bytes()))
    }
}

fn integer(text: &str) -> Result<String, String> {
    let t = text.trim();
    match t.parse::<i64>() {
        Ok(v) => Ok(v.to_string()),
        // An integer column fed an exact decimal with zero fraction ("12.00").
        Err(_) => decimal(t, 0),
    }
}

/// `text` as an exact decimal with exactly `scale` fraction digits (Firebird's CAST form).
fn decimal(text: &str, scale: u32) -> Result<String, String> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let valid = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if int.is_empty() && frac.is_empty() || !valid(int) || !valid(frac) {
        return Err(format!("`{text}` is not an exact decimal"));
    }
    let scale = scale as usize;
    if frac.len() > scale && frac[scale..].chars().any(|c| c != '0') {
        return Err(format!(
            "`{text}` has more than {scale} digits after the point"
        ));
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut frac: String = frac.chars().take(scale).collect();
    while frac.len() < scale {
        frac.push('0');
    }
    let zero = int == "0" && frac.chars().all(|c| c == '0');
    let sign = if negative && !zero { "-" } else { "" };
    Ok(if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// `HH:MM:SS[.f...]` (possibly after a date) with exactly 4 fraction digits (100 us, truncated).
fn fraction4(text: &str) -> String {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut frac: String = frac
        .chars()
        .take_while(char::is_ascii_digit)
        .take(4)
        .collect();
    while frac.len() < 4 {
        frac.push('0');
    }
    format!("{whole}.{frac}")
}

/// Firebird's `HASH()` of these bytes (SysFunction.cpp `evlHash`, signed 64-bit arithmetic).
pub fn fb_hash(bytes: &[u8]) -> i64 {
    let mut hash: i64 = 0;
    for &b in bytes {
        hash = hash.wrapping_shl(4).wrapping_add(i64::from(b));
        let n = hash & (0xF000_0000_0000_0000_u64 as i64);
        if n != 0 {
            hash ^= n >> 56;
        }
        hash &= !n;
    }
    hash
}

/// The text hashed for column `index` of a row whose key text is `key`.
pub fn hashed_text(key: &[u8], index: usize, value: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 8 + value.map_or(0, <[u8]>::len));
    out.extend_from_slice(key);
    match value {
        Some(v) => {
            out.extend_from_slice(format!(":{index}=").as_bytes());
            out.extend_from_slice(v);
        }
        None => out.extend_from_slice(format!(":{index}!").as_bytes()),
    }
    out
}

/// The two checksum terms of one column, as the Firebird expression computes them.
pub fn terms(kind: Kind, text: &[u8]) -> (i64, i64) {
    let forward = fb_hash(text).rem_euclid(P1);
    let second = if kind.is_blob() {
        fb_hash(text).rem_euclid(P2)
    } else {
        // REVERSE works on characters: reverse the UTF-8 text by chars.
        let reversed: String = String::from_utf8_lossy(text).chars().rev().collect();
        fb_hash(reversed.as_bytes()).rem_euclid(P1)
    };
    (forward, second)
}

/// The Firebird expressions of the two terms of one column, `key` being the key text expression.
pub fn fb_terms(kind: Kind, key: &str, col: &str, index: usize) -> (String, String) {
    let value = kind.fb_expr(col);
    let text = format!("COALESCE({key} || ':{index}=' || {value}, {key} || ':{index}!')");
    let forward = format!("MOD(HASH({text}), {P1})");
    let second = if kind.is_blob() {
        format!("MOD(HASH({text}), {P2})")
    } else {
        format!("MOD(HASH(REVERSE({text})), {P1})")
    };
    (forward, second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_firebird() {
        // Values printed by Firebird 3.0's HASH() (the 2.5 algorithm) for the UTF-8 bytes
        // (`SELECT HASH(_UTF8 '...') FROM RDB$DATABASE` on a UTF8 connection).
        assert_eq!(fb_hash(b"abc"), 26_499);
        assert_eq!(
            fb_hash(b"abcdefghijklmnopqrstuvwxyz0123456789"),
            152_892_002_171_325_865
        );
        assert_eq!(fb_hash("1:1=Café".as_bytes()), 226_913_518_297);
        assert_eq!(fb_hash("éfaC".as_bytes()), 13_499_475);
        assert_eq!(fb_hash("1:2=blobé".as_bytes()), 3_630_917_967_577);
    }

    #[test]
    fn decimals_are_exact_at_the_scale() {
        assert_eq!(decimal("12.3", 2).as_deref(), Ok("12.30"));
        assert_eq!(decimal("-0.5", 2).as_deref(), Ok("-0.50"));
        assert_eq!(decimal("-0.00", 2).as_deref(), Ok("0.00"));
        assert_eq!(decimal("007", 3).as_deref(), Ok("7.000"));
        assert_eq!(
            decimal("999999999999999.99", 2).as_deref(),
            Ok("999999999999999.99")
        );
        assert!(decimal("1.234", 2).is_err());
        assert!(decimal("1e5", 2).is_err());
    }

    #[test]
    fn times_have_four_digits_and_char_loses_padding() {
        assert_eq!(fraction4("2026-01-02 03:04:05"), "2026-01-02 03:04:05.0000");
        assert_eq!(fraction4("03:04:05.123456"), "03:04:05.1234");
        let c = Kind::Char(5).canon(&Value::Text("ab  ".into()));
        assert_eq!(c, Ok(Some(b"ab".to_vec())));
    }
}
