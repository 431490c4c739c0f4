//! Black-box tests of the `gplake` binary: what a user types, what a user sees.

mod analysts;
mod bronze;
mod deploy;
mod output;
mod pipeline;
mod reliability;
mod silver;

use std::path::{Path, PathBuf};
use std::process::Output;

/// Runs `gplake` with `args` and extra environment, from the repository root.
pub(crate) fn gplake(args: &[&str], env: &[(String, String)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gplake"));
    command
        .args(args)
        .current_dir(repo_root())
        .env_remove("GPLAKE_LAKE")
        .env_remove("GPLAKE_SOURCE");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run gplake")
}

/// The repository root (where the README's commands run).
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing everything the run printed when it differs.
#[track_caller]
pub(crate) fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{}{}", stdout(o), stderr(o));
}
