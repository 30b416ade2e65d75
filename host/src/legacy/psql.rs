//! A tolerant PSQL reader for the unit's own trigger sources: tokens (comments and whitespace
//! skipped, string literals kept), and what a body does that matters to replication: the tables
//! it writes, the generators it bumps, the `NEW` columns it assigns (and from which generator),
//! whether it tests ponte's apply flag, and whether it runs dynamic SQL or procedures.

use std::collections::BTreeSet;

/// One token of PSQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// An unquoted word, upper-cased.
    Word(String),
    /// A double-quoted identifier, case kept.
    Quoted(String),
    /// A string literal's text (`''` unescaped).
    Str(String),
    /// A number.
    Number(String),
    /// Any other character.
    Sym(char),
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned {
    /// The token.
    pub tok: Tok,
    /// Byte offset in the source.
    pub start: usize,
}

/// Splits PSQL text into tokens; an unterminated comment, string or identifier is an error.
pub fn tokenize(text: &str) -> Result<Vec<Spanned>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && bytes.get(i + 1) == Some(&b'-') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            let end = text[i + 2..]
                .find("*/")
                .ok_or_else(|| format!("unterminated comment at byte {start}"))?;
            i += 2 + end + 2;
        } else if c == b'\'' || c == b'"' {
            let (body, next) = quoted(text, i, c)
                .ok_or_else(|| format!("unterminated quoted text at byte {start}"))?;
            let tok = if c == b'\'' {
                Tok::Str(body)
            } else {
                Tok::Quoted(body)
            };
            out.push(Spanned { tok, start });
            i = next;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$')
            {
                i += 1;
            }
            let word = text[start..i].to_ascii_uppercase();
            out.push(Spanned {
                tok: Tok::Word(word),
                start,
            });
        } else if c.is_ascii_digit() {
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            let number = text[start..i].to_string();
            out.push(Spanned {
                tok: Tok::Number(number),
                start,
            });
        } else {
            let ch = text[i..].chars().next().unwrap_or('?');
            i += ch.len_utf8();
            out.push(Spanned {
                tok: Tok::Sym(ch),
                start,
            });
        }
    }
    Ok(out)
}

/// The text of a quoted token starting at `at` and the offset after it.
fn quoted(text: &str, at: usize, quote: u8) -> Option<(String, usize)> {
    let bytes = text.as_bytes();
    let mut i = at + 1;
    let mut body = Vec::new();
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                body.push(quote);
                i += 2;
                continue;
            }
            return Some((String::from_utf8_lossy(&body).into_owned(), i + 1));
        }
        body.push(bytes[i]);
        i += 1;
    }
    None
}

/// A `NEW.<column> = ...` assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The column assigned (upper case unless quoted).
    pub column: String,
    /// The generator its value comes from (`GEN_ID(G, n)`, `NEXT VALUE FOR G`), if any.
    pub generator: Option<String>,
    /// Only when the column is NULL (`IF (NEW.C IS NULL) THEN NEW.C = ...`): a value ponte
    /// writes is kept.
    pub only_if_null: bool,
}

/// What a trigger body does, read from its source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Tables it inserts into, updates, deletes from or merges into.
    pub writes: BTreeSet<String>,
    /// Generators it advances (`GEN_ID(G, n)` with n not 0, `NEXT VALUE FOR G`).
    pub generators: BTreeSet<String>,
    /// Assignments to `NEW` columns.
    pub assigns: Vec<Assignment>,
    /// It reads ponte's apply flag (`RDB$GET_CONTEXT('USER_TRANSACTION', '<flag>')`).
    pub tests_flag: bool,
    /// `EXECUTE STATEMENT`: what it writes cannot be read from the source.
    pub dynamic_sql: bool,
    /// Procedures it calls (`EXECUTE PROCEDURE P`); their writes are not analysed.
    pub procedures: BTreeSet<String>,
}

fn name_at(tokens: &[Spanned], at: usize) -> Option<String> {
    match tokens.get(at).map(|t| &t.tok) {
        Some(Tok::Word(w)) => Some(w.clone()),
        Some(Tok::Quoted(q)) => Some(q.clone()),
        _ => None,
    }
}

fn is_word(tokens: &[Spanned], at: usize, word: &str) -> bool {
    matches!(tokens.get(at).map(|t| &t.tok), Some(Tok::Word(w)) if w == word)
}

fn is_sym(tokens: &[Spanned], at: usize, sym: char) -> bool {
    matches!(tokens.get(at).map(|t| &t.tok), Some(Tok::Sym(c)) if *c == sym)
}

/// The generator a value expression starting at `at` draws from, and whether it advances it.
fn generator_at(tokens: &[Spanned], at: usize) -> Option<(String, bool)> {
    if is_word(tokens, at, "GEN_ID") && is_sym(tokens, at + 1, '(') {
        let name = name_at(tokens, at + 2)?;
        let zero = is_sym(tokens, at + 3, ',')
            && matches!(tokens.get(at + 4).map(|t| &t.tok), Some(Tok::Number(n)) if n == "0")
            && is_sym(tokens, at + 5, ')');
        return Some((name, !zero));
    }
    if is_word(tokens, at, "NEXT")
        && is_word(tokens, at + 1, "VALUE")
        && is_word(tokens, at + 2, "FOR")
    {
        return Some((name_at(tokens, at + 3)?, true));
    }
    None
}

/// `IF ( NEW . <column> IS NULL ) THEN` ending just before `at`.
fn guarded_by_null_test(tokens: &[Spanned], at: usize, column: &str) -> bool {
    if at < 9 {
        return false;
    }
    let s = at - 9;
    is_word(tokens, s, "IF")
        && is_sym(tokens, s + 1, '(')
        && is_word(tokens, s + 2, "NEW")
        && is_sym(tokens, s + 3, '.')
        && name_at(tokens, s + 4).as_deref() == Some(column)
        && is_word(tokens, s + 5, "IS")
        && is_word(tokens, s + 6, "NULL")
        && is_sym(tokens, s + 7, ')')
        && is_word(tokens, s + 8, "THEN")
}

/// Reads the effects of a trigger `source` (as RDB$TRIGGER_SOURCE stores it, from `AS`);
/// `flag` is ponte's apply context variable.
pub fn effects(source: &str, flag: &str) -> Result<Effects, String> {
    let t = tokenize(source)?;
    let mut e = Effects::default();
    for i in 0..t.len() {
        let Tok::Word(word) = &t[i].tok else {
            continue;
        };
        match word.as_str() {
            "INSERT" | "MERGE" if is_word(&t, i + 1, "INTO") => {
                e.writes.extend(name_at(&t, i + 2));
            }
            "DELETE" if is_word(&t, i + 1, "FROM") => e.writes.extend(name_at(&t, i + 2)),
            // `FOR UPDATE [OF ...]` locks, `UPDATE OR INSERT INTO T` is found by its INSERT.
            "UPDATE" if !(is_word(&t, i + 1, "OR") || (i > 0 && is_word(&t, i - 1, "FOR"))) => {
                e.writes.extend(name_at(&t, i + 1));
            }
            "GEN_ID" | "NEXT" => {
                if let Some((name, true)) = generator_at(&t, i) {
                    e.generators.insert(name);
                }
            }
            "NEW" if is_sym(&t, i + 1, '.') && is_sym(&t, i + 3, '=') => {
                let prior_ok = i == 0 || !is_sym(&t, i - 1, '.');
                let Some(column) = name_at(&t, i + 2).filter(|_| prior_ok) else {
                    continue;
                };
                // `NEW.C = x` is an assignment only at the start of a statement, not inside a
                // condition (`IF (NEW.C = 1)`, `WHERE ... = NEW.C`).
                let starts_statement = i == 0
                    || matches!(&t[i - 1].tok, Tok::Sym(';'))
                    || matches!(&t[i - 1].tok, Tok::Word(w) if w == "THEN" || w == "ELSE"
                        || w == "BEGIN" || w == "DO");
                if starts_statement {
                    e.assigns.push(Assignment {
                        generator: generator_at(&t, i + 4).map(|(g, _)| g),
                        only_if_null: guarded_by_null_test(&t, i, &column),
                        column,
                    });
                }
            }
            "RDB$GET_CONTEXT" => {
                let text = |at: usize| match t.get(at).map(|x| &x.tok) {
                    Some(Tok::Str(s)) => Some(s.as_str()),
                    _ => None,
                };
                let ns = text(i + 2) == Some("USER_TRANSACTION");
                let var = text(i + 4) == Some(flag);
                e.tests_flag |= ns && var;
            }
            "EXECUTE" if is_word(&t, i + 1, "STATEMENT") => e.dynamic_sql = true,
            "EXECUTE" if is_word(&t, i + 1, "PROCEDURE") => {
                e.procedures.extend(name_at(&t, i + 2));
            }
            _ => {}
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HISTORY: &str = "AS\n  DECLARE VARIABLE X INTEGER = 3; -- INSERT INTO NOPE\nBEGIN\n  \
        /* UPDATE NOPE2 */\n  IF (NEW.PRECO <> OLD.PRECO) THEN\n    INSERT INTO ITENS_HIST (ID) \
        VALUES (GEN_ID(GEN_HIST, 1));\n  UPDATE OR INSERT INTO \"Log\" (A) VALUES ('UPDATE X');\n\
        END";

    #[test]
    fn writes_and_generators_come_from_code_not_comments_or_strings() {
        let e = effects(HISTORY, "PONTE_APPLY").unwrap();
        let writes: Vec<&str> = e.writes.iter().map(String::as_str).collect();
        assert_eq!(writes, vec!["ITENS_HIST", "Log"]);
        assert_eq!(e.generators.iter().collect::<Vec<_>>(), vec!["GEN_HIST"]);
        assert!(!e.tests_flag && !e.dynamic_sql && e.assigns.is_empty());
    }

    #[test]
    fn assignments_know_their_generator_and_null_test() {
        let src = "AS BEGIN IF (NEW.ID IS NULL) THEN NEW.ID = GEN_ID(GEN_ITENS, 1);\n\
                   NEW.CARIMBO = NEXT VALUE FOR GEN_C; IF (NEW.X = 1) THEN NEW.Y = 2;\n\
                   SELECT GEN_ID(GEN_R, 0) FROM RDB$DATABASE INTO :V; END";
        let e = effects(src, "PONTE_APPLY").unwrap();
        assert_eq!(
            e.assigns,
            vec![
                Assignment {
                    column: "ID".into(),
                    generator: Some("GEN_ITENS".into()),
                    only_if_null: true
                },
                Assignment {
                    column: "CARIMBO".into(),
                    generator: Some("GEN_C".into()),
                    only_if_null: false
                },
                Assignment {
                    column: "Y".into(),
                    generator: None,
                    only_if_null: false
                },
            ]
        );
        let gens: Vec<&str> = e.generators.iter().map(String::as_str).collect();
        assert_eq!(gens, vec!["GEN_C", "GEN_ITENS"], "GEN_ID(G, 0) only reads");
    }

    #[test]
    fn the_flag_test_is_recognised() {
        let src = "AS BEGIN IF (RDB$GET_CONTEXT('USER_TRANSACTION', 'PONTE_APPLY') IS NULL) \
                   THEN INSERT INTO H (A) VALUES (1); EXECUTE STATEMENT 'x'; END";
        let e = effects(src, "PONTE_APPLY").unwrap();
        assert!(e.tests_flag && e.dynamic_sql);
        assert!(!effects(src, "OTHER").unwrap().tests_flag);
    }

    #[test]
    fn unterminated_text_is_an_error() {
        assert!(tokenize("AS BEGIN /* open").is_err());
        assert!(tokenize("AS BEGIN X = 'open").is_err());
    }
}
