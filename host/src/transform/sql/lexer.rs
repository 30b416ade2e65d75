//! A strict tokenizer for the SQL that transforms return: just enough to find statement
//! boundaries, comments, placeholders, identifiers and calls, and to refuse whatever it cannot
//! classify with certainty (a tokenizer that disagrees with the server is a hole, so when in doubt
//! it refuses).

/// One token. String literals keep no text: nothing in them matters to the validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// An unquoted identifier or keyword: `[A-Za-z_][A-Za-z0-9_$]*`.
    Word(&'a str),
    /// A double-quoted identifier, unescaped (`""` -> `"`), case kept.
    Quoted(String),
    /// A single-quoted string literal.
    Str,
    /// A numeric literal.
    Number,
    /// A `?` placeholder.
    Param,
    /// `;`
    Semi,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `.`
    Dot,
    /// Any other operator or punctuation character (`=`, `,`, `<`, `|`, `:`, ...).
    Op,
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spanned<'a> {
    pub tok: Tok<'a>,
    pub start: usize,
}

/// Splits `sql` into tokens, or says why it refuses to.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<Spanned<'_>>, String> {
    if sql.contains('\0') {
        return Err("the SQL contains a NUL character".into());
    }
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let tok = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'\'' => {
                let prefixed = matches!(
                    out.last(),
                    Some(Spanned { tok: Tok::Word(_), start: s }) if word_touches(bytes, *s, start)
                );
                if prefixed {
                    // E'..' (backslash escapes), N'..', X'..', _charset'..': a prefix changes how
                    // the server reads the literal, so it is refused rather than guessed.
                    return Err(format!(
                        "a prefixed string literal at byte {start} is not allowed"
                    ));
                }
                i = skip_quoted(bytes, i, b'\'')
                    .ok_or_else(|| format!("unterminated string literal at byte {start}"))?;
                Tok::Str
            }
            b'"' => {
                let end = skip_quoted(bytes, i, b'"')
                    .ok_or_else(|| format!("unterminated quoted identifier at byte {start}"))?;
                let text = sql[i + 1..end - 1].replace("\"\"", "\"");
                if text.is_empty() {
                    return Err(format!("empty quoted identifier at byte {start}"));
                }
                i = end;
                Tok::Quoted(text)
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                return Err(format!("a `--` comment at byte {start} is not allowed"));
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                return Err(format!("a `/*` comment at byte {start} is not allowed"));
            }
            b'$' => {
                return Err(format!(
                    "`$` at byte {start} is not allowed (dollar quoting or $n parameters; use `?`)"
                ));
            }
            b'\\' | b'`' | b'{' | b'}' | b'#' => {
                return Err(format!(
                    "character `{}` at byte {start} is not allowed",
                    c as char
                ));
            }
            b'?' => {
                i += 1;
                Tok::Param
            }
            b';' => {
                i += 1;
                Tok::Semi
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b'.' if !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                Tok::Dot
            }
            b'0'..=b'9' | b'.' => {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                Tok::Number
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$')
                {
                    i += 1;
                }
                Tok::Word(&sql[start..i])
            }
            c if c.is_ascii_punctuation() => {
                i += 1;
                Tok::Op
            }
            _ => {
                return Err(format!(
                    "unexpected character at byte {start} (outside literals only ASCII is allowed)"
                ));
            }
        };
        out.push(Spanned { tok, start });
    }
    Ok(out)
}

/// True when the word starting at `word_start` runs right up to `next` (no blank between).
fn word_touches(bytes: &[u8], word_start: usize, next: usize) -> bool {
    bytes[word_start..next]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$')
}

/// Index just past the closing `quote` of the literal opening at `open` (doubled quotes escape).
fn skip_quoted(bytes: &[u8], open: usize, quote: u8) -> Option<usize> {
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(sql: &str) -> Vec<Tok<'_>> {
        tokenize(sql).unwrap().into_iter().map(|s| s.tok).collect()
    }

    #[test]
    fn literals_hide_their_content() {
        assert_eq!(
            toks("x = 'a;b--c/*d?''e'"),
            vec![Tok::Word("x"), Tok::Op, Tok::Str]
        );
        assert_eq!(
            toks(r#""A""B"."c d""#),
            vec![
                Tok::Quoted("A\"B".into()),
                Tok::Dot,
                Tok::Quoted("c d".into())
            ]
        );
        assert_eq!(
            toks("1.5e3 .5 RDB$DATABASE"),
            vec![Tok::Number, Tok::Number, Tok::Word("RDB$DATABASE")]
        );
    }

    #[test]
    fn refuses_what_it_cannot_classify() {
        for bad in [
            "'open",
            "\"open",
            "\"\"",
            "a -- c",
            "a /* c */",
            "E'\\''",
            "_WIN1252'x'",
            "$$x$$",
            "$1",
            "a\0b",
            "a \\ b",
            "caf\u{e9}",
            "a\u{a0}b",
        ] {
            assert!(tokenize(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(tokenize("a - -1 / 2 * 3").is_ok());
        assert!(tokenize("'caf\u{e9}' \"caf\u{e9}\"").is_ok());
    }
}
