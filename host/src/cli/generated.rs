//! What is generated from the clap definitions, so it never drifts from the commands: shell
//! completions (`ponte completions bash|zsh|fish`) and the man pages (`ponte man`).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Writes the completion script for `shell`.
pub fn completions(shell: Shell, out: &mut dyn Write) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "ponte", out);
}

/// Writes `ponte(1)` as roff to `out`.
pub fn man(out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(Cli::command()).render(out)
}

/// Writes `ponte.1` and one `ponte-<command>.1` per command into `dir`; returns the files.
pub fn man_pages(dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let command = Cli::command();
    let mut pages = vec![("ponte.1".to_string(), command.clone())];
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("ponte-{}", sub.get_name());
        pages.push((format!("{name}.1"), sub.clone().name(name)));
    }
    let mut written = Vec::new();
    for (file, page) in pages {
        let mut roff = Vec::new();
        clap_mangen::Man::new(page).render(&mut roff)?;
        let path = dir.join(&file);
        std::fs::write(&path, roff).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(file);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_completes_the_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            completions(shell, &mut out);
            let text = String::from_utf8_lossy(&out);
            for word in ["verify", "load", "doctor", "completions", "log-format"] {
                assert!(text.contains(word), "{shell:?} completion lacks {word}");
            }
        }
    }

    #[test]
    fn the_man_pages_cover_every_command_and_the_exit_codes() {
        let mut out = Vec::new();
        man(&mut out).unwrap_or_else(|e| panic!("man page: {e}"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains(".TH ponte 1"), "{text}");
        assert!(
            text.contains("Exit status"),
            "exit codes documented: {text}"
        );
        let dir = std::env::temp_dir().join(format!("ponte-man-{}", std::process::id()));
        let files = man_pages(&dir).unwrap_or_else(|e| panic!("man pages: {e:#}"));
        for command in Cli::command().get_subcommands() {
            let file = format!("ponte-{}.1", command.get_name());
            assert!(files.contains(&file), "no page for {file}");
            let page = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
            assert!(page.contains(".SH SYNOPSIS"), "{file}: {page}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
