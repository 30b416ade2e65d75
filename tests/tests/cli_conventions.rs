//! The command line's conventions, run as an operator would: exit codes (0 ok, 1 failure or
//! differences, 2 bad usage or configuration), shell completions and man pages generated from the
//! command definitions, and logs without colour codes when they go to a file or a pipe.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_ponte-under-test");
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/ponte.toml");

fn ponte(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PONTE_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("{BIN} runs: {e}"))
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn exit_codes_tell_usage_from_failure() {
    let ok = ponte(&["--config", CONFIG, "config", "--offline"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));

    let unknown = ponte(&["--config", CONFIG, "verify", "--no-such-flag"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown.stderr));

    let dir = std::env::temp_dir().join(format!("ponte-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.toml");
    let good = std::fs::read_to_string(CONFIG).unwrap();
    std::fs::write(
        &broken,
        good.replacen("[units]", "[units]\nbatch_of_nonsense = [", 1),
    )
    .unwrap();
    let bad = ponte(&["--config", broken.to_str().unwrap(), "status"]);
    let err = text(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(
        err.contains("broken.toml"),
        "the error names the file: {err}"
    );
    assert!(!err.contains('\u{1b}'), "no colour codes in a pipe: {err}");

    let missing = ponte(&["--config", "/nonexistent/ponte.toml", "status"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing.stderr));

    // A failure that is not the configuration's: exit 1 (the database is not there).
    let down = dir.join("down.toml");
    let unreachable = good.replace("127.0.0.1:5432", "127.0.0.1:1");
    assert_ne!(
        unreachable, good,
        "deploy/ponte.toml names PostgreSQL on 127.0.0.1:5432"
    );
    std::fs::write(&down, unreachable).unwrap();
    let failed = ponte(&[
        "--config",
        down.to_str().unwrap(),
        "--log-format",
        "text",
        "status",
    ]);
    let err = text(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{err}");
    assert!(!err.contains('\u{1b}'), "no colour codes in a pipe: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn completions_and_man_pages_come_from_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ponte(&["completions", shell]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(
            script.contains("verify") && script.contains("unit-triggers"),
            "{shell}: {script}"
        );
    }
    let bad_shell = ponte(&["completions", "cmd.exe"]);
    assert_eq!(bad_shell.status.code(), Some(2));

    let man = ponte(&["man"]);
    assert!(man.status.success(), "{}", text(&man.stderr));
    let page = text(&man.stdout);
    assert!(
        page.contains(".TH ponte 1") && page.contains("Exit status"),
        "{page}"
    );

    let dir = std::env::temp_dir().join(format!("ponte-man-cli-{}", std::process::id()));
    let out = ponte(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in [
        "ponte.1",
        "ponte-verify.1",
        "ponte-load.1",
        "ponte-doctor.1",
    ] {
        assert!(dir.join(page).is_file(), "{page} written");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_over_the_units_shows_progress() {
    let units = [1, 2, 3].map(|id| ponte_tests::UnitSpec {
        id,
        charset: "WIN1252",
    });
    let env = ponte_tests::TestEnv::new(&units)
        .await
        .expect("test environment");
    let config = env.write_config().unwrap();
    let out = ponte(&[
        "--config",
        config.to_str().unwrap(),
        "--log-format",
        "text",
        "migrate",
        "--firebird-only",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // Not a terminal: JSON progress lines, the last one with every unit done.
    let last = err
        .lines()
        .rfind(|l| l.contains("\"progress\":\"firebird migrations\""))
        .unwrap_or_else(|| panic!("no progress line: {err}"));
    let line: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(line["done"], 3, "{last}");
    assert_eq!(line["total"], 3, "{last}");
    assert!(!err.contains('\u{1b}'), "no colour codes in a pipe: {err}");
    env.cleanup().await;
}
