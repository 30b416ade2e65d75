//! `ponte transform new`: a new transform crate from transforms/template (embedded in the binary,
//! so it works from an installed `ponte` too), added to the transforms workspace members.

use std::path::Path;

use anyhow::{bail, Context};

/// The template files: (path inside the new crate, contents, whether `{{name}}` is filled in).
/// Only the manifest has placeholders (the code takes its name from `CARGO_PKG_NAME`). The
/// `.tmpl` itself stays behind: a new crate holds no placeholder (the test below checks that the
/// template's own Cargo.toml is the `.tmpl` filled in with `template`).
const TEMPLATE: &[(&str, &str, bool)] = &[
    (
        "Cargo.toml",
        include_str!("../../../../transforms/template/Cargo.toml.tmpl"),
        true,
    ),
    (
        "src/lib.rs",
        include_str!("../../../../transforms/template/src/lib.rs"),
        false,
    ),
    (
        "fixtures/example.json",
        include_str!("../../../../transforms/template/fixtures/example.json"),
        false,
    ),
];

/// Longest crate name accepted.
const MAX_NAME: usize = 40;

/// Creates `dir/name` from the template; returns what was done, for the user.
pub(crate) fn create(name: &str, dir: &Path) -> anyhow::Result<String> {
    check_name(name)?;
    if !dir.is_dir() {
        bail!(
            "{} is not a directory; pass --dir <transforms workspace>",
            dir.display()
        );
    }
    let root = dir.join(name);
    if root.exists() {
        bail!(
            "{} already exists; pick another name or remove it",
            root.display()
        );
    }
    for (relative, contents, placeholders) in TEMPLATE {
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let contents = if *placeholders {
            fill(contents, name)
        } else {
            contents.to_string()
        };
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut report = format!("created {}", root.display());
    let manifest = dir.join("Cargo.toml");
    match add_member(&manifest, name) {
        Ok(true) => report.push_str(&format!(
            "\nadded \"{name}\" to the members of {}",
            manifest.display()
        )),
        Ok(false) => report.push_str(&format!(
            "\n{} already lists \"{name}\"",
            manifest.display()
        )),
        Err(e) => report.push_str(&format!(
            "\nadd \"{name}\" to `members` in {} by hand ({e:#})",
            manifest.display()
        )),
    }
    report.push_str(&format!(
        "\nnext: edit {0}/src/lib.rs and {0}/fixtures/example.json (and `cargo test -p {name}` \
         in {1}), then\n  \
         ponte transform build {name} --out <transforms.dir>\n  \
         ponte transform test <transforms.dir>/{name}.wasm {0}/fixtures/example.json",
        root.display(),
        dir.display()
    ));
    Ok(report)
}

/// A crate name that is also a Rust identifier and a plain file stem.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok
        || name.len() > MAX_NAME
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        bail!(
            "`{name}` is not a valid name: lower-case letters, digits and `_`, starting with a \
             letter, at most {MAX_NAME} characters"
        );
    }
    if matches!(
        name,
        "sdk" | "template" | "target" | "hostile" | "versioned"
    ) {
        bail!("`{name}` is reserved in the transforms workspace");
    }
    Ok(())
}

/// Replaces the placeholders: `{{name}}` (snake case) and `{{Name}}` (UpperCamelCase).
fn fill(template: &str, name: &str) -> String {
    let camel: String = name
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut cs = p.chars();
            cs.next()
                .map(|c| c.to_ascii_uppercase().to_string() + cs.as_str())
                .unwrap_or_default()
        })
        .collect();
    template
        .replace("{{name}}", name)
        .replace("{{Name}}", &camel)
}

/// Adds `name` to `members = [...]` of the workspace manifest; false when already there.
fn add_member(manifest: &Path, name: &str) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let quoted = format!("\"{name}\"");
    let Some(start) = text.find("members = [") else {
        bail!("no `members = [` line");
    };
    let Some(len) = text[start..].find(']') else {
        bail!("`members` is not closed");
    };
    if text[start..start + len].contains(&quoted) {
        return Ok(false);
    }
    let insert_at = start + "members = [".len();
    let updated = format!(
        "{}\n    {quoted},{}",
        &text[..insert_at],
        &text[insert_at..]
    );
    std::fs::write(manifest, updated)
        .with_context(|| format!("cannot write {}", manifest.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_placeholders() {
        assert!(check_name("stock_moves").is_ok());
        for bad in ["", "Stock", "1a", "a-b", "a b", "template", &"a".repeat(41)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            fill("{{name}} {{Name}}", "stock_moves"),
            "stock_moves StockMoves"
        );
        let (_, manifest, filled) = TEMPLATE[0];
        assert!(
            filled && manifest.contains("name = \"{{name}}\""),
            "{manifest}"
        );
        assert_eq!(
            fill(manifest, "template"),
            include_str!("../../../../transforms/template/Cargo.toml"),
            "transforms/template/Cargo.toml is Cargo.toml.tmpl filled in: regenerate it"
        );
    }

    #[test]
    fn creates_the_crate_and_adds_the_member() {
        let dir = std::env::temp_dir().join(format!("ponte-scaffold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            "[workspace]\nmembers = [\n    \"sdk\",\n]\n",
        )
        .unwrap();
        let report = create("stock_moves", &dir).unwrap();
        assert!(report.contains("added"), "{report}");
        let cargo = std::fs::read_to_string(dir.join("stock_moves/Cargo.toml")).unwrap();
        assert!(
            !cargo.contains("{{name}}") && cargo.contains("name = \"stock_moves\""),
            "{cargo}"
        );
        assert!(dir.join("stock_moves/src/lib.rs").is_file());
        assert!(dir.join("stock_moves/fixtures/example.json").is_file());
        assert!(!dir.join("stock_moves/Cargo.toml.tmpl").exists());
        for (relative, _, _) in TEMPLATE {
            let text = std::fs::read_to_string(dir.join("stock_moves").join(relative)).unwrap();
            assert!(
                !text.contains("{{"),
                "{relative} keeps a placeholder: {text}"
            );
        }
        let ws = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(
            ws.contains("\"stock_moves\",") && ws.contains("\"sdk\""),
            "{ws}"
        );
        assert!(create("stock_moves", &dir).is_err());
        assert!(!add_member(&dir.join("Cargo.toml"), "stock_moves").unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
