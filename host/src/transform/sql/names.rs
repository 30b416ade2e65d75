//! Table names as the server resolves them: Firebird folds unquoted identifiers to upper case,
//! PostgreSQL to lower case; quoted ones keep their case.

use super::lexer::{tokenize, Spanned, Tok};
use crate::model::{is_own_table, own_table_refusal};

/// Whose identifier rules apply: the statements of a downstream change run on Firebird, those of
/// an upstream change on PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Unquoted identifiers fold to upper case; no schemas; `UPDATE OR INSERT` exists.
    Firebird,
    /// Unquoted identifiers fold to lower case; `schema.table` allowed.
    Postgres,
}

/// One part of a (possibly dotted) table name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident {
    text: String,
    quoted: bool,
}

/// A table name as written in SQL or in a declaration (`CUSTOMERS`, `"Mixed"`, `public.t`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableName(Vec<Ident>);

impl TableName {
    /// Parses a declared name (from `info.writes` or a settings `target`).
    pub(crate) fn parse(name: &str) -> Result<TableName, String> {
        let toks = tokenize(name).map_err(|e| format!("table name `{name}`: {e}"))?;
        let (parsed, used) =
            parse_name(&toks, 0).ok_or_else(|| format!("`{name}` is not a table name"))?;
        if used != toks.len() {
            return Err(format!("`{name}` is not a single table name"));
        }
        Ok(parsed)
    }

    /// True for `schema.table`.
    pub(crate) fn is_qualified(&self) -> bool {
        self.0.len() > 1
    }

    /// The name as the server resolves it under `dialect`'s case rules.
    pub(crate) fn folded(&self, dialect: Dialect) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|p| match (p.quoted, dialect) {
                (true, _) => p.text.clone(),
                (false, Dialect::Firebird) => p.text.to_ascii_uppercase(),
                (false, Dialect::Postgres) => p.text.to_ascii_lowercase(),
            })
            .collect();
        parts.join(".")
    }
}

/// Parses `ident ( . ident )*` at `at`; returns the name and the index after it.
pub(crate) fn parse_name(toks: &[Spanned<'_>], mut at: usize) -> Option<(TableName, usize)> {
    let mut parts = Vec::new();
    loop {
        let part = match &toks.get(at)?.tok {
            Tok::Word(w) => Ident {
                text: (*w).to_string(),
                quoted: false,
            },
            Tok::Quoted(q) => Ident {
                text: q.clone(),
                quoted: true,
            },
            _ => return None,
        };
        parts.push(part);
        at += 1;
        if !matches!(toks.get(at).map(|t| &t.tok), Some(Tok::Dot)) {
            return Some((TableName(parts), at));
        }
        at += 1;
    }
}

/// The tables one binding's statements may write.
#[derive(Debug, Clone)]
pub(crate) struct AllowedWrites(pub(super) Vec<TableName>);

impl AllowedWrites {
    /// Builds the set from declared names; ponte's own tables are refused, all named at once.
    pub(crate) fn new(names: &[String]) -> Result<AllowedWrites, String> {
        let own: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| is_own_table(n))
            .collect();
        if !own.is_empty() {
            return Err(own_table_refusal(&own.join("`, `")));
        }
        names
            .iter()
            .map(|n| TableName::parse(n))
            .collect::<Result<_, _>>()
            .map(AllowedWrites)
    }

    pub(crate) fn allows(&self, name: &TableName, dialect: Dialect) -> bool {
        let wanted = name.folded(dialect);
        self.0.iter().any(|t| t.folded(dialect) == wanted)
    }
}
