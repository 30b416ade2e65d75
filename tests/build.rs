//! Builds every guest transform (transforms/, with deploy/build-transforms.sh) into
//! `$OUT_DIR/transforms` before the suites compile, and hands that directory to them as
//! `PONTE_TEST_TRANSFORMS_DIR`, so a test never runs a stale or checked-in `.wasm`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?;
    let out = std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?;
    let repo = Path::new(&manifest)
        .parent()
        .ok_or("tests/ has no parent directory")?
        .to_path_buf();
    let dir = PathBuf::from(out).join("transforms");
    watch(&repo)?;

    let script = repo.join("deploy/build-transforms.sh");
    // The script's stdout (the component list) goes to our stderr: our stdout is for cargo.
    let status = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| format!("cannot run bash {}: {e}", script.display()))?;
    if !status.success() {
        return Err(format!(
            "building the guest transforms failed ({status}); see build-transforms' message \
             above. The wasm toolchain comes from deploy/wasm-toolchain.sh (Debian rustc-web \
             1.96 + rust-web-src, fetched with apt-get download into ~/.cache/ponte); run \
             `deploy/build-transforms.sh /tmp/t` by hand to see the whole output"
        ));
    }
    println!(
        "cargo:rustc-env=PONTE_TEST_TRANSFORMS_DIR={}",
        dir.display()
    );
    Ok(())
}

/// Reruns on any change to the transforms' sources, the WIT or the build scripts; never on
/// transforms/target (cargo scans a watched directory recursively).
fn watch(repo: &Path) -> Result<(), String> {
    let transforms = repo.join("transforms");
    let entries = std::fs::read_dir(&transforms)
        .map_err(|e| format!("cannot read {}: {e}", transforms.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", transforms.display()))?;
        let name = entry.file_name();
        if name != "target" && !name.to_string_lossy().starts_with('.') {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }
    // Not transforms/ itself: that scan would include target/. A new crate changes
    // transforms/Cargo.toml (its members), which is watched.
    for path in [
        "wit",
        "deploy/build-transforms.sh",
        "deploy/wasm-toolchain.sh",
    ] {
        println!("cargo:rerun-if-changed={}", repo.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=PONTE_WASM_TOOLCHAIN");
    Ok(())
}
