//! The servers' own admin tools, for the fault suites: a failed command fails the test.

use std::process::Command;

use crate::fb_password;

/// Runs `program args`; panics (fails the test) when it cannot start or exits non-zero.
pub fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program} is installed: {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

/// `rabbitmqctl args` (stop_app, start_app, await_startup ...).
pub fn rabbitmqctl(args: &[&str]) {
    run("rabbitmqctl", args);
}

/// `gfix -user SYSDBA -password .. args db` (`-shut full -force 0`, `-online normal`).
pub fn gfix(args: &[&str], db: &str) {
    let password = fb_password();
    let mut all = vec!["-user", "SYSDBA", "-password", password.as_str()];
    all.extend_from_slice(args);
    all.push(db);
    run("gfix", &all);
}
