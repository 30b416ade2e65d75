//! Which columns a statement writes or compares, and which `?` feeds each one, so
//! `ponte transform check` can hold a transform's values against a unit's real column types.
//! Only plain shapes are mapped (`col = ?`, a VALUES item that is exactly `?`); an expression
//! leaves its column unmapped, and the server's own compile check still covers it.

use super::lexer::{tokenize, Spanned, Tok};
use super::names::{parse_name, Dialect};

/// One column a statement names and, when a single `?` feeds it, that parameter's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnUse {
    /// Column name as the server resolves it (folded under the dialect).
    pub column: String,
    /// Zero-based index into the statement's parameters.
    pub param: Option<usize>,
    /// True when the statement writes the column (false: only compared, as in WHERE).
    pub written: bool,
}

/// The target table and the columns of one statement; `None` for a shape not mapped (MERGE).
pub(crate) fn column_uses(sql: &str, dialect: Dialect) -> Option<(String, Vec<ColumnUse>)> {
    let toks = Tokens::new(sql)?;
    let (at, insert) = if toks.word(0, "INSERT") && toks.word(1, "INTO") {
        (2, true)
    } else if toks.word(0, "UPDATE")
        && toks.word(1, "OR")
        && toks.word(2, "INSERT")
        && toks.word(3, "INTO")
    {
        (4, true)
    } else if toks.word(0, "UPDATE") {
        (1, false)
    } else if toks.word(0, "DELETE") && toks.word(1, "FROM") {
        (2, false)
    } else {
        return None;
    };
    let (table, mut at) = parse_name(&toks.list, at)?;
    let mut uses = Vec::new();
    if insert {
        let (names, close) = toks.name_list(at, dialect)?;
        at = close + 1;
        if !toks.word(at, "VALUES") {
            return None;
        }
        let (items, close) = toks.items(at + 1)?;
        if items.len() != names.len() {
            return None;
        }
        for (column, item) in names.into_iter().zip(items) {
            uses.push(ColumnUse {
                column,
                param: toks.single_param(item),
                written: true,
            });
        }
        at = close + 1;
    } else if toks.word(0, "UPDATE") {
        while !toks.word(at, "SET") {
            toks.list.get(at)?;
            at += 1;
        }
        at += 1;
        loop {
            let (column, next) = toks.column(at, dialect)?;
            if !toks.is_char(next, b'=') {
                return None;
            }
            let end = toks.assignment_end(next + 1);
            uses.push(ColumnUse {
                column,
                param: toks.single_param((next + 1, end)),
                written: true,
            });
            at = end + 1;
            if !toks.is_char(end, b',') {
                break;
            }
        }
    }
    uses.extend(toks.compared(at, dialect));
    Some((table.folded(dialect), uses))
}

/// A statement's tokens, their text, and the ordinal of each `?`.
struct Tokens<'a> {
    sql: &'a str,
    list: Vec<Spanned<'a>>,
    params: Vec<Option<usize>>,
}

impl<'a> Tokens<'a> {
    fn new(sql: &'a str) -> Option<Tokens<'a>> {
        let list = tokenize(sql).ok()?;
        let mut n = 0;
        let params = list
            .iter()
            .map(|t| {
                (t.tok == Tok::Param).then(|| {
                    n += 1;
                    n - 1
                })
            })
            .collect();
        Some(Tokens { sql, list, params })
    }

    fn tok(&self, at: usize) -> Option<&Tok<'a>> {
        self.list.get(at).map(|t| &t.tok)
    }

    fn word(&self, at: usize, kw: &str) -> bool {
        matches!(self.tok(at), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    /// Whether the operator token at `at` is the character `c` (tokens keep offsets, not text).
    fn is_char(&self, at: usize, c: u8) -> bool {
        self.list
            .get(at)
            .is_some_and(|t| t.tok == Tok::Op && self.sql.as_bytes().get(t.start) == Some(&c))
    }

    /// A column name at `at` (`col`, `"Col"`, `alias.col`): its last part, folded.
    fn column(&self, at: usize, dialect: Dialect) -> Option<(String, usize)> {
        let (name, next) = parse_name(&self.list, at)?;
        let folded = name.folded(dialect);
        Some((
            folded.rsplit('.').next().unwrap_or(&folded).to_string(),
            next,
        ))
    }

    /// `( name, name, ... )` at `at`: the names and the index of `)`.
    fn name_list(&self, mut at: usize, dialect: Dialect) -> Option<(Vec<String>, usize)> {
        if self.tok(at)? != &Tok::LParen {
            return None;
        }
        let mut names = Vec::new();
        loop {
            let (name, next) = self.column(at + 1, dialect)?;
            names.push(name);
            match self.tok(next)? {
                Tok::RParen => return Some((names, next)),
                _ if self.is_char(next, b',') => at = next,
                _ => return None,
            }
        }
    }

    /// The top-level items of `( a, f(b, c), ? )` at `open` as token ranges, and the `)` index.
    fn items(&self, open: usize) -> Option<(Vec<(usize, usize)>, usize)> {
        if self.tok(open)? != &Tok::LParen {
            return None;
        }
        let mut items = Vec::new();
        let (mut depth, mut start) = (0usize, open + 1);
        for (i, t) in self.list.iter().enumerate().skip(open) {
            match t.tok {
                Tok::LParen => depth += 1,
                Tok::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        items.push((start, i));
                        return Some((items, i));
                    }
                }
                _ if depth == 1 && self.is_char(i, b',') => {
                    items.push((start, i));
                    start = i + 1;
                }
                _ => {}
            }
        }
        None
    }

    /// Where a `SET` expression ends: a top-level comma, WHERE, RETURNING or the end.
    fn assignment_end(&self, from: usize) -> usize {
        let mut depth = 0i64;
        for (i, t) in self.list.iter().enumerate().skip(from) {
            match &t.tok {
                Tok::LParen => depth += 1,
                Tok::RParen => depth -= 1,
                _ if depth == 0
                    && (self.is_char(i, b',')
                        || self.word(i, "WHERE")
                        || self.word(i, "RETURNING")) =>
                {
                    return i
                }
                _ => {}
            }
        }
        self.list.len()
    }

    /// The parameter of a token range that is exactly one `?`.
    fn single_param(&self, (from, to): (usize, usize)) -> Option<usize> {
        (to == from + 1)
            .then(|| self.params.get(from).copied().flatten())
            .flatten()
    }

    /// `col = ?` comparisons and MATCHING names after `from`.
    fn compared(&self, from: usize, dialect: Dialect) -> Vec<ColumnUse> {
        let mut uses = Vec::new();
        let mut i = from;
        while i < self.list.len() {
            if self.word(i, "MATCHING") {
                if let Some((names, close)) = self.name_list(i + 1, dialect) {
                    uses.extend(names.into_iter().map(|column| ColumnUse {
                        column,
                        param: None,
                        written: false,
                    }));
                    i = close + 1;
                    continue;
                }
            }
            let named =
                matches!(self.tok(i), Some(Tok::Word(_) | Tok::Quoted(_))) && !self.is_keyword(i);
            match named.then(|| self.column(i, dialect)).flatten() {
                Some((column, next)) if self.is_char(next, b'=') => {
                    let param = self
                        .single_param((next + 1, next + 2))
                        .filter(|_| !self.is_char(next + 2, b'|'));
                    uses.push(ColumnUse {
                        column,
                        param,
                        written: false,
                    });
                    i = next + 1;
                }
                Some((_, next)) => i = next,
                None => i += 1,
            }
        }
        uses
    }

    fn is_keyword(&self, at: usize) -> bool {
        [
            "WHERE",
            "AND",
            "OR",
            "NOT",
            "MATCHING",
            "RETURNING",
            "NULL",
            "IS",
        ]
        .iter()
        .any(|k| self.word(at, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses(sql: &str) -> (String, Vec<(String, Option<usize>, bool)>) {
        let (table, uses) = column_uses(sql, Dialect::Firebird).unwrap();
        (
            table,
            uses.into_iter()
                .map(|u| (u.column, u.param, u.written))
                .collect(),
        )
    }

    fn u(c: &str, p: Option<usize>, w: bool) -> (String, Option<usize>, bool) {
        (c.to_string(), p, w)
    }

    #[test]
    fn maps_insert_and_upsert_values_to_columns() {
        let (t, cols) = uses(
            "UPDATE OR INSERT INTO produtos (ID, Sku, \"Preço\") VALUES (?, UPPER(?), ?) \
             MATCHING (ID)",
        );
        assert_eq!(t, "PRODUTOS");
        assert_eq!(
            cols,
            vec![
                u("ID", Some(0), true),
                u("SKU", None, true),
                u("Preço", Some(2), true),
                u("ID", None, false)
            ]
        );
    }

    #[test]
    fn maps_update_assignments_and_where_comparisons() {
        let (t, cols) = uses(
            "UPDATE CLIENTES SET NOME = ?, OBS = COALESCE(?, 'x'), ATIVO = 1 WHERE ID = ? \
             AND LOJA = ?",
        );
        assert_eq!(t, "CLIENTES");
        assert_eq!(
            cols,
            vec![
                u("NOME", Some(0), true),
                u("OBS", None, true),
                u("ATIVO", None, true),
                u("ID", Some(2), false),
                u("LOJA", Some(3), false)
            ]
        );
        let (_, cols) = uses("DELETE FROM ITENS WHERE PEDIDO_ID = ? AND SEQ = ?");
        assert_eq!(
            cols,
            vec![u("PEDIDO_ID", Some(0), false), u("SEQ", Some(1), false)]
        );
    }

    #[test]
    fn leaves_unmapped_shapes_alone() {
        let merge = "MERGE INTO T USING (SELECT ? AS A FROM RDB$DATABASE) S ON T.A = S.A \
                     WHEN MATCHED THEN UPDATE SET B = 1";
        assert!(column_uses(merge, Dialect::Firebird).is_none());
        assert!(
            column_uses("INSERT INTO T (A, B) VALUES (?)", Dialect::Firebird).is_none(),
            "count mismatch"
        );
    }
}
