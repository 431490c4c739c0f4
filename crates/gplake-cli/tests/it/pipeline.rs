//! The build pipeline as a user meets it: a run killed at any point is repaired by one plain
//! rerun (a crash harness over named failpoints, local and on S3); `query` never writes;
//! scoped syncs build only their months and run side by side.
//!
//! Budget (CI, 2 cores, debug build): the crash harness runs 15 scenarios of three syncs
//! each; 120 s on a local lake and 300 s on the moto S3 server (measured 88 s and 236 s on
//! 2026-11-28). Check both when adding a failpoint.

use std::collections::BTreeMap;
use std::process::Output;

use gplake::catalog::{Kind, LAKE_TABLES};
use gplake_testkit::{Mirror, Population, release, release_with_duplicated_95, s3};

use crate::{assert_exit, gplake, stderr, stdout};

/// A lake to run `gplake` against: a local folder or an S3 bucket on the test server.
struct Target {
    url: String,
    env: Vec<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    fn local() -> Target {
        let dir = tempfile::tempdir().unwrap();
        Target {
            url: dir.path().join("lake").to_str().unwrap().to_string(),
            env: Vec::new(),
            _dir: Some(dir),
        }
    }

    /// A local lake synced from the shipped example releases.
    fn examples() -> Target {
        let target = Target::local();
        let synced = target.run(&["sync", "--source", "examples/releases"], &[]);
        assert!(synced.status.success(), "{}", stderr(&synced));
        target
    }

    fn s3(tag: &str) -> Target {
        Target {
            url: format!("s3://{}/lake", s3::new_bucket(tag)),
            env: s3::env(s3::endpoint()),
            _dir: None,
        }
    }

    fn run(&self, args: &[&str], extra_env: &[(String, String)]) -> Output {
        let mut all = vec!["--lake", self.url.as_str()];
        all.extend(args);
        let mut env = self.env.clone();
        env.extend(extra_env.iter().cloned());
        gplake(&all, &env)
    }

    fn open(&self) -> gplake::Lake {
        if self.url.starts_with("s3://") {
            gplake::Lake::open_with(&self.url, s3::options(s3::endpoint())).unwrap()
        } else {
            gplake::Lake::open(&self.url).unwrap()
        }
    }

    /// Everything a user can observe in the lake, with times and Delta versions left out.
    /// `quality` is a history (a rerun adds rows): what must agree are the verdicts in force.
    fn state(&self) -> BTreeMap<String, String> {
        let mut out = self.objects();
        let tables: Vec<String> = LAKE_TABLES
            .iter()
            .filter(|d| d.name != "quality")
            .map(rows_sql)
            .collect();
        let sql = format!("{} ORDER BY t, r", tables.join("\nUNION ALL\n"));
        for line in self.query(&sql).lines().skip(1) {
            let (table, row) = line.split_once(',').unwrap();
            let rows = out.entry(format!("table {table}")).or_default();
            rows.push_str(row);
            rows.push('\n');
        }
        out.insert("quality verdicts".into(), self.query(VERDICTS));
        out
    }

    /// Rows of a query, in process, as CSV.
    fn query(&self, sql: &str) -> String {
        let lake = self.open();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let options = gplake::query::QueryOptions::default();
        match runtime.block_on(gplake::query::run(&lake, sql, &options)) {
            Ok((schema, batches)) => {
                let mut out = Vec::new();
                let format = gplake::query::Format::Csv;
                gplake::query::write(&schema, &batches, format, &mut out, "rows").unwrap();
                String::from_utf8(out).unwrap()
            }
            Err(e) if e.to_string().contains("not found") => "absent".into(),
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    /// Bronze files (by content), manifests and month states (without times or versions).
    fn objects(&self) -> BTreeMap<String, String> {
        let lake = self.open();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let mut out = BTreeMap::new();
            for prefix in ["bronze", "_meta/build"] {
                let prefix = object_store::path::Path::from(prefix);
                for object in lake.list(&prefix).await.unwrap() {
                    let name = object.location.to_string();
                    if name.ends_with(".lock") {
                        continue;
                    }
                    let bytes = lake.get_bytes(&object.location).await.unwrap().unwrap();
                    let value = if name.ends_with(".json") {
                        let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                        strip_times(&mut json);
                        json.to_string()
                    } else {
                        format!("{} bytes, hash {:x}", bytes.len(), hash(&bytes))
                    };
                    out.insert(name, value);
                }
            }
            out
        })
    }
}

/// Every row of a table as one text, without its timestamp columns: `t` the table, `r` the row.
fn rows_sql(def: &gplake::catalog::TableDef) -> String {
    let columns: Vec<String> = def
        .columns
        .iter()
        .filter(|c| c.kind != Kind::Timestamp)
        .map(|c| format!("COALESCE(CAST({} AS VARCHAR), 'NULL')", c.name))
        .collect();
    format!(
        "SELECT '{}' AS t, concat_ws('|', {}) AS r FROM {}",
        def.name,
        columns.join(", "),
        def.name
    )
}

/// The quality verdicts in force: each month's latest build, and the latest series checks.
const VERDICTS: &str = "WITH m AS (SELECT snapshot_date, MAX(checked_at) AS at FROM quality WHERE rule NOT IN ('missing_months','month_over_month','practice_month_over_month') GROUP BY snapshot_date),
       s AS (SELECT MAX(checked_at) AS at FROM quality WHERE rule IN ('missing_months','month_over_month','practice_month_over_month'))
  SELECT q.snapshot_date, q.rule, q.subject, q.passed, q.message FROM quality q JOIN m ON q.snapshot_date = m.snapshot_date AND q.checked_at = m.at
  UNION ALL SELECT q.snapshot_date, q.rule, q.subject, q.passed, q.message FROM quality q JOIN s ON q.checked_at = s.at
  ORDER BY 1, 2, 3, 4, 5";

/// Where two texts part, with a little of each from there.
fn first_difference(got: &str, want: &str) -> String {
    let at = got
        .char_indices()
        .zip(want.chars())
        .find(|((_, a), b)| a != b)
        .map_or(got.len().min(want.len()), |((i, _), _)| i);
    let from = got[..at].char_indices().rev().nth(60).map_or(0, |(i, _)| i);
    let tail = |s: &str| {
        s.get(from..)
            .unwrap_or("")
            .chars()
            .take(160)
            .collect::<String>()
    };
    format!("\n got: …{}\nwant: …{}", tail(got), tail(want))
}

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Drops what differs between two equal runs: times, the Delta versions of commits, and the
/// stamps of local bronze files.
fn strip_times(json: &mut serde_json::Value) {
    match json {
        serde_json::Value::Object(map) => {
            // A bronze file's stamp (inode and times) is this lake's, like the times.
            map.retain(|k, _| !k.ends_with("_at") && k != "version" && k != "stamp");
            map.values_mut().for_each(strip_times);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// The months of the crash scenario: April good, May defective and then fixed by a reissue.
fn mirror() -> (Mirror, Population) {
    let pop = Population::new(11, 6);
    let mirror = Mirror::start(vec![release(&pop, (2024, 4)).unwrap()]);
    (mirror, pop)
}

fn sync_args(mirror: &Mirror) -> Vec<String> {
    [
        "sync",
        "--source",
        &mirror.series_url(),
        "--from",
        "2024-04",
        "--to",
        "2024-05",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["--backoff-ms".to_string(), "10".to_string()])
    .collect()
}

fn sync(target: &Target, mirror: &Mirror, env: &[(String, String)]) -> Output {
    let args = sync_args(mirror);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    target.run(&args, env)
}

/// The points a run can die at, in the order the fixing run meets them.
const FAILPOINTS: [&str; 14] = [
    "discover",
    "download",
    "bronze-file",
    "manifest",
    "commit:fact_gp_registered_patients",
    "commit:fact_gp_registered_patients_single_age",
    "commit:practice_snapshot",
    "quarantine",
    "month-quality",
    "state",
    "series",
    "dims",
    "gold",
    "derived-record",
];

/// Kept out, then fixed: the uninterrupted reference, or killed at `failpoint` and rerun.
fn scenario(target: &Target, (mirror, pop): &(Mirror, Population), failpoint: Option<&str>) {
    mirror.publish(release_with_duplicated_95(pop, (2024, 5)).unwrap());
    let first = sync(target, mirror, &[]);
    assert_exit(&first, 3);
    mirror.publish(release(pop, (2024, 5)).unwrap());
    if let Some(point) = failpoint {
        let env = [("GPLAKE_FAILPOINT".to_string(), point.to_string())];
        let killed = sync(target, mirror, &env);
        assert!(
            stderr(&killed).contains(&format!("failpoint {point} reached"))
                && !killed.status.success(),
            "{point} was not reached: {}{}",
            stdout(&killed),
            stderr(&killed)
        );
        if ["series", "dims", "gold"].contains(&point) {
            // Killed after May's commit, before its derived tables: the lake says so.
            let check = target.run(&["check"], &[]);
            assert_eq!(check.status.code(), Some(3), "{point}: {}", stdout(&check));
            assert!(
                stdout(&check).contains("derived tables behind silver"),
                "{}",
                stdout(&check)
            );
        }
    }
    let fixed = sync(target, mirror, &[]);
    assert_eq!(
        fixed.status.code(),
        Some(0),
        "{failpoint:?}: {}{}",
        stdout(&fixed),
        stderr(&fixed)
    );
    let status = target.run(&["status"], &[]);
    assert!(
        stdout(&status).contains("everything is current"),
        "{failpoint:?}: {}",
        stdout(&status)
    );
}

/// Every failpoint on `make()`'s lakes: killed there, one rerun, the same lake as without.
fn crash_harness(make: impl Fn(usize) -> Target) {
    let source = mirror();
    let reference = make(0);
    scenario(&reference, &source, None);
    let expected = reference.state();
    assert!(expected["table practice_list_size_monthly"].contains("2024-05-01"));
    for (i, point) in FAILPOINTS.into_iter().enumerate() {
        let target = make(i + 1);
        scenario(&target, &source, Some(point));
        let actual = target.state();
        for (key, want) in &expected {
            let got = actual.get(key).map(String::as_str).unwrap_or("(missing)");
            assert!(
                got == want,
                "killed at {point}: {key} differs: {}",
                first_difference(got, want)
            );
        }
        assert_eq!(
            actual.len(),
            expected.len(),
            "killed at {point}: other objects"
        );
    }
}

#[test]
fn a_run_killed_at_any_point_is_repaired_by_one_rerun() {
    crash_harness(|_| Target::local());
}

#[test]
fn a_run_killed_at_any_point_is_repaired_by_one_rerun_on_s3() {
    crash_harness(|i| Target::s3(&format!("crash{i}")));
}

/// Every file of a local lake with its bytes.
fn files(root: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn query_refuses_every_statement_that_would_write_and_the_lake_stays_byte_identical() {
    let target = Target::examples();
    let root = std::path::PathBuf::from(&target.url);
    let before = files(&root);
    let copy = root.parent().unwrap().join("copy.csv");
    let copy_sql = format!("COPY (SELECT 1) TO '{}'", copy.display());
    let refused = [
        (
            "INSERT INTO dim_age_band SELECT * FROM dim_age_band LIMIT 1",
            "INSERT",
        ),
        (
            "WITH x AS (SELECT * FROM dim_age_band) INSERT INTO dim_age_band SELECT * FROM x",
            "INSERT",
        ),
        ("UPDATE dim_age_band SET age_band = 'x'", "UPDATE"),
        ("DELETE FROM dim_age_band", "DELETE"),
        (copy_sql.as_str(), "COPY"),
        (
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE",
        ),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
        ("DROP TABLE dim_age_band", "DROP TABLE"),
        ("SET datafusion.execution.batch_size = 1", "SET"),
        (
            "EXPLAIN ANALYZE INSERT INTO dim_age_band SELECT * FROM dim_age_band",
            "INSERT",
        ),
        (
            "SELECT 1; DELETE FROM dim_age_band",
            "more than one statement",
        ),
    ];
    for (sql, what) in refused {
        let out = target.run(&["query", sql], &[]);
        assert_eq!(out.status.code(), Some(2), "{sql}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(
            message.starts_with(&format!("error: gplake query is read-only: {what}"))
                && message.lines().count() == 1,
            "{sql}: {message}"
        );
    }
    let passwd = target.run(&["query", "SELECT * FROM '/etc/passwd'"], &[]);
    assert_eq!(passwd.status.code(), Some(2));
    assert!(
        stderr(&passwd).contains("reads only the lake's tables and files given with --with"),
        "{}",
        stderr(&passwd)
    );
    assert!(!copy.exists(), "COPY wrote a file");
    assert!(files(&root) == before, "the lake changed");
}

#[test]
fn query_reads_sql_from_a_file_or_stdin_and_the_lake_as_it_was() {
    let target = Target::examples();
    let sql = "SELECT COUNT(DISTINCT snapshot_date) AS months FROM practice_snapshot";
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), sql).unwrap();
    let from_file = target.run(
        &[
            "query",
            "--file",
            file.path().to_str().unwrap(),
            "--format",
            "csv",
        ],
        &[],
    );
    assert_eq!(stdout(&from_file), "months\n6\n", "{}", stderr(&from_file));
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gplake"));
    command
        .args(["--lake", &target.url, "query", "--format", "csv"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let piped = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&piped.stdout), "months\n6\n");
    // Version 2 of practice_snapshot: its creation, then the first month committed.
    let old = target.run(
        &[
            "query",
            sql,
            "--as-of",
            "practice_snapshot=1",
            "--format",
            "csv",
        ],
        &[],
    );
    assert_eq!(stdout(&old), "months\n1\n", "{}", stderr(&old));
    let before = target.run(&["query", sql, "--as-of", "2001-01-01"], &[]);
    assert_eq!(before.status.code(), Some(2));
    assert!(
        stderr(&before).contains("no lake table existed at 2001-01-01"),
        "{}",
        stderr(&before)
    );
}

#[test]
fn a_runaway_query_is_stopped_by_its_limits() {
    let target = Target::examples();
    let big = "SELECT a.practice_code, COUNT(*) AS n FROM fact_gp_registered_patients_single_age a JOIN fact_gp_registered_patients_single_age b ON a.practice_code = b.practice_code GROUP BY 1";
    let slow = target.run(&["query", big, "--time-limit", "0"], &[]);
    assert_eq!(slow.status.code(), Some(1), "{}", stderr(&slow));
    assert!(
        stderr(&slow)
            .contains("ran for more than 0 s and was stopped (raise it with --time-limit)"),
        "{}",
        stderr(&slow)
    );
    let hungry = target.run(&["query", big, "--memory-limit", "64K"], &[]);
    assert_eq!(hungry.status.code(), Some(1), "{}", stderr(&hungry));
    assert!(
        stderr(&hungry)
            .contains("needs more than 65536 bytes of memory (raise it with --memory-limit)"),
        "{}",
        stderr(&hungry)
    );
    let fine = target.run(&["query", big, "--format", "csv"], &[]);
    assert!(fine.status.success(), "{}", stderr(&fine));
}

/// Months of silver in a lake, from `practice_snapshot`.
fn silver_months(target: &Target) -> String {
    let out = target.run(
        &[
            "query",
            "SELECT DISTINCT CAST(snapshot_date AS VARCHAR) AS m FROM practice_snapshot ORDER BY 1",
            "--format",
            "csv",
        ],
        &[],
    );
    stdout(&out)
}

fn scoped_syncs(target: &Target) {
    let pop = Population::new(12, 5);
    let mirror = Mirror::start(
        [(2024, 1), (2024, 2), (2024, 3)]
            .into_iter()
            .map(|m| release(&pop, m).unwrap())
            .collect(),
    );
    let source = mirror.series_url();
    let scoped = |month: &str| {
        target.run(
            &["sync", "--source", &source, "--from", month, "--to", month],
            &[],
        )
    };
    let one = scoped("2024-02");
    assert!(one.status.success(), "{}", stderr(&one));
    assert!(
        stdout(&one).contains("silver: 1 months built"),
        "{}",
        stdout(&one)
    );
    assert_eq!(silver_months(target), "m\n2024-02-01\n");
    // Two workers, one month each, at once: both succeed, and the lake ends in step.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| scoped("2024-01"));
        let b = s.spawn(|| scoped("2024-03"));
        (a.join().unwrap(), b.join().unwrap())
    });
    for out in [&a, &b] {
        assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
        assert!(
            stdout(out).contains("silver: 1 months built"),
            "{}",
            stdout(out)
        );
    }
    assert_eq!(
        silver_months(target),
        "m\n2024-01-01\n2024-02-01\n2024-03-01\n"
    );
    let check = target.run(&["check"], &[]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    let gold = target.run(
        &[
            "query",
            "SELECT COUNT(DISTINCT snapshot_date) AS n FROM practice_list_size_monthly",
            "--format",
            "csv",
        ],
        &[],
    );
    assert_eq!(stdout(&gold), "n\n3\n");
}

#[test]
fn scoped_syncs_build_only_their_months_and_run_side_by_side() {
    scoped_syncs(&Target::local());
}

#[test]
fn scoped_syncs_build_only_their_months_and_run_side_by_side_on_s3() {
    scoped_syncs(&Target::s3("scoped"));
}

/// A copy of the lake that an earlier gplake (writing `layout`) wrote for 2022-09: layout 1
/// by the first releases, layout 2 by the release before the organisation tables.
fn old_lake(layout: u32) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/lake-layout-{layout}"));
    let lake = dir.path().join("lake");
    copy_dir(&fixture, &lake);
    let url = lake.to_str().unwrap().to_string();
    (dir, url)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn a_lake_from_an_earlier_gplake_is_rebuilt_from_bronze_never_misread() {
    for layout in [1, 2] {
        earlier_lake_rebuilt(layout);
    }
}

fn earlier_lake_rebuilt(layout: u32) {
    let (_dir, lake) = old_lake(layout);
    let run = |args: &[&str]| {
        let mut all = vec!["--lake", lake.as_str()];
        all.extend(args);
        gplake(&all, &[])
    };
    let status = run(&["status"]);
    assert!(
        stdout(&status).contains(&format!("written by an earlier gplake (layout {layout})"))
            && stdout(&status).contains("next: gplake build"),
        "{}",
        stdout(&status)
    );
    let build = run(&["build"]);
    assert_exit(&build, 0);
    let text = stdout(&build);
    assert!(
        text.starts_with(&format!("the lake was written by an earlier gplake (layout {layout}): silver, dims and gold are rebuilt from bronze (layout 3)")),
        "{text}"
    );
    assert!(text.contains("2022-09  built"), "{text}");
    let info =
        std::fs::read_to_string(std::path::Path::new(&lake).join("_meta/lake.json")).unwrap();
    assert!(info.contains("\"layout\": 3"), "{info}");
    // The same figures the earlier gplake published (40,534 patients in 5 practices, 159 rows),
    // and the organisation rows it read but never stored.
    let sql = "SELECT (SELECT SUM(registered_population) FROM practice_list_size_monthly) AS patients, (SELECT COUNT(*) FROM practice_list_size_monthly) AS practices, (SELECT COUNT(*) FROM fact_gp_registered_patients) AS rows, (SELECT SUM(registered_population) FROM fact_org_registered_patients WHERE org_type = 'REGION') AS regions";
    let totals = run(&["query", sql, "--format", "csv"]);
    assert_eq!(
        stdout(&totals),
        "patients,practices,rows,regions\n40534,5,159,40534\n",
        "{}",
        stderr(&totals)
    );
    let again = run(&["build"]);
    assert!(
        !stdout(&again).contains("earlier gplake"),
        "{}",
        stdout(&again)
    );
    assert!(
        stdout(&again)
            .contains("0 months built (0 rows), 0 kept out by the quality gate, 1 unchanged"),
        "{}",
        stdout(&again)
    );
    assert!(stdout(&run(&["status"])).contains("everything is current"));
}

#[test]
fn a_lake_from_a_newer_gplake_is_refused_and_left_alone() {
    let (_dir, lake) = old_lake(1);
    let info = std::path::Path::new(&lake).join("_meta/lake.json");
    std::fs::write(&info, r#"{"layout": 99, "written_by": "gplake 9.0"}"#).unwrap();
    let before = files(std::path::Path::new(&lake));
    let build = gplake(&["--lake", &lake, "build"], &[]);
    assert_eq!(build.status.code(), Some(2), "{}", stderr(&build));
    assert!(
        stderr(&build).contains("written by a newer gplake (layout 99; this gplake knows up to 3)"),
        "{}",
        stderr(&build)
    );
    assert!(
        files(std::path::Path::new(&lake)) == before,
        "the lake changed"
    );
}
