//! The generated PL/pgSQL: one function per table, run by an AFTER ROW trigger, writing one
//! outbox row per target unit in the business transaction — the full row image (`to_jsonb(NEW)`,
//! exactly what the demo application writes) for inserts and updates, the primary key for
//! deletes; nothing while ponte itself applies (`ponte.applying`). A row whose routing names no
//! configured unit raises, so the business transaction fails rather than losing the change.

use sha2::{Digest, Sha256};

use super::catalog::{quote_ident, quote_literal, Route, TableSpec};
use crate::model::Op;

/// Version of the generator; a body written by another version is replaced by `install`.
pub const VERSION: i32 = 1;

/// Prefix of the trigger and function names (`ponte_ob_orders`).
pub const PREFIX: &str = "ponte_ob_";

/// `pg_trigger.tgtype` bits.
const TG_ROW: i16 = 1;
const TG_INSERT: i16 = 4;
const TG_DELETE: i16 = 8;
const TG_UPDATE: i16 = 16;

/// Everything install writes for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The trigger name, also the function's (unquoted; `ponte_ob_<table>`).
    pub trigger: String,
    /// The function's schema (unquoted; the outbox's).
    pub schema: String,
    /// The schema-qualified, quoted function (`"public"."ponte_ob_orders"`).
    pub function: String,
    /// The function body (`pg_proc.prosrc`).
    pub body: String,
    /// SHA-256 (hex) of the body.
    pub sha256: String,
    /// The `tgtype` the trigger must have.
    pub tgtype: i16,
    /// `CREATE OR REPLACE FUNCTION` and its comment.
    pub function_sql: Vec<String>,
    /// `DROP TRIGGER IF EXISTS` and `CREATE TRIGGER`.
    pub trigger_sql: Vec<String>,
}

/// SHA-256 of `text`, hex.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// `1-3,7`: the configured units as an operator reads them.
pub fn ranges(units: &[i32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < units.len() {
        let mut j = i;
        while j + 1 < units.len() && units[j + 1] == units[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            units[i].to_string()
        } else {
            format!("{}-{}", units[i], units[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Generates the function and trigger of `spec`; `schema` is the outbox's (unquoted), `units`
/// every configured unit (sorted).
pub fn generate(spec: &TableSpec, schema: &str, units: &[i32]) -> Generated {
    let trigger = format!("{PREFIX}{}", spec.name);
    let function = format!("{}.{}", quote_ident(schema), quote_ident(&trigger));
    let body = body(spec, &quote_ident(schema), units);
    let sha256 = sha256_hex(&body);
    let allows = |op| spec.ops.contains(&op);
    let mut events = Vec::new();
    let mut tgtype = TG_ROW;
    for (op, word, bit) in [
        (Op::Insert, "INSERT", TG_INSERT),
        (Op::Update, "UPDATE", TG_UPDATE),
        (Op::Delete, "DELETE", TG_DELETE),
    ] {
        if allows(op) {
            events.push(word);
            tgtype |= bit;
        }
    }
    let function_sql = vec![
        format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS \
             $ponte${body}$ponte$"
        ),
        format!(
            "COMMENT ON FUNCTION {function}() IS {}",
            quote_literal(&format!(
                "ponte outbox trigger version {VERSION} for [tables.{}], body sha256 {sha256}: \
                 written by `ponte outbox install`, which replaces any other body",
                spec.name
            ))
        ),
    ];
    let quoted = quote_ident(&trigger);
    let trigger_sql = vec![
        format!("DROP TRIGGER IF EXISTS {quoted} ON {}", spec.relation),
        format!(
            "CREATE TRIGGER {quoted} AFTER {} ON {} FOR EACH ROW EXECUTE FUNCTION {function}()",
            events.join(" OR "),
            spec.relation
        ),
    ];
    Generated {
        trigger,
        schema: schema.to_string(),
        function,
        body,
        sha256,
        tgtype,
        function_sql,
        trigger_sql,
    }
}

/// `jsonb_build_object('a', OLD."a", ...)`: the key of a delete.
fn key_json(spec: &TableSpec, row: &str) -> String {
    let pairs: Vec<String> = spec
        .key
        .iter()
        .map(|k| format!("{}, {row}.{}", quote_literal(k), quote_ident(k)))
        .collect();
    format!("jsonb_build_object({})", pairs.join(", "))
}

/// `ROW(OLD."a", ...)`.
fn key_row(spec: &TableSpec, row: &str) -> String {
    let cols: Vec<String> = spec
        .key
        .iter()
        .map(|k| format!("{row}.{}", quote_ident(k)))
        .collect();
    format!("ROW({})", cols.join(", "))
}

fn body(spec: &TableSpec, schema: &str, units: &[i32]) -> String {
    let outbox = format!("{schema}.pg_sync_outbox");
    let name = quote_literal(&spec.name);
    let ids: Vec<String> = units.iter().map(i32::to_string).collect();
    let units_int = format!("'{{{}}}'::int[]", ids.join(","));
    let units_text = format!("'{{{}}}'::text[]", ids.join(","));
    let deletes = spec.ops.contains(&Op::Delete);
    let insert_op = if spec.ops.contains(&Op::Insert) {
        "I"
    } else {
        "U"
    };
    let head = format!(
        "\n-- ponte outbox trigger version {VERSION} for [tables.{}] ({}; units {}).\n\
         -- Written by `ponte outbox install`; edits are replaced by the next install.\n",
        spec.name,
        spec.route.describe(),
        ranges(units)
    );
    let skip =
        "    -- ponte's own writes (upstream apply and its fan-out) are never captured again.\n\
                \x20   IF current_setting('ponte.applying', true) = 'on' THEN\n\
                \x20       RETURN NULL;\n\
                \x20   END IF;\n";
    let (old_key, new_key) = (key_row(spec, "OLD"), key_row(spec, "NEW"));
    let (old_json, route) = (key_json(spec, "OLD"), &spec.route);
    if *route == Route::All {
        let ins = |op: &str| {
            format!(
                "INSERT INTO {outbox} (unit_id, table_name, operation, payload)\n\
                 \x20           SELECT u, {name}, '{op}', v_payload FROM unnest({units_int}) AS u \
                 ORDER BY u;"
            )
        };
        let moved = if deletes {
            format!("        v_payload := {old_json};\n        {}\n", ins("D"))
        } else {
            String::new()
        };
        return format!(
            "{head}DECLARE\n    v_payload jsonb;\nBEGIN\n{skip}\
             \x20   IF TG_OP = 'DELETE' THEN\n\
             \x20       v_payload := {old_json};\n\
             \x20       {del}\n\
             \x20   ELSIF TG_OP = 'INSERT' THEN\n\
             \x20       v_payload := to_jsonb(NEW);\n\
             \x20       {ins}\n\
             \x20   ELSIF {old_key} IS DISTINCT FROM {new_key} THEN\n\
             \x20       -- a new key: the units lose the old row and get the new one\n\
             {moved}\
             \x20       v_payload := to_jsonb(NEW);\n\
             \x20       {moved_ins}\n\
             \x20   ELSE\n\
             \x20       v_payload := to_jsonb(NEW);\n\
             \x20       {upd}\n\
             \x20   END IF;\n\
             \x20   RETURN NULL;\nEND\n",
            del = ins("D"),
            ins = ins("I"),
            moved_ins = ins(insert_op),
            upd = ins("U"),
        );
    }
    let (what, uses_t) = match route {
        Route::Column(c) => (format!("column {c}"), false),
        Route::Sql(sql) => (format!("unit_sql ({sql})"), true),
        Route::All => (String::new(), false),
    };
    let route_of = |row: &str, var: &str| match route {
        Route::Column(c) => format!("{var} := {row}.{};", quote_ident(c)),
        Route::Sql(sql) => format!("t := {row};\n        {var} := ({sql});"),
        Route::All => String::new(),
    };
    let what_lit = quote_literal(&what);
    let configured = quote_literal(&ranges(units));
    let check = |var: &str| {
        format!(
            "IF {var} IS NULL THEN\n\
             \x20       RAISE EXCEPTION 'ponte outbox trigger: table %, %: NULL, so the % row goes to no unit', \
             {name}, {what_lit}, lower(TG_OP)\n\
             \x20           USING ERRCODE = 'not_null_violation', HINT = 'set it to a configured unit (' || {configured} || '); the change was not written';\n\
             \x20   END IF;\n\
             \x20   IF NOT ({var} = ANY({units_text})) THEN\n\
             \x20       RAISE EXCEPTION 'ponte outbox trigger: table %, %: value % names no configured unit (configured: %)', \
             {name}, {what_lit}, quote_literal({var}), {configured}\n\
             \x20           USING ERRCODE = 'check_violation', HINT = 'add the unit to [units] ids and rerun `ponte outbox install`, or fix the row; the change was not written';\n\
             \x20   END IF;"
        )
    };
    let one = |unit: &str, op: &str, payload: &str| {
        format!(
            "INSERT INTO {outbox} (unit_id, table_name, operation, payload)\n\
             \x20           VALUES ({unit}::int, {name}, '{op}', {payload});"
        )
    };
    let moved_delete = if deletes {
        format!(
            "        IF v_old_unit = ANY({units_text}) THEN\n\
             \x20           {}\n\
             \x20       END IF;\n",
            one("v_old_unit", "D", &old_json)
        )
    } else {
        String::new()
    };
    let t_decl = if uses_t { "    t record;\n" } else { "" };
    format!(
        "{head}DECLARE\n{t_decl}    v_payload jsonb;\n    v_unit text;\n    v_old_unit text;\nBEGIN\n{skip}\
         \x20   IF TG_OP = 'DELETE' THEN\n\
         \x20       {route_old}\n\
         \x20   ELSE\n\
         \x20       {route_new}\n\
         \x20   END IF;\n\
         \x20   {check}\n\
         \x20   IF TG_OP = 'DELETE' THEN\n\
         \x20       {del}\n\
         \x20       RETURN NULL;\n\
         \x20   END IF;\n\
         \x20   v_payload := to_jsonb(NEW);\n\
         \x20   IF TG_OP = 'INSERT' THEN\n\
         \x20       {ins}\n\
         \x20       RETURN NULL;\n\
         \x20   END IF;\n\
         \x20   {route_was}\n\
         \x20   IF v_old_unit IS DISTINCT FROM v_unit OR {old_key} IS DISTINCT FROM {new_key} THEN\n\
         \x20       -- the row moved (another unit or another key): the old place loses it\n\
         {moved_delete}\
         \x20       {moved_ins}\n\
         \x20   ELSE\n\
         \x20       {upd}\n\
         \x20   END IF;\n\
         \x20   RETURN NULL;\nEND\n",
        route_old = route_of("OLD", "v_unit"),
        route_new = route_of("NEW", "v_unit"),
        route_was = route_of("OLD", "v_old_unit"),
        check = check("v_unit"),
        del = one("v_unit", "D", &old_json),
        ins = one("v_unit", "I", "v_payload"),
        moved_ins = one("v_unit", insert_op, "v_payload"),
        upd = one("v_unit", "U", "v_payload"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(route: Route, ops: Vec<Op>) -> TableSpec {
        TableSpec {
            name: "order_items".into(),
            relation: "\"public\".\"order_items\"".into(),
            key: vec!["order_id".into(), "line_no".into()],
            route,
            ops,
        }
    }

    #[test]
    fn ranges_are_compact() {
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
        assert_eq!(ranges(&[4]), "4");
        assert_eq!(ranges(&[]), "");
    }

    #[test]
    fn every_unit_gets_the_image_and_deletes_the_key() {
        let g = generate(
            &spec(Route::All, vec![Op::Insert, Op::Update, Op::Delete]),
            "public",
            &[1, 2, 3],
        );
        assert_eq!(g.trigger, "ponte_ob_order_items");
        assert_eq!(g.function, "\"public\".\"ponte_ob_order_items\"");
        assert_eq!(g.tgtype, 1 | 4 | 8 | 16);
        assert!(g
            .body
            .contains("current_setting('ponte.applying', true) = 'on'"));
        assert!(g.body.contains("unnest('{1,2,3}'::int[])"));
        assert!(g.body.contains(
            "jsonb_build_object('order_id', OLD.\"order_id\", 'line_no', OLD.\"line_no\")"
        ));
        assert!(g.body.contains("v_payload := to_jsonb(NEW);"));
        assert!(g.trigger_sql[1].contains(
            "AFTER INSERT OR UPDATE OR DELETE ON \"public\".\"order_items\" FOR EACH ROW"
        ));
        assert_eq!(g.sha256, sha256_hex(&g.body));
        assert!(g.function_sql[1].contains(&g.sha256));
    }

    #[test]
    fn a_routed_table_raises_on_an_unknown_unit() {
        let g = generate(
            &spec(
                Route::Sql("SELECT o.unit_id FROM orders o WHERE o.id = t.order_id".into()),
                vec![Op::Insert, Op::Update],
            ),
            "public",
            &[1, 2, 5],
        );
        assert_eq!(
            g.tgtype,
            1 | 4 | 16,
            "no delete event when D is not allowed"
        );
        assert!(g.body.contains("t := NEW;"));
        assert!(g.body.contains("RAISE EXCEPTION"));
        assert!(g.body.contains("'1-2,5'"));
        assert!(
            !g.body.contains("(v_old_unit::int"),
            "a moved row sends no delete when D is not allowed"
        );
        let c = generate(
            &spec(
                Route::Column("unit_id".into()),
                vec![Op::Insert, Op::Update, Op::Delete],
            ),
            "public",
            &[1],
        );
        assert!(c.body.contains("v_unit := NEW.\"unit_id\";"));
        assert!(c.body.contains("'column unit_id'"));
        assert!(!c.body.contains("t record"));
    }
}
