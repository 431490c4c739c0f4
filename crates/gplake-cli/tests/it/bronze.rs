//! `gplake sync`, `fetch` and `discover` as a user runs them, on local and S3 lakes.

use gplake_testkit::{Mirror, Population, release, s3};

use crate::{gplake, stderr, stdout};

const QUICK: [&str; 4] = ["--backoff-ms", "10", "--timeout", "5"];

fn mirror() -> (Mirror, usize) {
    let pop = Population::new(2, 8);
    let releases: Vec<_> = [(2016, 1), (2018, 3), (2021, 1), (2022, 9), (2026, 4)]
        .iter()
        .map(|&m| release(&pop, m).unwrap())
        .collect();
    let files = releases.iter().map(|r| r.files.len()).sum();
    (Mirror::start(releases), files)
}

fn sync_args<'a>(lake: &'a str, source: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "--lake", lake, "sync", "--source", source, "--from", "2016-01", "--to", "2026-04",
    ];
    args.extend(QUICK);
    args
}

#[test]
fn sync_from_a_mirror_then_nothing_to_do() {
    let (mirror, files) = mirror();
    let lake = tempfile::tempdir().unwrap();
    let lake = lake.path().to_str().unwrap();
    let source = mirror.series_url();
    let first = gplake(&sync_args(lake, &source), &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).starts_with(&format!("5 months, {files} files fetched (")),
        "{}",
        stdout(&first)
    );
    assert!(
        stdout(&first)
            .lines()
            .next()
            .unwrap()
            .ends_with("0 unchanged, 0 revised")
            && stdout(&first).contains("silver: 5 months built"),
        "{}",
        stdout(&first)
    );
    let second = gplake(&sync_args(lake, &source), &[]);
    assert!(second.status.success());
    assert_eq!(
        stdout(&second).lines().next().unwrap(),
        format!(
            "5 months, 0 files fetched (0.0 MB), {files} unchanged, 0 revised; bronze is up to date, nothing written"
        )
    );
}

#[test]
fn sync_into_s3() {
    let (mirror, files) = mirror();
    let bucket = s3::new_bucket("cli");
    let lake = format!("s3://{bucket}/lake");
    let source = mirror.series_url();
    let env = s3::env(s3::endpoint());
    let first = gplake(&sync_args(&lake, &source), &env);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).starts_with(&format!("5 months, {files} files fetched")),
        "{}",
        stdout(&first)
    );
    let second = gplake(&sync_args(&lake, &source), &env);
    assert!(
        stdout(&second).contains("nothing written"),
        "{}",
        stdout(&second)
    );
}

#[test]
fn the_readme_command_works_offline_on_the_shipped_examples() {
    let lake = tempfile::tempdir().unwrap();
    let out = gplake(
        &[
            "sync",
            "--source",
            "examples/releases",
            "--lake",
            lake.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("6 months, "), "{}", stdout(&out));
}

#[test]
fn an_unreachable_source_says_so_in_one_line_and_points_to_source_dir() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let lake = tempfile::tempdir().unwrap();
    let source = format!("http://127.0.0.1:{port}/series");
    let out = gplake(
        &[
            "--lake",
            lake.path().to_str().unwrap(),
            "sync",
            "--source",
            &source,
            "--attempts",
            "1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(4));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: cannot reach the source") && err.contains("--source DIR"),
        "{err}"
    );
}

#[test]
fn an_s3_permission_error_is_one_clear_line() {
    let endpoint = s3::start_moto(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let out = gplake(
        &[
            "--lake",
            "s3://locked/lake",
            "sync",
            "--source",
            "examples/releases",
        ],
        &s3::env(&endpoint),
    );
    assert_eq!(out.status.code(), Some(5));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("permission denied") && err.contains("credentials"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = gplake(&["sync", "--from", "2024-13"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("2024-13"));
}

#[test]
fn discover_lists_releases_as_json_and_text() {
    let (mirror, files) = mirror();
    mirror.add_foreign_link((2021, 1));
    let source = mirror.series_url();
    let mut args = vec![
        "--json", "discover", "--source", &source, "--from", "2016-01", "--to", "2026-04",
    ];
    args.extend(QUICK);
    let out = gplake(&args, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let releases = json["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 5);
    assert_eq!(
        releases
            .iter()
            .map(|r| r["files"].as_array().unwrap().len())
            .sum::<usize>(),
        files
    );
    assert_eq!(releases[0]["files"][0]["kind"]["family"], "legacy_quinary");
    assert_eq!(releases[2]["skipped"].as_array().unwrap().len(), 1);
    let text = gplake(&args[1..], &[]);
    let text = stdout(&text);
    assert!(text.contains("2026-04  published 2026-04-10"), "{text}");
    assert!(
        text.contains("practice_totals      plain     zip  gp-reg-pat-prac-all.zip"),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with(&format!(
            "5 releases, {files} files; 119 months without a release, 0 upcoming"
        )),
        "{text}"
    );
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let (mirror, files) = mirror();
    let lake = tempfile::tempdir().unwrap();
    let source = mirror.series_url();
    let mut args = sync_args(lake.path().to_str().unwrap(), &source);
    args.push("--dry-run");
    let out = gplake(&args, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().filter(|l| l.contains("would_fetch")).count(),
        files,
        "{text}"
    );
    assert!(
        text.contains(&format!("dry run: 5 months, {files} files to fetch")),
        "{text}"
    );
    assert!(std::fs::read_dir(lake.path()).unwrap().next().is_none());
}

/// Ctrl-C while files are still arriving stops the sync at once, with exit code 130: the
/// downloads are abandoned and no month's bronze is written; the next sync fetches it all.
#[test]
fn ctrl_c_during_downloads_stops_at_once_and_writes_no_bronze() {
    use std::time::{Duration, Instant};
    let month = release(&Population::new(3, 40), (2024, 5)).unwrap();
    let bytes: usize = month.files.iter().map(|f| f.bytes.len()).sum();
    let mirror = Mirror::start(vec![month]);
    // A minute or more for the month's files, far longer than stopping may take.
    let rate = (bytes / 60).max(1) as u64;
    mirror.throttle(rate);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let source = mirror.series_url();
    let args = [
        "--lake", lake, "sync", "--source", &source, "--from", "2024-05", "--to", "2024-05",
    ];
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_gplake"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(60);
    while !mirror
        .requests()
        .iter()
        .any(|r| r.status == 200 && r.path.contains("gp-reg-pat-prac"))
    {
        assert!(Instant::now() < give_up, "no download started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the child's pid, which it still holds (it has not been waited on).
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let interrupted = Instant::now();
    let out = child.wait_with_output().unwrap();
    let stopped_in = interrupted.elapsed();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("stopping at the next safe point")
            && stderr(&out).contains("fetch cancelled: no month's bronze was changed"),
        "{}",
        stderr(&out)
    );
    assert!(
        stopped_in < Duration::from_secs(30),
        "downloads were abandoned, not finished ({stopped_in:?})"
    );
    assert!(
        !dir.path().join("lake").join("bronze").exists(),
        "no bronze written"
    );

    let mut again: Vec<&str> = args.to_vec();
    again.extend(QUICK);
    mirror.throttle(u64::MAX / 2);
    let rerun = gplake(&again, &[]);
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    assert!(
        stdout(&rerun).contains("silver: 1 months built"),
        "{}",
        stdout(&rerun)
    );
}
