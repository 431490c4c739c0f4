//! An independent reader (Python `deltalake` + pyarrow, `scripts/independent_totals.py`) reads
//! the tables gplake wrote, local and on S3, and finds the same totals.

use std::collections::BTreeMap;

use gplake::{Lake, Source};
use gplake_testkit::{Mirror, Population, release, s3};

use crate::support::{full_sync, local_lake, rows};

fn independent(lake_url: &str, env: &[(String, String)]) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/independent_totals.py");
    let mut command = std::process::Command::new("python3");
    command.arg(script).arg(lake_url);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("python3 runs");
    assert!(
        out.status.success(),
        "independent reader failed (pip install -r requirements-test.txt?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from the independent reader")
}

async fn ours(lake: &Lake, table: &str) -> BTreeMap<String, (u64, u64)> {
    let sql = format!(
        "SELECT CAST(snapshot_date AS VARCHAR) AS d, SUM(registered_population), COUNT(*) FROM {table} GROUP BY 1 ORDER BY 1"
    );
    rows(lake, &sql)
        .await
        .into_iter()
        .map(|r| {
            let c: Vec<&str> = r.split('\t').collect();
            (
                c[0].to_string(),
                (c[1].parse().unwrap(), c[2].parse().unwrap()),
            )
        })
        .collect()
}

pub(crate) async fn same_totals(lake: &Lake, url: &str, env: &[(String, String)]) {
    let theirs = independent(url, env);
    for table in [
        "fact_gp_registered_patients",
        "fact_gp_registered_patients_single_age",
        "fact_gp_registered_patients_lsoa",
    ] {
        let ours = ours(lake, table).await;
        assert!(!ours.is_empty(), "{table} is empty");
        let theirs: BTreeMap<String, (u64, u64)> = theirs[table]["months"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(d, v)| {
                (
                    d.clone(),
                    (v["total"].as_u64().unwrap(), v["rows"].as_u64().unwrap()),
                )
            })
            .collect();
        assert_eq!(theirs, ours, "{table}: the independent reader disagrees");
        assert!(theirs.len() >= 2);
    }
    assert!(
        theirs["fact_gp_registered_patients"]["licence"]
            .as_str()
            .unwrap()
            .contains("Open Government Licence v3.0")
    );
}

pub(crate) fn mirror() -> Mirror {
    let pop = Population::new(8, 8);
    Mirror::start(
        [(2016, 1), (2021, 1), (2026, 4)]
            .iter()
            .map(|&m| release(&pop, m).unwrap())
            .collect(),
    )
}

#[tokio::test]
async fn the_independent_reader_agrees_on_a_local_lake() {
    let mirror = mirror();
    let (dir, lake) = local_lake();
    full_sync(
        &lake,
        &Source::parse(&mirror.series_url()),
        "2016-01",
        "2026-04",
    )
    .await
    .unwrap();
    same_totals(&lake, dir.path().to_str().unwrap(), &[]).await;
}

#[tokio::test]
async fn the_independent_reader_agrees_on_an_s3_lake() {
    let mirror = mirror();
    let bucket = tokio::task::spawn_blocking(|| s3::new_bucket("reader"))
        .await
        .unwrap();
    let url = format!("s3://{bucket}/lake");
    let lake = Lake::open_with(&url, s3::options(s3::endpoint())).unwrap();
    full_sync(
        &lake,
        &Source::parse(&mirror.series_url()),
        "2016-01",
        "2026-04",
    )
    .await
    .unwrap();
    same_totals(&lake, &url, &s3::env(s3::endpoint())).await;
}
