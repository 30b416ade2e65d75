//! Validation of every statement a transform returns, before the host may run it: one DML
//! statement (INSERT INTO, UPDATE, DELETE FROM, UPDATE OR INSERT INTO, MERGE INTO) on a table the
//! transform declared, no comments, no reads of other tables, no calls outside a short list of
//! pure built-in functions, and exactly as many `?` as parameters.

mod columns;
mod lexer;
mod names;
#[cfg(test)]
mod tests;

pub(crate) use columns::{column_uses, ColumnUse};
use lexer::{tokenize, Spanned, Tok};
use names::parse_name;
pub(crate) use names::{AllowedWrites, Dialect, TableName};

/// Words that may directly precede `(`: keywords, type names and pure built-in functions.
/// Anything else followed by `(` is a call the host cannot vouch for (GEN_ID, nextval, pg_sleep,
/// a stored procedure...) and is refused.
#[rustfmt::skip]
const CALLABLE: &[&str] = &[
    // keywords that open a parenthesised list or expression
    "VALUES", "MATCHING", "CONFLICT", "IN", "AND", "OR", "NOT", "ON", "WHERE", "SET", "INSERT",
    "THEN", "ELSE", "WHEN", "IS", "AS", "RETURNING", "BY", "ROW", "DISTINCT",
    // type names with a size or precision
    "VARCHAR", "CHAR", "CHARACTER", "VARYING", "NCHAR", "NUMERIC", "DECIMAL", "TIMESTAMP", "TIME",
    "FLOAT", "BIT",
    // pure built-in functions
    "CAST", "COALESCE", "NULLIF", "IIF", "UPPER", "LOWER", "TRIM", "SUBSTRING", "CHAR_LENGTH",
    "CHARACTER_LENGTH", "OCTET_LENGTH", "BIT_LENGTH", "EXTRACT", "POSITION", "OVERLAY", "REPLACE",
    "LPAD", "RPAD", "LEFT", "RIGHT", "ABS", "ROUND", "TRUNC", "FLOOR", "CEILING", "CEIL", "MOD",
    "SIGN", "DATEADD", "DATEDIFF", "MAXVALUE", "MINVALUE", "GREATEST", "LEAST", "CONCAT",
];

/// Functions whose parentheses may contain `FROM` (`SUBSTRING(x FROM 2)`, `EXTRACT(YEAR FROM d)`).
const FROM_INSIDE: &[&str] = &["SUBSTRING", "TRIM", "EXTRACT", "OVERLAY"];

/// Words refused anywhere in the body: reads of other tables, procedures, and a second target.
const FORBIDDEN: &[&str] = &["SELECT", "FROM", "USING", "JOIN", "EXECUTE", "INTO"];

/// System-table prefixes refused everywhere (RDB$DATABASE only in a MERGE source).
const SYSTEM_PREFIXES: &[&str] = &["RDB$", "MON$", "SEC$"];

/// Checks one statement; on success strips a trailing `;` from `sql` in place.
pub(crate) fn validate(
    sql: &mut String,
    params: usize,
    dialect: Dialect,
    allowed: &AllowedWrites,
) -> Result<(), String> {
    let toks = tokenize(sql)?;
    let mut end = toks.len();
    if let Some(last) = toks.last() {
        if last.tok == Tok::Semi {
            end -= 1;
        }
    }
    let toks = &toks[..end];
    if let Some(semi) = toks.iter().find(|t| t.tok == Tok::Semi) {
        return Err(format!(
            "more than one statement (`;` at byte {})",
            semi.start
        ));
    }
    let placeholders = toks.iter().filter(|t| t.tok == Tok::Param).count();
    if placeholders != params {
        return Err(format!(
            "{placeholders} `?` placeholders but {params} parameters"
        ));
    }
    let (kind, table, body) = head(toks, dialect)?;
    if dialect == Dialect::Firebird && table.is_qualified() {
        return Err(format!(
            "{kind} on `{}`: Firebird has no schemas",
            table.folded(dialect)
        ));
    }
    if crate::model::is_own_table(&table.folded(dialect)) {
        return Err(format!(
            "{kind} on {}",
            crate::model::own_table_refusal(&table.folded(dialect))
        ));
    }
    if !allowed.allows(&table, dialect) {
        return Err(format!(
            "{kind} on table `{}`, which this transform did not declare in `writes`",
            table.folded(dialect)
        ));
    }
    let body = if kind == "MERGE INTO" {
        merge_source(toks, body, dialect, allowed)?
    } else {
        body
    };
    scan_body(toks, body, toks.len())?;
    if let Some(semi_at) = trailing_semi(sql) {
        sql.truncate(semi_at);
        let kept = sql.trim_end().len();
        sql.truncate(kept);
    }
    Ok(())
}

/// Byte offset of a final `;` (only whitespace after it), if any.
fn trailing_semi(sql: &str) -> Option<usize> {
    let trimmed = sql.trim_end();
    trimmed.ends_with(';').then(|| trimmed.len() - 1)
}

fn word_is(toks: &[Spanned<'_>], at: usize, kw: &str) -> bool {
    matches!(toks.get(at).map(|t| &t.tok), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

/// Recognises the statement kind and its target; returns (kind, target, index of the body).
fn head(
    toks: &[Spanned<'_>],
    dialect: Dialect,
) -> Result<(&'static str, TableName, usize), String> {
    let (kind, at) = if word_is(toks, 0, "INSERT") && word_is(toks, 1, "INTO") {
        ("INSERT INTO", 2)
    } else if word_is(toks, 0, "UPDATE") && word_is(toks, 1, "OR") {
        if !(word_is(toks, 2, "INSERT") && word_is(toks, 3, "INTO")) {
            return Err("`UPDATE OR` must be followed by `INSERT INTO`".into());
        }
        if dialect == Dialect::Postgres {
            return Err(
                "UPDATE OR INSERT is Firebird syntax; this change runs on PostgreSQL".into(),
            );
        }
        ("UPDATE OR INSERT INTO", 4)
    } else if word_is(toks, 0, "UPDATE") {
        ("UPDATE", 1)
    } else if word_is(toks, 0, "DELETE") && word_is(toks, 1, "FROM") {
        ("DELETE FROM", 2)
    } else if word_is(toks, 0, "MERGE") && word_is(toks, 1, "INTO") {
        ("MERGE INTO", 2)
    } else {
        let first = match toks.first().map(|t| &t.tok) {
            None => return Err("empty statement".into()),
            Some(Tok::Word(w)) => w.to_ascii_uppercase(),
            Some(_) => "a non-keyword".into(),
        };
        return Err(format!(
            "statement starting with {first} is not allowed; only INSERT INTO, UPDATE, DELETE \
             FROM, UPDATE OR INSERT INTO and MERGE INTO"
        ));
    };
    let (table, body) =
        parse_name(toks, at).ok_or_else(|| format!("{kind} must be followed by a table name"))?;
    Ok((kind, table, body))
}

/// Parses `[[AS] alias] USING source [[AS] alias]` of a MERGE; returns where its ON clause starts.
/// The source is a table this transform may write, or a parenthesised parameter-only SELECT
/// (Firebird: `FROM RDB$DATABASE`; PostgreSQL: no FROM).
fn merge_source(
    toks: &[Spanned<'_>],
    mut at: usize,
    dialect: Dialect,
    allowed: &AllowedWrites,
) -> Result<usize, String> {
    at = skip_alias(toks, at);
    if !word_is(toks, at, "USING") {
        return Err("MERGE INTO must name its source with USING".into());
    }
    at += 1;
    if let Some((source, next)) = parse_name(toks, at) {
        if !allowed.allows(&source, dialect) {
            return Err(format!(
                "MERGE USING table `{}`: a MERGE may only read a parameter-only SELECT or a \
                 table this transform writes",
                source.folded(dialect)
            ));
        }
        return Ok(skip_alias(toks, next));
    }
    if toks.get(at).map(|t| &t.tok) != Some(&Tok::LParen) || !word_is(toks, at + 1, "SELECT") {
        return Err("MERGE USING must be a table or `(SELECT ...)`".into());
    }
    let close = matching_paren(toks, at).ok_or("MERGE USING: unbalanced parentheses")?;
    let list_start = at + 2;
    let from =
        (list_start..close).find(|&i| word_is(toks, i, "FROM") && depth(toks, at + 1, i) == 0);
    match (from, dialect) {
        (Some(f), Dialect::Firebird) => {
            let is_rdb = word_is(toks, f + 1, "RDB$DATABASE") && f + 2 == close;
            if !is_rdb {
                return Err("MERGE USING (SELECT ...) may only select parameters FROM \
                            RDB$DATABASE"
                    .into());
            }
            scan_body(toks, list_start, f)?;
        }
        (None, Dialect::Firebird) => {
            return Err("MERGE USING (SELECT ...) needs FROM RDB$DATABASE on Firebird".into());
        }
        (Some(_), Dialect::Postgres) => {
            return Err("MERGE USING (SELECT ...) may only select parameters (no FROM)".into());
        }
        (None, Dialect::Postgres) => scan_body(toks, list_start, close)?,
    }
    Ok(skip_alias(toks, close + 1))
}

/// Skips `AS alias` or a bare alias (any identifier that is not USING/ON).
fn skip_alias(toks: &[Spanned<'_>], mut at: usize) -> usize {
    if word_is(toks, at, "AS") {
        at += 1;
    }
    match toks.get(at).map(|t| &t.tok) {
        Some(Tok::Word(w)) if !w.eq_ignore_ascii_case("USING") && !w.eq_ignore_ascii_case("ON") => {
            at + 1
        }
        Some(Tok::Quoted(_)) => at + 1,
        _ => at,
    }
}

/// Index of the `)` matching the `(` at `open`.
fn matching_paren(toks: &[Spanned<'_>], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.tok {
            Tok::LParen => depth += 1,
            Tok::RParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Parenthesis depth at `at`, counted from `from`.
fn depth(toks: &[Spanned<'_>], from: usize, at: usize) -> i64 {
    toks[from..at].iter().fold(0, |d, t| match t.tok {
        Tok::LParen => d + 1,
        Tok::RParen => d - 1,
        _ => d,
    })
}

/// Refuses forbidden words, system identifiers, `NEXT VALUE FOR`, and calls not in [`CALLABLE`]
/// in `toks[from..to]`.
fn scan_body(toks: &[Spanned<'_>], from: usize, to: usize) -> Result<(), String> {
    // The word that opened each enclosing parenthesis (None for a bare or quoted one).
    let mut openers: Vec<Option<String>> = Vec::new();
    for i in from..to {
        let next = toks.get(i + 1).map(|t| &t.tok);
        match &toks[i].tok {
            Tok::LParen => {
                let opener = match i.checked_sub(1).map(|p| &toks[p].tok) {
                    Some(Tok::Word(w)) => Some(w.to_ascii_uppercase()),
                    _ => None,
                };
                openers.push(opener);
            }
            Tok::RParen if openers.pop().is_none() => return Err("unbalanced `)`".into()),
            Tok::Quoted(q) if next == Some(&Tok::LParen) => {
                return Err(format!("call of \"{q}\"(...) is not allowed"));
            }
            Tok::Word(w) => {
                let upper = w.to_ascii_uppercase();
                if upper == "FROM" {
                    let in_function = matches!(
                        openers.last(),
                        Some(Some(o)) if FROM_INSIDE.contains(&o.as_str())
                    );
                    let distinct = i > 0 && word_is(toks, i - 1, "DISTINCT");
                    if !in_function && !distinct {
                        return Err(
                            "FROM outside the statement head: a write may not read other \
                                    tables"
                                .into(),
                        );
                    }
                } else if FORBIDDEN.contains(&upper.as_str()) {
                    return Err(format!("`{upper}` is not allowed inside the statement"));
                }
                if SYSTEM_PREFIXES.iter().any(|p| upper.starts_with(p)) {
                    return Err(format!("system identifier `{upper}` is not allowed"));
                }
                if upper == "NEXT" && word_is(toks, i + 1, "VALUE") {
                    return Err("NEXT VALUE FOR is not allowed; use a new-id parameter".into());
                }
                if next == Some(&Tok::LParen) {
                    let qualified = i > 0 && toks[i - 1].tok == Tok::Dot;
                    if qualified || !CALLABLE.contains(&upper.as_str()) {
                        return Err(format!(
                            "call of `{upper}(...)` is not allowed (only pure built-in functions)"
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if !openers.is_empty() {
        return Err("unbalanced `(`".into());
    }
    Ok(())
}
