//! What a scheduled `gplake` meets on a shared bucket, run as a user runs it: a run killed
//! mid-upload, a run frozen past its lease, temporary disk during a backfill, a store that
//! ignores conditional writes, server-side encryption, and credentials kept out of output.
//!
//! Budget: about 40 s (a frozen run waits out a 2 s lease; the rest are small syncs).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gplake_testkit::{Fault, Mirror, Population, proxy, release, s3};
use sha2::{Digest, Sha256};

use crate::{assert_exit, gplake, stderr, stdout};

const QUICK: [&str; 4] = ["--backoff-ms", "10", "--timeout", "5"];

/// A mirror of two small months.
fn mirror() -> Mirror {
    let pop = Population::new(2, 8);
    Mirror::start(vec![
        release(&pop, (2024, 4)).unwrap(),
        release(&pop, (2024, 5)).unwrap(),
    ])
}

fn fetch_args<'a>(command: &'a str, lake: &'a str, source: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "--lake", lake, command, "--source", source, "--from", "2024-04", "--to", "2024-05",
    ];
    args.extend(QUICK);
    args
}

/// A fresh bucket on the test server: its lake URL and the environment to reach it.
fn s3_lake(tag: &str) -> (String, String, Vec<(String, String)>) {
    let bucket = s3::new_bucket(tag);
    let url = format!("s3://{bucket}/lake");
    (bucket, url, s3::env(s3::endpoint()))
}

fn with(env: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

#[test]
fn a_run_killed_mid_upload_leaves_nothing_after_the_next_run() {
    let mirror = mirror();
    let source = mirror.series_url();
    let (bucket, url, env) = s3_lake("killed");
    let mut args = fetch_args("fetch", &url, &source);
    args.extend(["--jobs", "1"]);
    let killed = gplake(&args, &with(&env, &[("GPLAKE_FAILPOINT", "upload-part#3")]));
    assert!(
        stderr(&killed).contains("failpoint upload-part reached"),
        "{}",
        stderr(&killed)
    );
    let endpoint = s3::endpoint();
    assert_eq!(
        s3::open_uploads(endpoint, &bucket).len(),
        1,
        "the killed upload"
    );
    assert_eq!(s3::keys(endpoint, &bucket, "lake/_uploads/").len(), 1);
    assert_eq!(s3::keys(endpoint, &bucket, "lake/_staging/").len(), 2);
    assert!(s3::keys(endpoint, &bucket, "lake/bronze/").is_empty());

    let rerun = gplake(&fetch_args("fetch", &url, &source), &env);
    assert_exit(&rerun, 0);
    assert!(
        s3::open_uploads(endpoint, &bucket).is_empty(),
        "aborted by id"
    );
    assert!(s3::keys(endpoint, &bucket, "lake/_uploads/").is_empty());
    assert!(s3::keys(endpoint, &bucket, "lake/_staging/").is_empty());
    assert!(!s3::keys(endpoint, &bucket, "lake/bronze/").is_empty());
}

#[test]
fn a_backfill_holds_at_most_jobs_files_of_temporary_disk_and_leaves_none() {
    let pop = Population::new(2, 8);
    let releases: Vec<_> = gplake_testkit::releases(&pop, (2023, 1), (2023, 12));
    let names: Vec<String> = releases
        .iter()
        .flat_map(|r| r.files.iter().map(|f| f.name.clone()))
        .collect();
    let mirror = Mirror::start(releases);
    let slow = Fault::Slow {
        chunk: 16 * 1024,
        pause: Duration::from_millis(15),
    };
    for name in &names {
        mirror.inject(name, vec![slow.clone()]);
    }
    let tmp = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let source = mirror.series_url();
    let mut args = fetch_args("fetch", lake.path().to_str().unwrap(), &source);
    args[5..9].copy_from_slice(&["--from", "2023-01", "--to", "2023-12"]);
    args.extend(["--jobs", "2"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_gplake"))
        .args(&args)
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut most = 0;
    let mut samples = 0;
    let status = loop {
        most = most.max(files_under(tmp.path()));
        samples += 1;
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(status.success(), "fetch failed");
    assert!(
        samples > 50,
        "the backfill was too quick to watch ({samples} samples)"
    );
    assert!(
        (1..=2).contains(&most),
        "{most} temporary files at once with --jobs 2"
    );
    assert_eq!(files_under(tmp.path()), 0, "temporary files left behind");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "temporary folder left behind"
    );
}

fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => files_under(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

#[test]
fn a_run_frozen_past_its_lease_is_refused_when_it_wakes_and_the_month_stays_right() {
    let mirror = mirror();
    let source = mirror.series_url();
    let (bucket, url, env) = s3_lake("frozen");
    let mut args = fetch_args("fetch", &url, &source);
    args.extend(["--lock-ttl", "2"]);
    let mut frozen = Command::new(env!("CARGO_BIN_EXE_gplake"))
        .args(&args)
        .envs(with(&env, &[("GPLAKE_FAILPOINT", "bronze-file:stop")]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(frozen.stderr.take().unwrap()).lines();
    let reached = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("reached"));
    assert!(reached, "the failpoint was never reached");

    let started = Instant::now();
    let successor = gplake(&args, &env);
    assert_exit(&successor, 0);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "took over a live lease"
    );

    let pid = frozen.id().to_string();
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    let status = frozen.wait().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(status.code(), Some(5), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("2024-0") && l.contains("lease")),
        "{rest:?}"
    );
    assert_manifests_true(&url, &bucket);
    let again = gplake(&fetch_args("fetch", &url, &source), &env);
    assert_exit(&again, 0);
    assert!(
        stdout(&again).contains("nothing written"),
        "{}",
        stdout(&again)
    );
}

/// Every file each month's manifest names holds the bytes it records.
fn assert_manifests_true(url: &str, bucket: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let lake = gplake::Lake::open_with(url, s3::options(s3::endpoint())).unwrap();
    runtime.block_on(async {
        for month in ["2024-04", "2024-05"] {
            let month: gplake::Month = month.parse().unwrap();
            let manifest = gplake::fetch::Manifest::read(&lake, month)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{bucket}: no manifest for {month}"));
            let dir = gplake::Lake::bronze_month_dir(month);
            for file in &manifest.files {
                let path = file
                    .current
                    .path
                    .split('/')
                    .fold(dir.clone(), |p, part| p.join(part));
                let bytes = lake.get_bytes(&path).await.unwrap().unwrap();
                let sha = hex::encode(Sha256::digest(&bytes));
                assert_eq!(sha, file.current.sha256, "{month} {}", file.name);
            }
        }
    });
}

#[test]
fn a_store_that_ignores_conditional_writes_is_refused_before_any_write() {
    let mirror = mirror();
    let source = mirror.series_url();
    let bucket = s3::new_bucket("noguard");
    let url = format!("s3://{bucket}/lake");
    let double = proxy::without_conditional_writes(s3::endpoint());
    let run = gplake(&fetch_args("sync", &url, &source), &s3::env(&double));
    assert_exit(&run, 5);
    let text = stderr(&run);
    assert!(text.contains("ignores conditional writes"), "{text}");
    assert!(text.contains(&double), "names the endpoint: {text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(
        s3::keys(s3::endpoint(), &bucket, ""),
        ["lake/_gplake/conditional-write-probe"],
        "only the probe was written"
    );
    let direct = gplake(
        &fetch_args("fetch", &url, &source),
        &s3::env(s3::endpoint()),
    );
    assert_exit(&direct, 0);
}

#[test]
fn server_side_encryption_is_applied_to_every_object_written() {
    let mirror = mirror();
    let source = mirror.series_url();
    let (bucket, url, env) = s3_lake("sse");
    let sse = [
        "--s3-sse",
        "aws:kms",
        "--s3-kms-key-id",
        "alias/gplake-test",
    ];
    let mut args: Vec<&str> = sse.to_vec();
    args.extend(fetch_args("sync", &url, &source));
    assert_exit(&gplake(&args, &env), 0);
    let big = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(big.path(), vec![7u8; 9 * 1024 * 1024]).unwrap();
    upload_with_sse(&url, big.path());

    let endpoint = s3::endpoint();
    let keys = s3::keys(endpoint, &bucket, "lake/");
    for kind in [
        "/bronze/",
        "_manifest.json",
        "/_delta_log/",
        ".parquet",
        "multipart.bin",
    ] {
        assert!(
            keys.iter().any(|k| k.contains(kind)),
            "no {kind} in {keys:?}"
        );
    }
    for (key, sse, kms_key) in s3::encryption(endpoint, &bucket, &keys) {
        assert_eq!(sse, "aws:kms", "{key}");
        assert!(kms_key.contains("gplake-test"), "{key}: {kms_key}");
    }
    let local = gplake(&["--lake", "/tmp/x", "--s3-sse", "aws:kms", "status"], &[]);
    assert_exit(&local, 2);
}

/// A multipart upload (two parts and a tail) through the library with the same settings.
fn upload_with_sse(url: &str, file: &std::path::Path) {
    let mut options = s3::options(s3::endpoint());
    options.push(("aws_server_side_encryption", "aws:kms".into()));
    options.push(("aws_sse_kms_key_id", "alias/gplake-test".into()));
    let lake = gplake::Lake::open_with(url, options).unwrap();
    let path = object_store::path::Path::from("multipart.bin");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(lake.upload_file(&path, file))
        .unwrap();
}

#[test]
fn credentials_never_reach_logs_errors_or_json() {
    let mirror = mirror();
    let source = mirror.series_url();
    let (_, url, env) = s3_lake("secrets");
    let key_id = "AKIAGPLAKETESTKEY123";
    let secret = "gplakeSecret/DoNotPrint+42";
    let env = with(
        &env,
        &[
            ("AWS_ACCESS_KEY_ID", key_id),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
    );
    let mut runs = Vec::new();
    let mut args = vec!["-vvv"];
    args.extend(fetch_args("sync", &url, &source));
    runs.push(gplake(&args, &env));
    args.insert(0, "--json");
    runs.push(gplake(&args, &env));
    let missing = "s3://gplake-no-such-bucket/lake";
    let mut failing = vec!["-vvv", "--json"];
    failing.extend(fetch_args("sync", missing, &source));
    runs.push(gplake(&failing, &env));
    assert_exit(&runs[0], 0);
    assert_ne!(runs[2].status.code(), Some(0));
    for run in &runs {
        let all = format!("{}{}", stdout(run), stderr(run));
        assert!(all.len() > 1000, "-vvv logged too little to prove anything");
        for needle in [
            key_id,
            secret,
            "Signature=",
            "X-Amz-Signature",
            "Credential=",
        ] {
            assert!(!all.contains(needle), "{needle} printed");
        }
    }
}

#[test]
fn vacuum_on_s3_checkpoints_every_table_and_keeps_every_figure() {
    let mirror = mirror();
    let (bucket, lake, env) = s3_lake("vacuum");
    assert_exit(
        &gplake(&fetch_args("sync", &lake, &mirror.series_url()), &env),
        0,
    );
    let totals = [
        "--lake",
        &lake,
        "query",
        "SELECT SUM(registered_population) FROM fact_gp_registered_patients",
    ];
    let before = stdout(&gplake(&totals, &env));

    let dry = gplake(&["--lake", &lake, "--json", "vacuum", "--dry-run"], &env);
    assert_exit(&dry, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&dry)).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["retention_days"], 30);
    assert_eq!(report["tables"].as_array().unwrap().len(), 14);
    assert!(report["tables"][0]["checkpoint"].is_null());

    let done = gplake(&["--lake", &lake, "vacuum"], &env);
    assert_exit(&done, 0);
    let text = stdout(&done);
    assert_eq!(text.matches("checkpoint at version").count(), 14, "{text}");
    assert!(text.contains("removed 0 data files in 14 tables"), "{text}");
    let checkpoints = s3::keys(
        s3::endpoint(),
        &bucket,
        "lake/silver/fact_gp_registered_patients/_delta_log/_last_checkpoint",
    );
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
    assert_eq!(stdout(&gplake(&totals, &env)), before);

    let short = gplake(&["--lake", &lake, "vacuum", "--retention-days", "3"], &env);
    assert_exit(&short, 2);
    assert_eq!(
        stderr(&short).trim().lines().count(),
        1,
        "{}",
        stderr(&short)
    );
    assert!(stderr(&short).contains("at least 7 days"));
}

#[test]
fn logs_in_a_file_carry_no_colour_unless_asked() {
    let lake = tempfile::tempdir().unwrap();
    let lake = lake.path().to_str().unwrap();
    let sync = |extra: &[&str], env: &[(String, String)]| {
        let mut args = vec!["--lake", lake, "-v"];
        args.extend(extra);
        args.extend([
            "fetch",
            "--source",
            "examples/releases",
            "--from",
            "2024-04",
            "--to",
            "2024-04",
        ]);
        let out = gplake(&args, env);
        assert_exit(&out, 0);
        stderr(&out)
    };
    let piped = sync(&[], &[]);
    assert!(
        piped.lines().count() > 1,
        "no log lines to look at: {piped}"
    );
    assert!(
        !piped.contains('\u{1b}'),
        "colour in a piped log: {piped:?}"
    );
    let forced = sync(&["--color", "always"], &[]);
    assert!(forced.contains("\u{1b}["), "--color always gave no colour");
    let no_color = [("NO_COLOR".to_string(), "1".to_string())];
    assert!(!sync(&["--color", "auto"], &no_color).contains('\u{1b}'));
    assert!(!sync(&["--color", "never"], &[]).contains('\u{1b}'));
}

#[test]
fn commands_that_only_read_never_create_a_lake() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("laek");
    let typo = typo.to_str().unwrap();
    for command in [
        vec!["status"],
        vec!["check"],
        vec!["query", "SELECT 1"],
        vec!["vacuum", "--dry-run"],
        vec!["unlock", "--month", "2024-05"],
    ] {
        let mut args = vec!["--lake", typo];
        args.extend(&command);
        let out = gplake(&args, &[]);
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{command:?}: {err}");
        assert!(
            err.contains(&format!("no lake at {typo}"))
                && err.contains(&format!("gplake --lake {typo} sync")),
            "{command:?}: {err}"
        );
        assert!(
            !std::path::Path::new(typo).exists(),
            "{command:?} created the lake"
        );
    }
}

/// An Azure lake, as a user runs it: `--lake az://container/prefix` with the standard
/// `AZURE_*` environment (here, the local Azurite): the examples sync, the figures equal a
/// local lake's, the lease and the commits are conditional writes Azure honours, and DuckDB
/// registration reads Azure credentials.
#[test]
fn an_azure_lake_holds_the_figures_of_a_local_one() {
    use gplake_testkit::azure;
    let container = azure::new_container("cli");
    let env = azure::env(azure::endpoint());
    let lake = format!("az://{container}/lake");
    let local = tempfile::tempdir().unwrap();
    let local = local.path().join("lake");
    let local = local.to_str().unwrap();
    let sql = "SELECT CAST(snapshot_date AS VARCHAR) AS d, SUM(registered_population) AS n FROM fact_gp_registered_patients GROUP BY 1 ORDER BY 1";
    let mut answers = Vec::new();
    for lake in [lake.as_str(), local] {
        let sync = gplake(
            &["--lake", lake, "sync", "--source", "examples/releases"],
            &env,
        );
        assert_exit(&sync, 0);
        let query = gplake(&["--lake", lake, "query", sql, "--format", "csv"], &env);
        assert_exit(&query, 0);
        answers.push(stdout(&query));
    }
    assert!(answers[0].lines().count() > 5, "{}", answers[0]);
    assert_eq!(answers[0], answers[1]);
    let again = gplake(
        &[
            "--lake",
            &lake,
            "-q",
            "sync",
            "--source",
            "examples/releases",
        ],
        &env,
    );
    assert_exit(&again, 0);
    assert_eq!(stdout(&again), "", "a second sync changes nothing");
    let ddl = gplake(&["--lake", &lake, "ddl", "--engine", "duckdb"], &env);
    assert_exit(&ddl, 0);
    assert!(
        stdout(&ddl).contains("TYPE AZURE")
            && stdout(&ddl).contains(&format!("az://{container}/lake/")),
        "{}",
        stdout(&ddl)
    );
}
