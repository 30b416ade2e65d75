//! A ponte transform: source table `example` -> Firebird table `EXEMPLO` (edit both below).
//! Build: deploy/build-transforms.sh OUT_DIR <crate>; test: cargo test -p <crate> (transforms/).

use ponte_transform_sdk::{
    downstream_only, export_transform, fixture, sql, Change, Info, Op, Output, Row, Transform,
    TransformError,
};

/// This transform.
pub struct Template;

const SOURCE: &str = "example";
const TARGET: &str = "EXEMPLO";

impl Transform for Template {
    fn describe() -> Info {
        Info::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            &[SOURCE],
            &[TARGET],
        )
    }

    fn self_check() -> Result<(), String> {
        let out = fixture::run::<Template>(include_str!("../fixtures/example.json"))?;
        fixture::ensure(
            out.row_key == "1" && out.statements.len() == 1,
            "example fixture",
        )
    }

    fn transform(change: Change) -> Result<Output, TransformError> {
        downstream_only(&change)?;
        let row = Row::parse(&change.payload)?;
        let id = row.i64("id")?;
        let statement = match change.op {
            Op::Delete => sql::delete(TARGET, vec![("ID", row.int("id")?)])?,
            Op::Insert | Op::Update => sql::upsert(
                TARGET,
                vec![
                    ("ID", row.int("id")?),
                    ("NOME", row.text("name", 60)?),
                    ("PRECO", row.opt_decimal("price", 18, 2)?),
                    ("ATIVO", row.bool_char("active")?),
                ],
                &["ID"],
            )?,
        };
        Ok(Output::new(id.to_string()).statement(statement))
    }
}

export_transform!(Template);

#[cfg(test)]
mod tests {
    #[test]
    fn self_check_passes() {
        use ponte_transform_sdk::Transform;
        super::Template::self_check().unwrap();
    }
}
