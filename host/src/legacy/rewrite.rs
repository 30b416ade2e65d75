//! The guard rewrite of a trigger source, as pure text: the declarations stay where they are and
//! the original `BEGIN ... END` block, untouched, becomes the statement of an `IF` that is false
//! inside ponte's apply transactions. Nesting the whole block keeps every PSQL meaning intact:
//! `EXIT` still leaves the trigger, `WHEN ... DO` handlers still cover the block, labels and
//! `LEAVE` still refer to the same loops. What cannot be rewritten safely is refused with a reason.

use super::psql::{tokenize, Tok};

/// The marker comment in a guarded source (informational; the saved copy is what counts).
pub const GUARD_MARKER: &str = "/* ponte: guard */";

/// Why a trigger source cannot be guarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No source is stored (the vendor shipped the trigger compiled only).
    #[error("no source is stored for it (RDB$TRIGGER_SOURCE is NULL); it cannot be rewritten")]
    NoSource,
    /// The text could not be read.
    #[error("its source cannot be read: {0}")]
    Unreadable(String),
    /// Not `AS [declarations] BEGIN ... END`.
    #[error("its source is not `AS [declarations] BEGIN ... END` ({0})")]
    Shape(&'static str),
    /// A declaration has a side effect that would still run inside ponte's transactions.
    #[error(
        "the declaration of {0} calls a generator; declarations run before the guard, so the \
         generator would still advance inside ponte's transactions: move it into the body first"
    )]
    SideEffectInDeclaration(String),
    /// It already tests the flag.
    #[error("it already tests ponte's apply flag; nothing to guard")]
    AlreadyTestsFlag,
}

/// The guarded text of `source` (RDB$TRIGGER_SOURCE, starting with `AS`), skipped when the
/// transaction context variable `flag` is `'1'`.
pub fn guard_source(source: Option<&str>, flag: &str) -> Result<String, Refusal> {
    let source = source.ok_or(Refusal::NoSource)?;
    let tokens = tokenize(source).map_err(Refusal::Unreadable)?;
    if !matches!(tokens.first().map(|t| &t.tok), Some(Tok::Word(w)) if w == "AS") {
        return Err(Refusal::Shape("it does not start with AS"));
    }
    if !matches!(tokens.last().map(|t| &t.tok), Some(Tok::Word(w)) if w == "END") {
        return Err(Refusal::Shape("it does not end with END"));
    }
    let begin = tokens
        .iter()
        .position(|t| matches!(&t.tok, Tok::Word(w) if w == "BEGIN"))
        .ok_or(Refusal::Shape("no BEGIN"))?;
    // Declarations: DECLARE [VARIABLE] name type [= | DEFAULT expr]; a generator call there runs
    // on every firing, guard or not.
    let mut declared = String::new();
    for (i, t) in tokens[..begin].iter().enumerate() {
        match &t.tok {
            Tok::Word(w) if w == "DECLARE" => {
                let variable = matches!(
                    tokens.get(i + 1).map(|x| &x.tok),
                    Some(Tok::Word(v)) if v == "VARIABLE"
                );
                let at = if variable { i + 2 } else { i + 1 };
                declared = match tokens.get(at).map(|x| &x.tok) {
                    Some(Tok::Word(n)) | Some(Tok::Quoted(n)) => n.clone(),
                    _ => String::new(),
                };
            }
            Tok::Word(w) if w == "GEN_ID" || w == "NEXT" => {
                return Err(Refusal::SideEffectInDeclaration(declared));
            }
            _ => {}
        }
    }
    let effects = super::psql::effects(source, flag).map_err(Refusal::Unreadable)?;
    if effects.tests_flag {
        return Err(Refusal::AlreadyTestsFlag);
    }
    let at = tokens[begin].start;
    let (header, block) = source.split_at(at);
    Ok(format!(
        "{header}BEGIN\n  {GUARD_MARKER}\n  IF (RDB$GET_CONTEXT('USER_TRANSACTION', '{flag}') \
         IS DISTINCT FROM '1') THEN\n{block}\nEND"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy::psql::effects;

    const FLAG: &str = "PONTE_APPLY";

    #[test]
    fn declarations_stay_before_the_guard_and_the_block_is_nested_intact() {
        let src = "AS\n  DECLARE VARIABLE X INTEGER = 3;\nBEGIN\n  IF (X = 3) THEN EXIT;\n  \
                   INSERT INTO H (A) VALUES (1);\n  WHEN ANY DO X = 0;\nEND";
        let guarded = guard_source(Some(src), FLAG).unwrap();
        assert!(guarded.starts_with("AS\n  DECLARE VARIABLE X INTEGER = 3;\nBEGIN\n"));
        assert!(guarded.contains("IS DISTINCT FROM '1') THEN\nBEGIN\n  IF (X = 3) THEN EXIT;"));
        assert!(guarded.ends_with("WHEN ANY DO X = 0;\nEND\nEND"));
        assert!(effects(&guarded, FLAG).unwrap().tests_flag);
        assert_eq!(
            guard_source(Some(&guarded), FLAG),
            Err(Refusal::AlreadyTestsFlag)
        );
    }

    #[test]
    fn a_trailing_line_comment_cannot_swallow_the_closing_end() {
        let src = "AS BEGIN INSERT INTO H (A) VALUES (1); END -- vendor note";
        let guarded = guard_source(Some(src), FLAG).unwrap();
        assert!(guarded.ends_with("END -- vendor note\nEND"), "{guarded}");
    }

    #[test]
    fn what_cannot_be_rewritten_safely_is_refused() {
        assert_eq!(guard_source(None, FLAG), Err(Refusal::NoSource));
        assert!(matches!(
            guard_source(Some("BEGIN END"), FLAG),
            Err(Refusal::Shape(_))
        ));
        assert_eq!(
            guard_source(
                Some("AS DECLARE VARIABLE N BIGINT = GEN_ID(G, 1); BEGIN END"),
                FLAG
            ),
            Err(Refusal::SideEffectInDeclaration("N".into()))
        );
        assert!(matches!(
            guard_source(Some("AS BEGIN X = 'open; END"), FLAG),
            Err(Refusal::Unreadable(_))
        ));
    }
}
