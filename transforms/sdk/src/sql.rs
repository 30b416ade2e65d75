//! Firebird 2.5 statement builders (`UPDATE OR INSERT ... MATCHING`, `INSERT`, `DELETE`) so
//! authors write no SQL by hand. Identifiers are validated and upper-cased, never quoted (the
//! host matches them against the declared tables); every value is a `?` parameter.

use crate::types::{Statement, TransformError, Value};

/// Firebird 2.5 identifiers are at most 31 bytes.
pub const MAX_IDENT_LEN: usize = 31;

/// The upper-case form of an unquoted identifier (`[A-Za-z][A-Za-z0-9_$]*`, <= 31 bytes).
pub fn ident(name: &str) -> Result<String, String> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$') {
        return Err(format!(
            "`{name}` is not a plain identifier (letters, digits, `_`, `$`; starts with a letter)"
        ));
    }
    if name.len() > MAX_IDENT_LEN {
        return Err(format!(
            "`{name}` is longer than Firebird's {MAX_IDENT_LEN} bytes"
        ));
    }
    Ok(name.to_ascii_uppercase())
}

/// Identifier errors in builders are bugs of the transform.
fn internal_ident(name: &str) -> Result<String, TransformError> {
    ident(name).map_err(TransformError::internal)
}

/// Validated column list; duplicate names are a bug.
fn column_names<S: AsRef<str>>(columns: &[(S, Value)]) -> Result<Vec<String>, TransformError> {
    let mut names: Vec<String> = Vec::with_capacity(columns.len());
    for (name, _) in columns {
        let name = internal_ident(name.as_ref())?;
        if names.contains(&name) {
            return Err(TransformError::internal(format!(
                "column {name} given twice"
            )));
        }
        names.push(name);
    }
    if names.is_empty() {
        return Err(TransformError::internal(
            "a statement needs at least one column",
        ));
    }
    Ok(names)
}

/// A NULL key would match or delete the wrong rows: refuse it as a payload problem.
fn check_key(column: &str, value: &Value) -> Result<(), TransformError> {
    if *value == Value::Null {
        return Err(TransformError::new(
            crate::ErrorKind::BadPayload,
            None,
            format!("key column {column} is null"),
        ));
    }
    Ok(())
}

/// `UPDATE OR INSERT INTO T (C1, ..) VALUES (?, ..) MATCHING (K1, ..)`: inserts the row or
/// updates the one with the same `matching` columns, which must be among `columns`.
pub fn upsert<S: AsRef<str>>(
    table: &str,
    columns: Vec<(S, Value)>,
    matching: &[&str],
) -> Result<Statement, TransformError> {
    let table = internal_ident(table)?;
    let names = column_names(&columns)?;
    if matching.is_empty() {
        return Err(TransformError::internal(
            "UPDATE OR INSERT needs MATCHING columns",
        ));
    }
    let mut keys = Vec::with_capacity(matching.len());
    for key in matching {
        let key = internal_ident(key)?;
        let at = names.iter().position(|n| *n == key).ok_or_else(|| {
            TransformError::internal(format!("MATCHING column {key} is not among the columns"))
        })?;
        check_key(&key, &columns[at].1)?;
        keys.push(key);
    }
    let marks = vec!["?"; names.len()].join(", ");
    Ok(Statement {
        sql: format!(
            "UPDATE OR INSERT INTO {table} ({}) VALUES ({marks}) MATCHING ({})",
            names.join(", "),
            keys.join(", ")
        ),
        params: columns.into_iter().map(|(_, v)| v).collect(),
    })
}

/// `INSERT INTO T (C1, ..) VALUES (?, ..)`.
pub fn insert<S: AsRef<str>>(
    table: &str,
    columns: Vec<(S, Value)>,
) -> Result<Statement, TransformError> {
    let table = internal_ident(table)?;
    let names = column_names(&columns)?;
    let marks = vec!["?"; names.len()].join(", ");
    Ok(Statement {
        sql: format!(
            "INSERT INTO {table} ({}) VALUES ({marks})",
            names.join(", ")
        ),
        params: columns.into_iter().map(|(_, v)| v).collect(),
    })
}

/// `DELETE FROM T WHERE K1 = ? AND ..`; NULL keys are refused.
pub fn delete<S: AsRef<str>>(
    table: &str,
    keys: Vec<(S, Value)>,
) -> Result<Statement, TransformError> {
    let table = internal_ident(table)?;
    let names = column_names(&keys)?;
    for (name, (_, value)) in names.iter().zip(&keys) {
        check_key(name, value)?;
    }
    let conditions: Vec<String> = names.iter().map(|n| format!("{n} = ?")).collect();
    Ok(Statement {
        sql: format!("DELETE FROM {table} WHERE {}", conditions.join(" AND ")),
        params: keys.into_iter().map(|(_, v)| v).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn upsert_and_delete_text() {
        let s = upsert(
            "clientes",
            vec![("id", Value::Int(1)), ("NOME", Value::Text("a".into()))],
            &["ID"],
        )
        .unwrap();
        assert_eq!(
            s.sql,
            "UPDATE OR INSERT INTO CLIENTES (ID, NOME) VALUES (?, ?) MATCHING (ID)"
        );
        assert_eq!(s.params, vec![Value::Int(1), Value::Text("a".into())]);
        let d = delete(
            "PEDIDO_ITENS",
            vec![("PEDIDO_ID", Value::Int(7)), ("ITEM", Value::Int(3))],
        )
        .unwrap();
        assert_eq!(
            d.sql,
            "DELETE FROM PEDIDO_ITENS WHERE PEDIDO_ID = ? AND ITEM = ?"
        );
        let i = insert("T", vec![("A", Value::Null)]).unwrap();
        assert_eq!(i.sql, "INSERT INTO T (A) VALUES (?)");
    }

    #[test]
    fn refuses_bad_identifiers_keys_and_nulls() {
        assert_eq!(
            upsert("T; DROP", vec![("A", Value::Int(1))], &["A"])
                .unwrap_err()
                .kind,
            ErrorKind::Internal
        );
        assert!(upsert("T", vec![("A", Value::Int(1))], &["B"]).is_err());
        assert!(upsert(
            "T",
            vec![("A", Value::Int(1)), ("a", Value::Int(2))],
            &["A"]
        )
        .is_err());
        assert!(upsert::<&str>("T", vec![], &["A"]).is_err());
        assert_eq!(
            upsert("T", vec![("A", Value::Null)], &["A"])
                .unwrap_err()
                .kind,
            ErrorKind::BadPayload
        );
        assert_eq!(
            delete("T", vec![("A", Value::Null)]).unwrap_err().kind,
            ErrorKind::BadPayload
        );
        assert!(ident("1ABC").is_err());
        assert!(ident("A_VERY_LONG_IDENTIFIER_BEYOND_31_B").is_err());
        assert_eq!(ident("Data_Pedido$").unwrap(), "DATA_PEDIDO$");
    }
}
