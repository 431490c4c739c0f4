//! The analysts' side as they run it: `query` in three formats and with `--with`, `ddl` for
//! three engines (golden files; DuckDB's statements run in a real DuckDB), plots.

use std::path::Path;

use crate::{gplake, repo_root, stderr, stdout};

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{name} differs from its golden file (UPDATE_GOLDEN=1 to accept):\n{actual}"
    );
}

/// A lake synced from the shipped examples, shared by the tests of this module.
fn example_lake() -> &'static str {
    static LAKE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    LAKE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = gplake(
            &[
                "--lake",
                dir.path().to_str().unwrap(),
                "sync",
                "--source",
                "examples/releases",
            ],
            &[],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        dir
    })
    .path()
    .to_str()
    .unwrap()
}

const TOTALS: &str = "SELECT CAST(snapshot_date AS VARCHAR) AS month, SUM(registered_population) AS total, COUNT(*) AS n FROM fact_gp_registered_patients GROUP BY 1 ORDER BY 1";

fn query(args: &[&str]) -> String {
    let mut all = vec!["--lake", example_lake(), "query"];
    all.extend(args);
    let out = gplake(&all, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn ddl_for_every_engine_matches_its_golden_file() {
    for engine in ["athena", "spark", "duckdb"] {
        let out = gplake(
            &["--lake", "s3://nhs-lake/gp", "ddl", "--engine", engine],
            &[],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        golden(&format!("ddl_{engine}.sql"), &stdout(&out));
    }
    let athena_local = gplake(
        &["--lake", example_lake(), "ddl", "--engine", "athena"],
        &[],
    );
    assert_eq!(athena_local.status.code(), Some(2));
    assert!(stderr(&athena_local).contains("not an s3:// lake"));
}

#[test]
fn duckdb_runs_the_ddl_and_agrees_with_gplake_query() {
    let out = gplake(
        &["--lake", example_lake(), "ddl", "--engine", "duckdb"],
        &[],
    );
    let file = Path::new(example_lake()).join("register.sql");
    std::fs::write(&file, stdout(&out)).unwrap();
    let duck = std::process::Command::new("python3")
        .arg(repo_root().join("scripts/duckdb_totals.py"))
        .arg(&file)
        .output()
        .expect("python3");
    assert!(
        duck.status.success(),
        "DuckDB failed (pip install -r requirements-test.txt?): {}",
        String::from_utf8_lossy(&duck.stderr)
    );
    let duck: serde_json::Value = serde_json::from_slice(&duck.stdout).unwrap();
    let ours: serde_json::Value =
        serde_json::from_str(&query(&[TOTALS, "--format", "json"])).unwrap();
    let ours = ours.as_array().unwrap();
    assert_eq!(ours.len(), 5);
    for row in ours {
        let month = row["month"].as_str().unwrap();
        assert_eq!(duck["months"][month]["total"], row["total"], "{month}");
        assert_eq!(duck["months"][month]["rows"], row["n"], "{month}");
    }
    let gold: u64 = ours.iter().map(|r| r["total"].as_u64().unwrap()).sum();
    // January 2021 has only the practice totals file: list sizes, no age facts.
    let january_2021 = 273_983;
    assert_eq!(
        duck["gold_total"].as_u64().unwrap(),
        gold + january_2021,
        "gold list sizes sum to the facts, plus the month published as totals only"
    );
}

#[test]
fn query_in_three_formats_and_to_files() {
    let csv = query(&[TOTALS, "--format", "csv"]);
    assert!(
        csv.starts_with("month,total,n\n2016-01-01,38110,158\n"),
        "{csv}"
    );
    let table = query(&[TOTALS, "--format", "table"]);
    assert!(table.contains("| 2016-01-01 | 38110 | 158 |"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&query(&[TOTALS, "--format", "json"])).unwrap();
    assert_eq!(json[0]["total"], 38110);
    let dir = tempfile::tempdir().unwrap();
    for ext in ["csv", "json", "parquet"] {
        let file = dir.path().join(format!("totals.{ext}"));
        query(&[TOTALS, "--output", file.to_str().unwrap()]);
        assert!(std::fs::metadata(&file).unwrap().len() > 20, "{ext}");
    }
    let parquet = dir.path().join("totals.parquet");
    let again = query(&[
        "SELECT SUM(total) AS s FROM t",
        "--with",
        &format!("t={}", parquet.display()),
        "--format",
        "csv",
    ]);
    assert_eq!(again, "s\n186067\n");
}

#[test]
fn bad_queries_are_one_clear_line_with_the_nearest_names() {
    let lake = example_lake();
    let out = gplake(
        &[
            "--lake",
            lake,
            "query",
            "SELECT * FROM fact_gp_registerd_patients",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let first = stderr(&out).lines().next().unwrap().to_string();
    assert!(
        first.contains("fact_gp_registerd_patients")
            && first.contains("did you mean 'fact_gp_registered_patients'"),
        "{first}"
    );
    assert!(stderr(&out).contains("available tables:\n  dim_age_band("));
    let out = gplake(
        &[
            "--lake",
            lake,
            "query",
            "SELECT practise_code FROM fact_gp_registered_patients",
        ],
        &[],
    );
    assert!(
        stderr(&out)
            .lines()
            .next()
            .unwrap()
            .contains("practise_code")
    );
    let out = gplake(
        &[
            "--lake",
            lake,
            "query",
            "SELECT 1",
            "--with",
            "w=examples/missing.csv",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "error: --with w=examples/missing.csv: no such file"
    );
    let bad = Path::new(lake).join("bad.parquet");
    std::fs::write(&bad, b"not parquet").unwrap();
    let out = gplake(
        &[
            "--lake",
            lake,
            "query",
            "SELECT 1",
            "--with",
            &format!("w={}", bad.display()),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(&format!("error: --with w={}: ", bad.display())),
        "{}",
        stderr(&out)
    );
}

/// Decodes a PNG: (width, height, share of pixels that are not white).
fn png_facts(path: &Path) -> (u32, u32, f64) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    let pixels = bytes.chunks(channels).count();
    let coloured = bytes
        .chunks(channels)
        .filter(|p| p.iter().take(3).any(|c| *c < 240))
        .count();
    (info.width, info.height, coloured as f64 / pixels as f64)
}

#[test]
fn plots_are_real_svg_and_png_files() {
    let lake = example_lake();
    let dir = tempfile::tempdir().unwrap();
    let charts: [(&str, Vec<&str>, &str); 2] = [
        (
            "trend",
            vec!["trend", "--national"],
            "Registered patients, England — Jan 2016 to Apr 2026",
        ),
        (
            "pyramid",
            vec!["pyramid", "--month", "2026-04", "--region", "Y56"],
            "Registered patients by age and sex, region Y56 — Apr 2026",
        ),
    ];
    for (name, args, title) in charts {
        for ext in ["svg", "png"] {
            let file = dir.path().join(format!("{name}.{ext}"));
            let mut all = vec!["--lake", lake, "plot"];
            all.extend(args.iter());
            all.extend(["-o", file.to_str().unwrap()]);
            let out = gplake(&all, &[]);
            assert!(out.status.success(), "{}", stderr(&out));
            if ext == "png" {
                let (w, h, coloured) = png_facts(&file);
                assert_eq!((w, h), (1100, 650));
                assert!(
                    coloured > 0.05,
                    "{name}.png is nearly blank ({coloured:.3} coloured)"
                );
            } else {
                let svg = std::fs::read_to_string(&file).unwrap();
                assert!(svg.starts_with("<svg"), "{name}.svg");
                assert!(svg.contains(title), "{name}.svg has its title");
                assert!(svg.contains("Source: NHS England, Patients Registered at a GP Practice"));
                let marks = svg.matches("<polyline").count()
                    + svg.matches("<rect").count()
                    + svg.matches("<circle").count();
                assert!(marks > 20, "{name}.svg has {marks} marks");
            }
        }
    }
    let practice = gplake(
        &[
            "--lake",
            lake,
            "plot",
            "trend",
            "--practice",
            "A81002",
            "-o",
            dir.path().join("p.svg").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(practice.status.code(), Some(2));
    assert_eq!(
        stderr(&practice).trim(),
        "error: practice A81002 is not in the lake; did you mean A81001?"
    );
    let month = gplake(
        &[
            "--lake",
            lake,
            "plot",
            "pyramid",
            "--month",
            "2025-01",
            "-o",
            dir.path().join("m.png").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        stderr(&month).trim(),
        "error: month 2025-01 is not in the lake; months held: 2016-01, 2018-03, 2022-09, 2024-04, 2026-04"
    );
}

/// Splits a shell command line (double quotes only, as the README uses).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[test]
fn the_readme_join_runs_exactly_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let command = readme
        .lines()
        .find(|l| l.starts_with("gplake --lake ./lake query") && l.contains("--with"))
        .expect("the join command in the README");
    let mut args = shell_words(command);
    assert_eq!(args.remove(0), "gplake");
    let lake = args.iter().position(|a| a == "./lake").unwrap();
    args[lake] = example_lake().to_string();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = gplake(&refs, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = readme
        .split(command)
        .nth(1)
        .unwrap()
        .split("```\n")
        .nth(2)
        .unwrap();
    assert_eq!(
        stdout(&out),
        shown,
        "the README shows the output of its command"
    );
}

#[test]
fn query_on_an_s3_lake_agrees_with_the_independent_reader_in_every_format() {
    use gplake_testkit::s3;
    let bucket = s3::new_bucket("query");
    let lake = format!("s3://{bucket}/lake");
    let env = s3::env(s3::endpoint());
    let sync = gplake(
        &["--lake", &lake, "sync", "--source", "examples/releases"],
        &env,
    );
    assert!(sync.status.success(), "{}", stderr(&sync));
    let run = |format: &str| {
        let out = gplake(
            &["--lake", &lake, "query", TOTALS, "--format", format],
            &env,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let mut command = std::process::Command::new("python3");
    command
        .arg(repo_root().join("scripts/independent_totals.py"))
        .arg(&lake);
    for (k, v) in &env {
        command.env(k, v);
    }
    let theirs = command.output().unwrap();
    assert!(
        theirs.status.success(),
        "{}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&theirs.stdout).unwrap();
    let months = theirs["fact_gp_registered_patients"]["months"]
        .as_object()
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    let csv = run("csv");
    let table = run("table");
    assert_eq!(json.as_array().unwrap().len(), months.len());
    for (month, v) in months {
        let (total, n) = (v["total"].as_u64().unwrap(), v["rows"].as_u64().unwrap());
        let row = json
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["month"] == month.as_str())
            .unwrap();
        assert_eq!(
            (row["total"].as_u64().unwrap(), row["n"].as_u64().unwrap()),
            (total, n),
            "{month}"
        );
        assert!(csv.contains(&format!("{month},{total},{n}\n")), "{csv}");
        assert!(table.contains(&format!("| {month} | {total} ")), "{table}");
    }
}

#[test]
fn check_max_age_exits_3_when_the_newest_month_is_older_than_allowed() {
    let fresh = gplake(
        &["--lake", example_lake(), "check", "--max-age", "100000"],
        &[],
    );
    assert_eq!(fresh.status.code(), Some(0), "{}", stdout(&fresh));
    assert!(!stdout(&fresh).contains("--max-age"));
    // The newest example month is 2026-04: more than 30 days old from 2026-05 on.
    let stale = gplake(&["--lake", example_lake(), "check", "--max-age", "30"], &[]);
    assert_eq!(stale.status.code(), Some(3), "{}", stdout(&stale));
    assert!(
        stdout(&stale).contains("error: the newest month in silver is 2026-04"),
        "{}",
        stdout(&stale)
    );
    let json = gplake(
        &[
            "--lake",
            example_lake(),
            "--json",
            "check",
            "--max-age",
            "30",
        ],
        &[],
    );
    assert_eq!(json.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert!(report["stale"].as_str().unwrap().contains("2026-04"));
}
