//! Running a transform's statement on PostgreSQL: `?` placeholders become `$1..$n` (outside
//! quoted text and identifiers), and each typed value is bound as its natural PostgreSQL type.
//! Exact decimals, dates and times are bound as text; the statement casts them (the generic
//! transform always does), so nothing passes through a float.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::Postgres;

use super::UpstreamError;
use crate::model::Value;

/// Rewrites `?` to `$n`, skipping `'...'` (with `''`), `E'...'` (with `\'`) and `"..."`.
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut chars = sql.chars().peekable();
    let mut prev: Option<char> = None;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let escapes = c == '\'' && matches!(prev, Some('E' | 'e'));
                out.push(c);
                while let Some(d) = chars.next() {
                    out.push(d);
                    if escapes && d == '\\' {
                        if let Some(e) = chars.next() {
                            out.push(e);
                        }
                    } else if d == c {
                        if chars.peek() == Some(&c) {
                            if let Some(e) = chars.next() {
                                out.push(e);
                            }
                        } else {
                            break;
                        }
                    }
                }
            }
            '?' => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            c => out.push(c),
        }
        prev = Some(c);
    }
    out
}

/// Binds `params` in order.
pub fn bind_all<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    params: &[Value],
) -> Result<Query<'q, Postgres, PgArguments>, UpstreamError> {
    for value in params {
        query = match value {
            Value::Null => query.bind(None::<String>),
            Value::Int(v) => query.bind(*v),
            Value::Float(v) => query.bind(*v),
            Value::Decimal(s)
            | Value::Text(s)
            | Value::Date(s)
            | Value::Time(s)
            | Value::Timestamp(s) => query.bind(s.clone()),
            Value::Blob(b) => query.bind(b.clone()),
            Value::NewId(key) => {
                return Err(UpstreamError::Refused(format!(
                    "new-id placeholder `{key}` is Firebird-only; an upstream statement must \
                     carry its ids"
                )))
            }
        };
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_outside_quotes() {
        assert_eq!(
            numbered("INSERT INTO t (a, b) VALUES (?, CAST(? AS numeric))"),
            "INSERT INTO t (a, b) VALUES ($1, CAST($2 AS numeric))"
        );
        assert_eq!(
            numbered("UPDATE t SET a = '?''?', \"q?\" = ? WHERE b = E'\\'?'"),
            "UPDATE t SET a = '?''?', \"q?\" = $1 WHERE b = E'\\'?'"
        );
        assert_eq!(
            numbered("x = (CAST(? AS timestamp) AT TIME ZONE 'America/Sao_Paulo')"),
            "x = (CAST($1 AS timestamp) AT TIME ZONE 'America/Sao_Paulo')"
        );
    }
}
