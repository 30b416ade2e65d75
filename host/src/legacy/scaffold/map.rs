//! One PostgreSQL column against one unit column: the generic transform's column spec that
//! carries it safely, and a comment for every way the two sides differ; or the reason no spec
//! can carry it (the column is then left out, with that reason as a comment).

use crate::firebird::Column;
use crate::legacy::pgcat::PgColumn;

/// A mapped column: the TOML inline table of its spec and the comments about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// `{ column = "NOME", type = "text", max_len = 60 }`.
    pub spec: String,
    /// Mismatches worth a comment.
    pub comments: Vec<String>,
}

fn is_pg_int(pg: &PgColumn) -> bool {
    matches!(pg.udt.as_str(), "int2" | "int4" | "int8")
}

fn pg_int_bits(pg: &PgColumn) -> u32 {
    match pg.udt.as_str() {
        "int2" => 16,
        "int4" => 32,
        _ => 64,
    }
}

fn is_pg_text(pg: &PgColumn) -> bool {
    matches!(
        pg.udt.as_str(),
        "text" | "varchar" | "bpchar" | "citext" | "name"
    )
}

/// Maps `pg` onto `fb`; `Err(reason)` when no generic type converts it safely.
pub fn map_column(pg: &PgColumn, fb: &Column) -> Result<Mapped, String> {
    let mut comments = Vec::new();
    let scale = i32::from(-fb.scale);
    let scaled = matches!(fb.field_type, 7 | 8 | 16) && (fb.scale < 0 || fb.sub_type != 0);
    let ty = fb.type_text();
    let unsafe_pair = || {
        format!(
            "PostgreSQL {} -> unit {ty}: no conversion of the generic transform is safe for this \
             pair",
            pg.data_type
        )
    };
    let (kind, options): (&str, String) = match fb.field_type {
        _ if scaled => {
            let precision = i32::from(fb.precision.unwrap_or(18));
            if !(pg.udt == "numeric"
                || is_pg_int(pg)
                || matches!(pg.udt.as_str(), "float4" | "float8"))
            {
                return Err(unsafe_pair());
            }
            match (pg.udt.as_str(), pg.precision, pg.scale) {
                ("numeric", None, _) => comments.push(format!(
                    "PostgreSQL numeric has no declared precision: values beyond {ty} are refused"
                )),
                ("numeric", Some(p), Some(s)) => {
                    if s > scale {
                        comments.push(format!(
                            "finer scale: PostgreSQL numeric({p},{s}) -> {ty}; a value with more \
                             than {scale} decimals is refused (invalid-value), never rounded"
                        ));
                    }
                    if p - s > precision - scale {
                        comments.push(format!(
                            "wider: PostgreSQL numeric({p},{s}) holds more integer digits than \
                             {ty}; a larger value is refused"
                        ));
                    }
                }
                ("float4" | "float8", ..) => comments.push(format!(
                    "PostgreSQL {} -> {ty}: a value with more than {scale} decimals is refused",
                    pg.data_type
                )),
                _ => {}
            }
            (
                "decimal",
                format!(", precision = {precision}, scale = {scale}"),
            )
        }
        7 if pg.udt == "bool" => ("bool_smallint", String::new()),
        7 | 8 | 16 => {
            let (kind, bits) = match fb.field_type {
                7 => ("smallint", 16),
                8 => ("integer", 32),
                _ => ("bigint", 64),
            };
            if is_pg_int(pg) {
                if pg_int_bits(pg) > bits {
                    comments.push(format!(
                        "wider: PostgreSQL {} -> {ty}; a value out of its range is refused",
                        pg.data_type
                    ));
                }
            } else if pg.udt == "numeric" && pg.scale == Some(0) {
                comments.push(format!("PostgreSQL {} -> {ty}", pg.data_type));
            } else {
                return Err(unsafe_pair());
            }
            (kind, String::new())
        }
        10 | 27 => {
            if !(matches!(pg.udt.as_str(), "float4" | "float8" | "numeric") || is_pg_int(pg)) {
                return Err(unsafe_pair());
            }
            if pg.udt == "numeric" {
                comments.push(format!("PostgreSQL {} -> {ty}: may round", pg.data_type));
            }
            ("double", String::new())
        }
        14 | 37 => {
            let len = fb.char_length.unwrap_or(0);
            if pg.udt == "bool" && fb.field_type == 14 && len == 1 {
                ("bool_char", String::new())
            } else if pg.udt == "uuid" && len >= 36 {
                ("uuid", String::new())
            } else if is_pg_text(pg) {
                match pg.max_len {
                    Some(n) if n <= len => {}
                    Some(n) => comments.push(format!(
                        "wider: PostgreSQL {}({n}) -> {ty}; longer text is refused (too-long), \
                         never truncated",
                        pg.data_type
                    )),
                    None => comments.push(format!(
                        "wider: PostgreSQL {} has no length limit -> {ty}; longer text is refused \
                         (too-long), never truncated",
                        pg.data_type
                    )),
                }
                ("text", format!(", max_len = {len}"))
            } else {
                return Err(unsafe_pair());
            }
        }
        12 if pg.udt == "date" => ("date", String::new()),
        35 if pg.udt == "timestamp" => ("timestamp", String::new()),
        35 if pg.udt == "timestamptz" => {
            comments.push(
                "timestamptz -> TIMESTAMP: written as the wall-clock time in the table's \
                 `timezone` setting (default America/Sao_Paulo)"
                    .into(),
            );
            ("timestamptz", String::new())
        }
        261 if fb.sub_type == 1 && is_pg_text(pg) => ("text_blob", String::new()),
        261 if fb.sub_type == 1 && matches!(pg.udt.as_str(), "json" | "jsonb") => {
            ("json_blob", String::new())
        }
        _ => return Err(unsafe_pair()),
    };
    let mut spec = format!("{{ column = \"{}\", type = \"{kind}\"{options}", fb.name);
    if fb.not_null {
        spec.push_str(", required = true");
        if pg.nullable {
            comments.push(format!(
                "the unit column is NOT NULL and PostgreSQL {} allows NULL: a NULL is refused \
                 (invalid-value) naming this column",
                pg.name
            ));
        }
    }
    spec.push_str(" }");
    if pg.generated {
        comments.push("generated in PostgreSQL; its value is replicated".into());
    }
    Ok(Mapped { spec, comments })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(udt: &str, max_len: Option<i32>, p: Option<i32>, s: Option<i32>) -> PgColumn {
        PgColumn {
            name: "c".into(),
            data_type: udt.into(),
            udt: udt.into(),
            max_len,
            precision: p,
            scale: s,
            nullable: true,
            generated: false,
        }
    }

    fn fb(field_type: i16, sub_type: i16, len: Option<i32>, p: Option<i16>, s: i16) -> Column {
        Column {
            name: "C".into(),
            field_type,
            sub_type,
            char_length: len,
            precision: p,
            scale: s,
            not_null: false,
            computed: false,
            has_default: false,
        }
    }

    #[test]
    fn numeric_and_text_pairs_carry_their_limits_and_mismatches() {
        let m = map_column(
            &pg("numeric", None, Some(18), Some(4)),
            &fb(16, 1, None, Some(18), -2),
        )
        .unwrap();
        assert_eq!(
            m.spec,
            "{ column = \"C\", type = \"decimal\", precision = 18, scale = 2 }"
        );
        assert!(m.comments[0].starts_with("finer scale"), "{:?}", m.comments);
        let m = map_column(
            &pg("varchar", Some(100), None, None),
            &fb(37, 0, Some(60), None, 0),
        )
        .unwrap();
        assert_eq!(m.spec, "{ column = \"C\", type = \"text\", max_len = 60 }");
        assert!(m.comments[0].starts_with("wider"));
        let m = map_column(&pg("text", None, None, None), &fb(261, 1, None, None, 0)).unwrap();
        assert_eq!(m.spec, "{ column = \"C\", type = \"text_blob\" }");
        assert!(m.comments.is_empty());
    }

    #[test]
    fn unsafe_pairs_are_refused_with_the_reason() {
        assert!(map_column(
            &pg("timestamp", None, None, None),
            &fb(12, 0, None, None, 0)
        )
        .is_err());
        assert!(map_column(&pg("bytea", None, None, None), &fb(261, 0, None, None, 0)).is_err());
        assert!(map_column(&pg("text", None, None, None), &fb(16, 0, None, None, 0)).is_err());
        let m = map_column(&pg("int8", None, None, None), &fb(8, 0, None, None, 0)).unwrap();
        assert!(m.comments[0].starts_with("wider"));
    }
}
