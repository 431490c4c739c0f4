//! The scheduling files in `deploy/` are ready to copy: the systemd units pass
//! `systemd-analyze verify`, the GitHub Actions workflow validates against the workflow
//! schema (offline, from check-jsonschema), and every gplake command line in them is one
//! this gplake accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{assert_exit, gplake, repo_root};

fn deploy() -> PathBuf {
    repo_root().join("deploy")
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    for unit in [
        "gplake-sync.service",
        "gplake-sync.timer",
        "gplake-alert@.service",
    ] {
        let text = std::fs::read_to_string(deploy().join("systemd").join(unit)).unwrap();
        // Installed as /usr/local/bin/gplake; verify checks the binary is there.
        let text = text.replace("/usr/local/bin/gplake", env!("CARGO_BIN_EXE_gplake"));
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    std::fs::copy(
        dir.path().join("gplake-alert@.service"),
        dir.path().join("gplake-alert@gplake-sync.service.service"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args([
            "gplake-sync.service",
            "gplake-sync.timer",
            "gplake-alert@gplake-sync.service.service",
        ])
        .current_dir(dir.path())
        .output()
        .expect("run systemd-analyze (apt-get install systemd)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn the_github_workflow_is_valid_against_the_workflow_schema() {
    let workflow = deploy().join("github/gplake-sync.yml");
    let out = Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(&workflow)
        .output()
        .expect("run check-jsonschema (scripts/test installs it into .venv)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_gplake_command_in_deploy_is_accepted() {
    let mut seen = 0;
    for file in [
        "systemd/gplake-sync.service",
        "cron/gplake",
        "github/gplake-sync.yml",
    ] {
        for args in gplake_commands(&deploy().join(file)) {
            let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
            with_help.push("--help");
            let out = gplake(&with_help, &[]);
            assert_exit(&out, 0);
            seen += 1;
        }
    }
    assert!(seen >= 6, "only {seen} gplake commands found in deploy/");
}

const COMMANDS: [&str; 6] = ["sync", "fetch", "build", "check", "status", "vacuum"];

/// The arguments of every gplake command line in `file` (`$MONTH` as a real month).
fn gplake_commands(file: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut commands = Vec::new();
    let prose = ["#", "name:", "- name:", "Description="];
    for line in text
        .lines()
        .filter(|l| !prose.iter().any(|p| l.trim_start().starts_with(p)))
    {
        for part in line.split("&&").flat_map(|p| p.split("||")) {
            let words: Vec<&str> = part.split_whitespace().collect();
            let Some(at) = words
                .iter()
                .position(|w| w.ends_with("/gplake") || *w == "gplake" || w.ends_with("=gplake"))
            else {
                continue;
            };
            let args: Vec<String> = words[at + 1..]
                .iter()
                .take_while(|w| !w.starts_with('>'))
                .map(|w| w.trim_matches('"').replace("$MONTH", "2024-04"))
                .collect();
            // `gplake gplake -q sync` in cron: the first is the user.
            let args = match args.first().map(String::as_str) {
                Some("gplake") => args[1..].to_vec(),
                _ => args,
            };
            if args
                .first()
                .is_some_and(|a| a.starts_with('-') || COMMANDS.contains(&a.as_str()))
            {
                commands.push(args);
            }
        }
    }
    commands
}
