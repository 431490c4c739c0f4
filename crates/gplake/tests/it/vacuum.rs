//! `gplake vacuum`: replaced data files and a killed run's orphans go once they are older
//! than the retention, nothing a current version reads goes, a dry run removes nothing,
//! checkpoints are written (every 5 commits, and by vacuum), and an independent reader
//! still agrees afterwards.

use chrono::{Duration, Utc};
use gplake::vacuum::{VacuumError, VacuumOptions};
use gplake::{BuildOptions, FixedClock, Source};

use crate::reader::{mirror, same_totals};
use crate::support::{clock, full_sync, local_lake, parquet_files, rows};

const TOTALS: &str = "SELECT CAST(snapshot_date AS VARCHAR), SUM(registered_population), COUNT(*) FROM fact_gp_registered_patients GROUP BY 1 ORDER BY 1";

/// A local lake synced from the reader tests' mirror (kept alive with it).
async fn synced_lake() -> (gplake_testkit::Mirror, tempfile::TempDir, gplake::Lake) {
    let mirror = mirror();
    let (dir, lake) = local_lake();
    let source = Source::parse(&mirror.series_url());
    full_sync(&lake, &source, "2016-01", "2026-04")
        .await
        .unwrap();
    (mirror, dir, lake)
}

fn force() -> BuildOptions {
    BuildOptions {
        force: true,
        ..BuildOptions::default()
    }
}

#[tokio::test]
async fn vacuum_removes_only_what_no_version_in_the_retention_reads() {
    let (_mirror, dir, lake) = synced_lake().await;
    gplake::build(&lake, &clock(), &force()).await.unwrap();
    let fact = dir.path().join("silver/fact_gp_registered_patients");
    let orphan = fact.join("snapshot_date=2016-01-01/part-killed-run.parquet");
    std::fs::copy(&parquet_files(&fact)[0], &orphan).unwrap();
    let before = rows(&lake, TOTALS).await;
    let files_before = parquet_files(dir.path()).len();

    // Today, nothing is old enough to go.
    let today = FixedClock::new(Utc::now());
    let report = gplake::vacuum::vacuum(&lake, &today, &VacuumOptions::default())
        .await
        .unwrap();
    assert_eq!(report.files_removed(), 0, "{report:?}");
    assert_eq!(report.tables.len(), 14);
    assert!(report.tables.iter().all(|t| t.checkpoint.is_some()));
    assert!(fact.join("_delta_log/_last_checkpoint").exists());

    // 31 days on, a dry run names the replaced files and the orphan but removes nothing.
    let later = FixedClock::new(Utc::now() + Duration::days(31));
    let dry = VacuumOptions {
        dry_run: true,
        ..VacuumOptions::default()
    };
    let listed = gplake::vacuum::vacuum(&lake, &later, &dry).await.unwrap();
    assert!(listed.files_removed() > 1, "{listed:?}");
    assert!(
        listed.tables[0]
            .files_removed
            .iter()
            .any(|f| f.ends_with("part-killed-run.parquet")),
        "{listed:?}"
    );
    assert_eq!(parquet_files(dir.path()).len(), files_before);

    // The real run removes exactly those, and every current figure stays.
    let done = gplake::vacuum::vacuum(&lake, &later, &VacuumOptions::default())
        .await
        .unwrap();
    assert_eq!(done.files_removed(), listed.files_removed());
    assert!(!orphan.exists());
    assert_eq!(
        parquet_files(dir.path()).len(),
        files_before - done.files_removed()
    );
    assert_eq!(rows(&lake, TOTALS).await, before);
    same_totals(&lake, dir.path().to_str().unwrap(), &[]).await;

    // Log entries as old as the retention went too: time travel before it is refused by name.
    assert!(
        done.tables.iter().all(|t| t.log_entries_removed > 0),
        "{done:?}"
    );
    assert!(!fact.join("_delta_log/00000000000000000000.json").exists());
    let old = gplake::query::QueryOptions {
        as_of: gplake::query::Pin::At("2020-01-01T00:00:00Z".parse().unwrap()),
        ..Default::default()
    };
    let err = gplake::query::run(&lake, TOTALS, &old).await.unwrap_err();
    assert!(
        err.to_string().contains("removed by `gplake vacuum`"),
        "{err}"
    );

    // And a second vacuum finds nothing more.
    let again = gplake::vacuum::vacuum(&lake, &later, &VacuumOptions::default())
        .await
        .unwrap();
    assert_eq!(again.files_removed(), 0);
}

#[tokio::test]
async fn a_checkpoint_is_written_every_five_commits() {
    let (_mirror, dir, lake) = synced_lake().await;
    let log = dir
        .path()
        .join("silver/fact_gp_registered_patients/_delta_log");
    while !log.join("00000000000000000010.json").exists() {
        gplake::build(&lake, &clock(), &force()).await.unwrap();
    }
    for version in 1..=10 {
        let checkpoint = log.join(format!("{version:020}.checkpoint.parquet"));
        assert_eq!(checkpoint.exists(), version % 5 == 0, "version {version}");
    }
    same_totals(&lake, dir.path().to_str().unwrap(), &[]).await;
}

#[tokio::test]
async fn a_retention_under_a_week_is_refused() {
    let (_dir, lake) = local_lake();
    let options = VacuumOptions {
        retention_days: 3,
        dry_run: false,
    };
    let err = gplake::vacuum::vacuum(&lake, &clock(), &options)
        .await
        .unwrap_err();
    assert!(matches!(err, VacuumError::RetentionTooShort { days: 3 }));
    assert!(err.to_string().contains("at least 7 days"), "{err}");
    assert_eq!(gplake::Error::from(err).kind(), gplake::ErrorKind::Refused);
}
