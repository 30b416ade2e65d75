//! The `ponte` command line as a binary of the test package, so fault tests can run, signal and
//! kill real host processes (`CARGO_BIN_EXE_ponte-under-test`). Same entry point as `ponte`.

fn main() -> std::process::ExitCode {
    ponte::cli::main()
}
