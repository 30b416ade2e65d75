//! The PSQL text of periodic capture for one table (Firebird 2.5): the changes pass, the deletes
//! pass with its key split, and the EXECUTE BLOCK around them.

use crate::capture::shape::{ColumnKind, FbColumn, TableShape};
use crate::lifecycle::verify::canon::fb_terms;

/// The PSQL variable holding the image column at `position`.
fn variable(position: usize) -> String {
    format!("C{position}")
}

/// Builds the PSQL of one table.
pub(super) struct Builder<'a> {
    pub(super) shape: &'a TableShape,
    pub(super) downstream: String,
    pub(super) change_column: Option<&'a str>,
}

impl Builder<'_> {
    pub(super) fn table(&self) -> &str {
        &self.shape.table
    }

    /// The image columns, each with the PSQL variable that holds it.
    pub(super) fn columns(&self) -> Vec<(String, &FbColumn)> {
        self.shape
            .image_columns()
            .enumerate()
            .map(|(i, c)| (variable(i), c))
            .collect()
    }

    /// `t."A" = :x AND t."B" = :y` for the key columns against `values`.
    pub(super) fn key_match(&self, values: &[String]) -> String {
        let parts: Vec<String> = self
            .shape
            .pk
            .iter()
            .zip(values)
            .map(|(&at, v)| format!("t.\"{}\" = {v}", self.shape.columns[at].name))
            .collect();
        parts.join(" AND ")
    }

    /// The row key as SYNC_LOG spells it, in UTF-8.
    pub(super) fn key(&self) -> String {
        format!(
            "CAST({} AS VARCHAR(200) CHARACTER SET UTF8)",
            self.shape.key_expr("t")
        )
    }

    /// The two fingerprint sums of the row `t`: per image column, the terms `ponte verify`
    /// hashes (text prefixed with the column's position, forwards and reversed).
    pub(super) fn fingerprint(&self) -> (String, String) {
        let (mut first, mut second) = (Vec::new(), Vec::new());
        for (i, c) in self.shape.image_columns().enumerate() {
            let Some(kind) = c.canon else { continue };
            let (a, b) = fb_terms(kind, "''", &format!("t.\"{}\"", c.name), i);
            first.push(a);
            second.push(b);
        }
        let sum = |terms: Vec<String>| {
            if terms.is_empty() {
                "CAST(0 AS BIGINT)".to_string()
            } else {
                format!("CAST({} AS BIGINT)", terms.join(" + "))
            }
        };
        (sum(first), sum(second))
    }

    /// The SYNC_LOG insert of one change (`op` a PSQL expression, `image` a variable or NULL).
    pub(super) fn log(&self, op: &str, at: &str, image: &str) -> String {
        format!(
            "INSERT INTO SYNC_LOG (ID, TABLE_NAME, OP, ROW_KEY, BASE_SEQ, CHANGED_AT, TX_ID, IMAGE) \
             VALUES (GEN_ID(GEN_SYNC_LOG, 1), '{t}', {op}, :K, (SELECT SEQ FROM SYNC_ROW_VERSION \
             WHERE TABLE_NAME = '{d}' AND ROW_KEY = :K), {at}, CURRENT_TRANSACTION, {image});\n",
            t = self.table(),
            d = self.downstream,
        )
    }

    /// The changes pass: every row (or the row whose key is `keyed`) whose fingerprint differs
    /// from its entry gets a new entry and, with `log`, an I or U in SYNC_LOG.
    pub(super) fn changes(&self, keyed: Option<&[String]>, log: bool) -> String {
        let columns = self.columns();
        let (h1, h2) = self.fingerprint();
        let key = self.key();
        let at = match self.change_column {
            Some(c) => format!("COALESCE(t.\"{c}\", CURRENT_TIMESTAMP)"),
            None => "CURRENT_TIMESTAMP".into(),
        };
        let mut select = vec![
            key.clone(),
            h1,
            h2,
            "s.ROW_KEY".into(),
            "s.H1".into(),
            "s.H2".into(),
            at,
        ];
        let mut into = vec![":K", ":H1", ":H2", ":S", ":SH1", ":SH2", ":CHANGED"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        for (var, c) in &columns {
            select.push(format!("t.\"{}\"", c.name));
            into.push(format!(":{var}"));
        }
        let filter = match keyed {
            Some(params) => {
                let values: Vec<String> = params.iter().map(|p| format!(":{p}")).collect();
                format!(" WHERE {}", self.key_match(&values))
            }
            None => String::new(),
        };
        let logged = if log {
            let image = self.shape.image_psql_of(&|i, _| variable(i));
            format!(
                "{image}\n{}",
                self.log("IIF(:S IS NULL, 'I', 'U')", ":CHANGED", ":IMG")
            )
        } else {
            String::new()
        };
        format!(
            "FOR SELECT {select} FROM \"{t}\" t LEFT JOIN SYNC_PERIODIC s ON s.TABLE_NAME = '{t}' \
             AND s.ROW_KEY = {key}{filter} INTO {into} DO\n\
             IF (S IS NULL OR SH1 IS DISTINCT FROM H1 OR SH2 IS DISTINCT FROM H2) THEN\n\
             BEGIN\n{logged}\
             UPDATE OR INSERT INTO SYNC_PERIODIC (TABLE_NAME, ROW_KEY, H1, H2) \
             VALUES ('{t}', :K, :H1, :H2) MATCHING (TABLE_NAME, ROW_KEY);\n\
             N = N + 1;\n\
             END\n",
            select = select.join(", "),
            into = into.join(", "),
            t = self.table(),
        )
    }

    /// The deletes pass: every entry (or the entry `:RK`, whose parts are `keyed`) whose row is
    /// gone is forgotten and, with `log`, logged as D.
    pub(super) fn deletes(&self, keyed: Option<&[String]>, log: bool) -> String {
        let n = self.shape.pk.len();
        let (filter, split, parts) = match keyed {
            Some(params) => (
                " AND s.ROW_KEY = :RK".to_string(),
                String::new(),
                params.iter().map(|p| format!(":{p}")).collect::<Vec<_>>(),
            ),
            None => (
                String::new(),
                self.split(),
                (0..n).map(|i| format!(":P{i}")).collect(),
            ),
        };
        let logged = if log {
            self.log("'D'", "CURRENT_TIMESTAMP", "NULL")
        } else {
            String::new()
        };
        format!(
            "FOR SELECT s.ROW_KEY FROM SYNC_PERIODIC s WHERE s.TABLE_NAME = '{t}'{filter} INTO :K DO\n\
             BEGIN\n{split}\
             IF (NOT EXISTS (SELECT 1 FROM \"{t}\" t WHERE {exists})) THEN\n\
             BEGIN\n{logged}\
             DELETE FROM SYNC_PERIODIC WHERE TABLE_NAME = '{t}' AND ROW_KEY = :K;\n\
             N = N + 1;\n\
             END\n\
             END\n",
            t = self.table(),
            exists = self.key_match(&parts),
        )
    }

    /// PSQL that splits `K` into `P0..` the way `split_key` does: `|` separates, `\` escapes.
    pub(super) fn split(&self) -> String {
        let n = self.shape.pk.len();
        if n == 1 {
            let c = &self.shape.columns[self.shape.pk[0]];
            return match c.kind {
                // One text column: every `|` in it is escaped, so `\|` is never the tail of `\\`.
                ColumnKind::Char | ColumnKind::Varchar => {
                    "P0 = REPLACE(REPLACE(K, '\\|', '|'), '\\\\', '\\');\n".into()
                }
                _ => "P0 = K;\n".into(),
            };
        }
        // `P`, the part read so far, goes into the J-th key variable.
        let assign: Vec<String> = (0..n)
            .map(|i| format!("IF (J = {i}) THEN P{i} = P;"))
            .collect();
        let assign = assign.join(" ELSE ");
        format!(
            "P = ''; J = 0; I = 1;\n\
             WHILE (I <= CHAR_LENGTH(K)) DO\n\
             BEGIN\n\
             CH = SUBSTRING(K FROM I FOR 1);\n\
             IF (CH = '\\') THEN BEGIN I = I + 1; P = P || SUBSTRING(K FROM I FOR 1); END\n\
             ELSE IF (CH = '|') THEN BEGIN {assign} J = J + 1; P = ''; END\n\
             ELSE P = P || CH;\n\
             I = I + 1;\n\
             END\n\
             {assign}\n"
        )
    }

    /// The EXECUTE BLOCK around the passes; `keyed` names its key-part input parameters (then
    /// `RK`, the row key, is the first input).
    pub(super) fn block(&self, changes: &str, deletes: &str, keyed: &[String]) -> String {
        let text = "VARCHAR(200) CHARACTER SET UTF8";
        let inputs = if keyed.is_empty() {
            String::new()
        } else {
            let mut params = vec![format!("RK {text} = ?")];
            params.extend(keyed.iter().map(|p| format!("{p} {text} = ?")));
            format!(" ({})", params.join(", "))
        };
        let mut vars = vec![
            format!("K {text}"),
            "H1 BIGINT".into(),
            "H2 BIGINT".into(),
            format!("S {text}"),
            "SH1 BIGINT".into(),
            "SH2 BIGINT".into(),
            "CHANGED TIMESTAMP".into(),
            "IMG BLOB SUB_TYPE TEXT CHARACTER SET UTF8".into(),
            format!("P {text}"),
            "CH VARCHAR(1) CHARACTER SET UTF8".into(),
            "I INTEGER".into(),
            "J INTEGER".into(),
        ];
        vars.extend((0..self.shape.pk.len()).map(|i| format!("P{i} {text}")));
        for (var, c) in self.columns() {
            vars.push(format!(
                "{var} TYPE OF COLUMN \"{}\".\"{}\"",
                self.table(),
                c.name
            ));
        }
        let declared: String = vars
            .iter()
            .map(|v| format!("DECLARE VARIABLE {v};\n"))
            .collect();
        format!(
            "EXECUTE BLOCK{inputs} RETURNS (N BIGINT) AS\n{declared}BEGIN\nN = 0;\n{changes}{deletes}SUSPEND;\nEND"
        )
    }
}
