//! What scheduled runs and pipelines read: JSON documents with a schema version, errors as
//! JSON with their kind and exit code, quiet runs that print nothing when nothing changed,
//! logs as JSON lines, verbosity that stays on gplake's own events, the build's progress bar
//! on a terminal, shell completions and the manual page.

use serde_json::Value;

use crate::{assert_exit, gplake, repo_root, stderr, stdout};

const EXAMPLES: &str = "examples/releases";

/// A lake synced from the shipped examples, for the month 2024-04 only (quick).
fn synced() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake").to_str().unwrap().to_string();
    let out = gplake(
        &[
            "--lake", &lake, "sync", "--source", EXAMPLES, "--month", "2024-04",
        ],
        &[],
    );
    assert_exit(&out, 0);
    (dir, lake)
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", stdout(out)))
}

#[test]
fn every_json_document_carries_a_schema_version() {
    let (_dir, lake) = synced();
    let sync = ["sync", "--source", EXAMPLES, "--month", "2024-04", "--json"];
    for command in [
        &sync[..],
        &["status", "--json"],
        &["check", "--json"],
        &["build", "--json"],
        &["vacuum", "--dry-run", "--json"],
        &["unlock", "--month", "2024-04", "--json"],
        &["discover", "--source", EXAMPLES, "--json"],
    ] {
        let mut args = vec!["--lake", lake.as_str()];
        args.extend(command);
        let out = gplake(&args, &[]);
        assert_exit(&out, 0);
        let doc = json(&out);
        assert_eq!(doc["schema_version"], 1, "{command:?}: {doc}");
    }
}

/// The error document of a failed run, checked for its kind and exit code.
#[track_caller]
fn error_json(out: &std::process::Output, code: i32, kind: &str) -> Value {
    assert_exit(out, code);
    let doc = json(out);
    assert_eq!(doc["schema_version"], 1, "{doc}");
    let error = &doc["error"];
    assert_eq!(error["kind"], kind, "{doc}");
    assert_eq!(error["exit_code"], code, "{doc}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    let line = stderr(out);
    assert!(line.starts_with("error: "), "stderr keeps the line: {line}");
    error.clone()
}

#[test]
fn errors_are_json_with_their_kind_exit_code_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("laek");
    let typo = typo.to_str().unwrap();
    let out = gplake(&["--lake", typo, "status", "--json"], &[]);
    let error = error_json(&out, 2, "refused");
    assert_eq!(error["url"], typo);

    let out = gplake(&["sync", "--frm", "2024-01", "--json"], &[]);
    let error = error_json(&out, 2, "usage");
    assert!(
        error["detail"].as_str().unwrap().contains("--from"),
        "{error}"
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = format!("http://127.0.0.1:{port}/series");
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let args = [
        "--lake",
        lake,
        "sync",
        "--source",
        &source,
        "--attempts",
        "1",
    ];
    let out = gplake(&[&args[..], &["--json"]].concat(), &[]);
    let error = error_json(&out, 4, "source_unreachable");
    assert_eq!(error["url"], source.as_str());

    let (_synced, lake) = synced();
    let manifest = std::path::Path::new(&lake)
        .join("bronze/gp_registered_patients/snapshot_year=2024/snapshot_month=04/_manifest.json");
    std::fs::write(&manifest, "{ not json").unwrap();
    let out = gplake(
        &[
            "--lake", &lake, "fetch", "--source", EXAMPLES, "--month", "2024-04", "--json",
        ],
        &[],
    );
    let error = error_json(&out, 5, "storage");
    assert_eq!(error["month"], "2024-04", "{error}");
}

#[test]
fn quiet_prints_nothing_when_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let sync = [
        "--lake", lake, "-q", "sync", "--source", EXAMPLES, "--month", "2024-04",
    ];
    let first = gplake(&sync, &[]);
    assert_exit(&first, 0);
    assert!(
        stdout(&first).contains("files fetched") && stdout(&first).contains("2024-04  built"),
        "a run that changed something says what: {}",
        stdout(&first)
    );
    let again = gplake(&sync, &[]);
    assert_exit(&again, 0);
    assert_eq!(
        (stdout(&again), stderr(&again)),
        (String::new(), String::new())
    );
    let build = gplake(&["--lake", lake, "-q", "build"], &[]);
    assert_exit(&build, 0);
    assert_eq!(
        (stdout(&build), stderr(&build)),
        (String::new(), String::new())
    );
}

#[test]
fn logs_are_json_lines_and_verbosity_stays_on_gplakes_own_events() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let sync = |flag: &str| {
        let args = [
            "--lake",
            lake,
            flag,
            "--log-format",
            "json",
            "sync",
            "--source",
            EXAMPLES,
            "--month",
            "2024-04",
            "--json",
        ];
        let out = gplake(&args, &[]);
        assert_exit(&out, 0);
        stderr(&out)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect::<Vec<_>>()
    };
    let lines = sync("-v");
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    for event in ["discovered", "bronze", "fetched", "building", "built"] {
        assert!(
            messages.contains(&event),
            "no '{event}' event at -v: {messages:?}"
        );
    }
    let built = lines
        .iter()
        .find(|l| l["fields"]["message"] == "built")
        .unwrap();
    assert_eq!(built["fields"]["month"], "2024-04", "{built}");
    assert!(built["fields"]["rows"].as_u64().unwrap() > 0, "{built}");
    for flag in ["-v", "-vv"] {
        let lines = sync(flag);
        let foreign: Vec<&Value> = lines
            .iter()
            .filter(|l| !l["target"].as_str().unwrap_or("").starts_with("gplake"))
            .collect();
        assert!(
            foreign.is_empty(),
            "{flag}: dependency internals: {foreign:?}"
        );
    }
}

#[test]
fn build_shows_a_progress_bar_on_a_terminal_only() {
    let (_dir, lake) = synced();
    let gplake_bin = env!("CARGO_BIN_EXE_gplake");
    // `script` gives the run a pseudo-terminal, as a user at a shell has.
    let on_terminal = std::process::Command::new("script")
        .args([
            "-qfec",
            &format!("{gplake_bin} --lake {lake} build --force"),
            "/dev/null",
        ])
        .current_dir(repo_root())
        .output()
        .expect("run script (util-linux)");
    let seen = String::from_utf8_lossy(&on_terminal.stdout);
    assert!(on_terminal.status.success(), "{seen}");
    assert!(
        seen.contains("building 1/1 months") && seen.contains("rows") && seen.contains("MB/s"),
        "{seen}"
    );
    let piped = gplake(&["--lake", &lake, "build", "--force"], &[]);
    assert_exit(&piped, 0);
    assert!(!stderr(&piped).contains("building"), "{}", stderr(&piped));
}

#[test]
fn completions_and_the_manual_page_come_from_the_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let out = gplake(&["completions", shell], &[]);
        assert_exit(&out, 0);
        let script = stdout(&out);
        for word in ["vacuum", "max-age", "log-format"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = gplake(&["completions", "bash"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gplake.bash");
    std::fs::write(&file, stdout(&out)).unwrap();
    let sourced = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("source {} && complete -p gplake", file.display()),
        ])
        .output()
        .unwrap();
    assert!(
        sourced.status.success(),
        "{}",
        String::from_utf8_lossy(&sourced.stderr)
    );

    let out = gplake(&["man", "--dir", dir.path().to_str().unwrap()], &[]);
    assert_exit(&out, 0);
    for page in ["gplake.1", "gplake-sync.1", "gplake-check.1"] {
        let rendered = std::process::Command::new("man")
            .args(["-P", "cat", "-l"])
            .arg(dir.path().join(page))
            .env("MANWIDTH", "100")
            .output()
            .expect("run man (man-db)");
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(
            rendered.status.success() && text.contains("NAME"),
            "{page}: {text}"
        );
        if page == "gplake-check.1" {
            assert!(text.contains("--max-age"), "{text}");
        }
    }
    let out = gplake(&["man"], &[]);
    assert!(stdout(&out).contains(".TH gplake 1"), "{}", stdout(&out));
}

/// The command line is a library function too (the Python package's console script calls
/// it): the same flags, the same exit codes, and a second run in one process works.
#[test]
fn the_command_line_runs_as_a_library_function() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none");
    let missing = missing.to_str().unwrap();
    assert_eq!(gplake_cli::run(["gplake", "--version"]), 0);
    assert_eq!(gplake_cli::run(["gplake", "--lake", missing, "status"]), 2);
    assert_eq!(gplake_cli::run(["gplake", "sync", "--frm", "2024-01"]), 2);
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let sync = ["gplake", "--lake", lake, "-q", "sync", "--source"];
    let examples = repo_root().join(EXAMPLES);
    let examples = examples.to_str().unwrap();
    assert_eq!(
        gplake_cli::run([&sync[..], &[examples, "--month", "2024-04"]].concat()),
        0
    );
    assert_eq!(gplake_cli::run(["gplake", "--lake", lake, "check"]), 0);
}
