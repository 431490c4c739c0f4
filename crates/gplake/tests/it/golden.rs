//! Golden tests: the real published samples through the whole pipeline, rendered as text and
//! compared with a checked-in file (`UPDATE_GOLDEN=1` rewrites it after a deliberate change).

use gplake::Source;
use gplake_testkit::fixtures;

use crate::support::{full_sync, local_lake, rows};

fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(10)
            .map(|(i, (e, a))| format!("line {}:\n  expected: {e}\n  actual:   {a}", i + 1))
            .collect();
        panic!(
            "{name} differs from the golden file ({} vs {} lines):\n{}\n(UPDATE_GOLDEN=1 to accept)",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

#[tokio::test]
async fn the_real_samples_parse_and_reconcile() {
    let src = tempfile::tempdir().unwrap();
    for (_, name, bytes) in fixtures::samples() {
        std::fs::write(src.path().join(&name), bytes).unwrap();
    }
    let (_dir, lake) = local_lake();
    let report = full_sync(&lake, &Source::Dir(src.path().into()), "2013-10", "2026-11")
        .await
        .unwrap();
    let build = report.build.unwrap();
    let mut text = String::new();
    for m in &build.months {
        text.push_str(&format!(
            "{} committed={} rows={:?}\n",
            m.month, m.committed, m.rows
        ));
    }
    for (title, sql) in [
        (
            "quinary by practice",
            "SELECT CAST(snapshot_date AS VARCHAR) AS d, practice_code, sex, COUNT(*), SUM(registered_population) FROM fact_gp_registered_patients GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        ),
        (
            "practice snapshot",
            "SELECT CAST(snapshot_date AS VARCHAR) AS d, practice_code, practice_name, practice_postcode, pcn_code, sub_icb_code, icb_code, region_code, attributes_from, registered_population, male, female, total_from FROM practice_snapshot ORDER BY 1, 2",
        ),
        (
            "organisations",
            "SELECT org_type, org_code, org_name, ons_code, parent_code, CAST(valid_from AS VARCHAR) AS f FROM dim_organisation ORDER BY 1, 2",
        ),
        (
            "quality",
            "SELECT CAST(snapshot_date AS VARCHAR) AS d, rule, severity, passed, skipped, table_name, message FROM quality ORDER BY 1, 2, 7",
        ),
        (
            "files",
            "SELECT CAST(snapshot_date AS VARCHAR) AS d, source_file, family, rows_read, rows_written, rows_zero, rows_subtotal, rows_quarantined FROM files ORDER BY 1, 2",
        ),
    ] {
        text.push_str(&format!("\n## {title}\n"));
        for row in rows(&lake, sql).await {
            text.push_str(&row);
            text.push('\n');
        }
    }
    golden("real_samples.txt", &text);
}
