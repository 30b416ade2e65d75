//! The fast path of the apply transaction: many changes' statements, ledger rows, row versions
//! and INDICE updates packed into one `EXECUTE BLOCK` (Firebird 2.5 PSQL) per round trip. The
//! work and its order are exactly those of the per-statement path; only the number of client
//! round trips changes. Block text depends only on the shapes of the changes (tables, types,
//! NULL positions), so repeated shapes reuse the client's prepared statement.

use std::fmt::Write as _;

use rsfbclient::SqlType;

use crate::model::Value;

/// Input message budget of one block (Firebird 2.5 caps a message at 64 KiB).
const MAX_MESSAGE_BYTES: usize = 48 * 1024;
/// SQL text budget of one block (2.5 caps statement text at 64 KiB).
const MAX_SQL_BYTES: usize = 48 * 1024;
/// Table contexts one request may hold (Firebird: 256, counted over the whole block).
const MAX_CONTEXTS: usize = 240;
/// Longest text (in characters) bound inside a block; longer ones go through the plain path.
pub const MAX_BLOCK_TEXT_CHARS: usize = 1024;

/// One EXECUTE BLOCK under construction.
#[derive(Default)]
pub struct Block {
    header: Vec<String>,
    header_bytes: usize,
    declares: String,
    body: String,
    params: Vec<SqlType>,
    message_bytes: usize,
    variables: usize,
    contexts: usize,
}

impl Block {
    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// Whether a change of about `sql_len` bytes of statements, `bytes` of parameters and
    /// `contexts` table contexts (see [`contexts`]) still fits.
    pub fn has_room(&self, sql_len: usize, bytes: usize, contexts: usize) -> bool {
        self.is_empty()
            || (self.text_bytes() + sql_len * 2 + 512 < MAX_SQL_BYTES
                && self.message_bytes + bytes + 256 < MAX_MESSAGE_BYTES
                && self.contexts + contexts <= MAX_CONTEXTS)
    }

    /// Bytes of block text so far: parameter declarations, variables and statements.
    fn text_bytes(&self) -> usize {
        self.header_bytes + self.declares.len() + self.body.len()
    }

    /// Binds a value as a block input parameter and returns how to refer to it (`:pN` or NULL).
    pub fn bind(&mut self, value: &Value) -> String {
        let (decl, param) = match value {
            Value::Null | Value::NewId(_) => return "NULL".into(),
            Value::Int(v) => ("BIGINT".to_string(), SqlType::Integer(*v)),
            Value::Float(v) => ("DOUBLE PRECISION".to_string(), SqlType::Floating(*v)),
            Value::Decimal(s) | Value::Date(s) | Value::Time(s) | Value::Timestamp(s) => (
                "VARCHAR(48) CHARACTER SET ASCII".to_string(),
                SqlType::Text(s.clone()),
            ),
            Value::Text(s) => (
                format!("VARCHAR({}) CHARACTER SET UTF8", bucket(s.chars().count())),
                SqlType::Text(s.clone()),
            ),
            // Text blobs must be transliterated into the column's charset (WIN1252...), which
            // only happens when the parameter says it is UTF8 text; true binary stays binary.
            Value::Blob(b) if std::str::from_utf8(b).is_ok() => (
                "BLOB SUB_TYPE TEXT CHARACTER SET UTF8".to_string(),
                SqlType::Binary(b.clone()),
            ),
            Value::Blob(b) => ("BLOB SUB_TYPE 0".to_string(), SqlType::Binary(b.clone())),
        };
        let name = format!("p{}", self.header.len());
        self.header.push(format!("{name} {decl} = ?"));
        self.header_bytes += name.len() + decl.len() + 6;
        self.params.push(param);
        self.message_bytes += message_bytes(value);
        format!(":{name}")
    }

    /// Declares a BIGINT local variable and returns its name (without the colon).
    pub fn variable(&mut self) -> String {
        let name = format!("v{}", self.variables);
        self.variables += 1;
        let _ = writeln!(self.declares, "DECLARE VARIABLE {name} BIGINT;");
        name
    }

    /// Appends one PSQL statement (terminated here).
    pub fn push(&mut self, statement: &str) {
        self.contexts += contexts(statement);
        self.body.push_str(statement);
        self.body.push_str(";\n");
    }

    /// The block text and its parameters; the block is left empty.
    pub fn take(&mut self) -> (String, Vec<SqlType>) {
        let header = if self.header.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.header.join(", "))
        };
        let sql = format!(
            "EXECUTE BLOCK{header} AS\n{}BEGIN\n{}END",
            self.declares, self.body
        );
        let params = std::mem::take(&mut self.params);
        *self = Block::default();
        (sql, params)
    }
}

/// Table contexts a statement takes in a compiled block, as measured on Firebird 3.0 (2.5 is the
/// same or less): INSERT and DELETE 1, UPDATE 2, UPDATE OR INSERT 3, MERGE with a one-row source
/// 4, plus one per FROM or JOIN (a subquery, a SELECT INTO). Over-counting only makes blocks
/// smaller; under-counting would fail a block (and send its batch down the slow path).
pub fn contexts(statement: &str) -> usize {
    let mut words = statement
        .split('\'')
        .step_by(2) // outside string literals
        .flat_map(|part| part.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$')))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .peekable();
    let mut base = None;
    let mut sources = 0;
    while let Some(word) = words.next() {
        match word.as_str() {
            "FROM" | "JOIN" => sources += 1,
            "INSERT" | "DELETE" if base.is_none() => {
                base = Some(1);
                if word == "DELETE" && words.peek().is_some_and(|w| w == "FROM") {
                    words.next();
                }
            }
            "UPDATE" if base.is_none() => {
                base = Some(if words.peek().is_some_and(|w| w == "OR") {
                    3
                } else {
                    2
                })
            }
            "MERGE" if base.is_none() => base = Some(4),
            "SELECT" if base.is_none() => base = Some(0),
            _ => {}
        }
    }
    base.unwrap_or(4) + sources
}

/// Declared text lengths come in a few sizes so that blocks of the same shape share one text.
fn bucket(chars: usize) -> usize {
    [16, 64, 256, MAX_BLOCK_TEXT_CHARS]
        .into_iter()
        .find(|&b| chars <= b)
        .unwrap_or(MAX_BLOCK_TEXT_CHARS)
}

/// Bytes a bound value takes in the block's input message (a blob travels as an 8-byte id).
pub fn message_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::NewId(_) => 0,
        Value::Int(_) | Value::Float(_) | Value::Blob(_) => 8,
        Value::Decimal(_) | Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => 50,
        Value::Text(s) => bucket(s.chars().count()) * 4 + 2,
    }
}

/// Whether a value can be bound inside a block (very long texts cannot).
pub fn blockable(value: &Value) -> bool {
    match value {
        Value::Text(s) => s.chars().count() <= MAX_BLOCK_TEXT_CHARS,
        _ => true,
    }
}

/// Replaces each `?` outside string literals by the next reference from `refs`.
pub fn substitute(sql: &str, refs: &[String]) -> Option<String> {
    let mut out = String::with_capacity(sql.len() + refs.len() * 4);
    let mut refs = refs.iter();
    let mut in_string = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                in_string = !in_string;
                out.push(c);
            }
            '?' if !in_string => out.push_str(refs.next()?),
            _ => out.push(c),
        }
    }
    refs.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_placeholders_outside_literals() {
        let refs = vec![":p0".to_string(), "NULL".to_string()];
        assert_eq!(
            substitute("UPDATE T SET A = ?, B = 'why?' WHERE C = ?", &refs).as_deref(),
            Some("UPDATE T SET A = :p0, B = 'why?' WHERE C = NULL")
        );
        assert_eq!(substitute("X = ?", &refs), None, "too many refs");
        assert_eq!(substitute("X = ? AND ? AND ?", &refs), None, "too few refs");
    }

    #[test]
    fn counts_contexts_as_the_server_does() {
        assert_eq!(contexts("INSERT INTO T (A) VALUES (:p0)"), 1);
        assert_eq!(contexts("delete from T where A = :p0"), 1);
        assert_eq!(contexts("UPDATE T SET A = :p0 WHERE B = 'FROM'"), 2);
        assert_eq!(
            contexts("UPDATE OR INSERT INTO T (A) VALUES (:p0) MATCHING (A)"),
            3
        );
        assert_eq!(contexts("MERGE INTO T USING (SELECT 1 AS A FROM RDB$DATABASE) S ON T.A = S.A WHEN MATCHED THEN UPDATE SET B = 1"), 5);
        assert_eq!(
            contexts(
                "IF (ROW_COUNT = 0) THEN INSERT INTO INDICE (TABELA, ULTIMO_ID) VALUES (:p0, 1)"
            ),
            1
        );
        assert_eq!(
            contexts("SELECT ULTIMO_ID FROM INDICE WHERE TABELA = :p0 INTO :v0"),
            1
        );
        assert_eq!(
            contexts("INSERT INTO T (A) SELECT A FROM U JOIN V ON U.X = V.X"),
            3
        );
    }

    #[test]
    fn builds_a_block_with_typed_parameters() {
        let mut b = Block::default();
        let a = b.bind(&Value::Int(7));
        let t = b.bind(&Value::Text("José".into()));
        let n = b.bind(&Value::Null);
        let v = b.variable();
        b.push(&format!(
            "INSERT INTO T (A, B, C) VALUES ({a}, {t}, {n}) RETURNING A INTO :{v}"
        ));
        let (sql, params) = b.take();
        assert!(sql.starts_with("EXECUTE BLOCK (p0 BIGINT = ?, p1 VARCHAR(16) CHARACTER SET UTF8 = ?) AS\nDECLARE VARIABLE v0 BIGINT;\nBEGIN\n"), "{sql}");
        assert!(
            sql.ends_with("VALUES (:p0, :p1, NULL) RETURNING A INTO :v0;\nEND"),
            "{sql}"
        );
        assert_eq!(params.len(), 2);
        assert!(b.is_empty());
    }
}
