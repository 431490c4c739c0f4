//! Gold tables: list sizes with month-over-month change and quality flags, and organisation
//! populations as published and restated to the latest geography.

use gplake::Source;
use gplake_testkit::population::{AGES, SEXES};
use gplake_testkit::{Mirror, Population, release};

use object_store::path::Path;

use crate::support::{clock, full_sync, local_lake, rows};

fn total(pop: &Population, index: usize, month: (i32, u32)) -> u64 {
    SEXES
        .iter()
        .flat_map(|&s| AGES.map(move |a| (s, a)))
        .map(|(s, a)| pop.count(index, month, s, a))
        .sum()
}

#[tokio::test]
async fn list_sizes_change_and_flags() {
    let pop = Population::new(31, 8);
    let months = [(2026, 2), (2026, 3), (2026, 4)];
    let mirror = Mirror::start(months.iter().map(|&m| release(&pop, m).unwrap()).collect());
    let (_dir, lake) = local_lake();
    full_sync(
        &lake,
        &Source::parse(&mirror.series_url()),
        "2026-02",
        "2026-04",
    )
    .await
    .unwrap();
    let p = pop
        .practices((2026, 3))
        .into_iter()
        .find(|p| p.index == 0)
        .unwrap();
    let got = rows(&lake, &format!("SELECT CAST(snapshot_date AS VARCHAR) AS d, registered_population, male + female, CAST(change_from_last_month AS VARCHAR) FROM practice_list_size_monthly WHERE practice_code = '{}' ORDER BY d", p.code)).await;
    let t = |m| total(&pop, 0, m);
    assert_eq!(
        got,
        [
            format!("2026-02-01\t{}\t{}\tNULL", t((2026, 2)), t((2026, 2))),
            format!(
                "2026-03-01\t{}\t{}\t{}",
                t((2026, 3)),
                t((2026, 3)),
                t((2026, 3)) as i64 - t((2026, 2)) as i64
            ),
            format!(
                "2026-04-01\t{}\t{}\t{}",
                t((2026, 4)),
                t((2026, 4)),
                t((2026, 4)) as i64 - t((2026, 3)) as i64
            ),
        ]
    );
    let tiny = pop
        .practices((2026, 3))
        .into_iter()
        .find(|p| p.index == pop.tiny_index())
        .unwrap();
    let flags = rows(&lake, &format!("SELECT DISTINCT quality_flags FROM practice_list_size_monthly WHERE practice_code = '{}'", tiny.code)).await;
    assert_eq!(flags, ["small_practice"]);
}

#[tokio::test]
async fn org_populations_as_published_and_restated() {
    let pop = Population::new(32, 12);
    let months = [(2026, 3), (2026, 4)];
    let mirror = Mirror::start(months.iter().map(|&m| release(&pop, m).unwrap()).collect());
    let (_dir, lake) = local_lake();
    full_sync(
        &lake,
        &Source::parse(&mirror.series_url()),
        "2026-03",
        "2026-04",
    )
    .await
    .unwrap();
    // ICB 0 changed its code in April 2026: March as published says QAA, restated says D7T5G.
    let march = |basis: &str| {
        format!(
            "SELECT org_code, registered_population FROM org_population_monthly WHERE snapshot_date = DATE '2026-03-01' AND basis = '{basis}' AND org_type = 'ICB' ORDER BY 1"
        )
    };
    let published = rows(&lake, &march("as_published")).await;
    let restated = rows(&lake, &march("latest_geography")).await;
    assert!(
        published.iter().any(|r| r.starts_with("QAA\t")),
        "{published:?}"
    );
    assert!(
        restated.iter().any(|r| r.starts_with("D7T5G\t"))
            && !restated.iter().any(|r| r.starts_with("QAA\t")),
        "{restated:?}"
    );
    let value = |rows: &[String], code: &str| {
        rows.iter()
            .find(|r| r.starts_with(&format!("{code}\t")))
            .unwrap()
            .split('\t')
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(
        value(&published, "QAA"),
        value(&restated, "D7T5G"),
        "the same practices, restated"
    );
    // Regions add up to England on both bases.
    let england: u64 = pop
        .practices((2026, 3))
        .iter()
        .map(|p| total(&pop, p.index, (2026, 3)))
        .sum();
    for basis in ["as_published", "latest_geography"] {
        let sum = rows(&lake, &format!("SELECT SUM(registered_population) FROM org_population_monthly WHERE snapshot_date = DATE '2026-03-01' AND basis = '{basis}' AND org_type = 'REGION'")).await;
        assert_eq!(sum, [england.to_string()], "{basis}");
    }
    let names = rows(
        &lake,
        "SELECT COUNT(*) FROM org_population_monthly WHERE org_name IS NULL",
    )
    .await;
    assert_eq!(names, ["0"], "every organisation has a name");
}

#[tokio::test]
async fn practice_jumps_between_months_are_warned_about() {
    // Two unrelated populations in consecutive months: most practices jump.
    let (a, b) = (Population::new(1, 8), Population::new(2, 8));
    let mirror = Mirror::start(vec![
        release(&a, (2026, 3)).unwrap(),
        release(&b, (2026, 4)).unwrap(),
    ]);
    let (_dir, lake) = local_lake();
    let report = full_sync(
        &lake,
        &Source::parse(&mirror.series_url()),
        "2026-03",
        "2026-04",
    )
    .await
    .unwrap();
    let build = report.build.unwrap();
    assert!(!build.gate_failed(), "jumps are warnings, not failures");
    let jumps: Vec<_> = build
        .series
        .iter()
        .filter(|r| r.rule.as_str() == "practice_month_over_month" && !r.passed)
        .collect();
    assert!(!jumps.is_empty());
    assert!(
        jumps
            .iter()
            .all(|r| r.message.contains("in 2026-04") && r.expected.is_some()),
        "{jumps:?}"
    );
    let stored = rows(
        &lake,
        "SELECT COUNT(*) FROM quality WHERE rule = 'practice_month_over_month' AND NOT passed",
    )
    .await;
    assert_eq!(stored, [jumps.len().to_string()]);
    // The series rules read each month's files themselves: the same jumps and totals as
    // the rules say in SQL over the table.
    let by_sql = rows(
        &lake,
        "SELECT COUNT(*) FROM practice_snapshot a JOIN practice_snapshot b \
        ON a.practice_code = b.practice_code AND b.snapshot_date = DATE '2026-04-01' \
        WHERE a.snapshot_date = DATE '2026-03-01' \
        AND abs(b.registered_population - a.registered_population) > 500 \
        AND abs(b.registered_population - a.registered_population) * 5 > a.registered_population",
    )
    .await;
    assert_eq!(by_sql, [jumps.len().to_string()]);
    let totals = rows(
        &lake,
        "SELECT CAST(SUM(registered_population) AS VARCHAR) FROM practice_snapshot \
        GROUP BY snapshot_date ORDER BY snapshot_date",
    )
    .await;
    let moved = build
        .series
        .iter()
        .find(|r| r.rule.as_str() == "month_over_month" && !r.passed)
        .expect("two unrelated populations move the national total");
    assert_eq!(
        [moved.expected, moved.actual].map(|n| n.unwrap().to_string()),
        [totals[0].clone(), totals[1].clone()],
        "{moved:?}"
    );
}

#[tokio::test]
async fn list_sizes_come_from_the_published_totals_whatever_files_a_month_has() {
    let (_dir, lake) = local_lake();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/releases");
    full_sync(&lake, &Source::parse(examples), "2016-01", "2026-04")
        .await
        .unwrap();
    let sql = "SELECT CAST(snapshot_date AS VARCHAR), total_from, COUNT(*), SUM(registered_population), COUNT(male), COUNT(female), SUM(male) + SUM(female) = SUM(registered_population) FROM practice_list_size_monthly GROUP BY 1, 2 ORDER BY 1";
    // January 2021 has only the real practice totals file: 29 practices, 273,983 patients
    // (the sum of its NUMBER_OF_PATIENTS), no split by sex (NULL, never 0).
    assert_eq!(
        rows(&lake, sql).await,
        vec![
            "2016-01-01\twide_total\t4\t38110\t4\t4\ttrue",
            "2018-03-01\tpractice_totals\t5\t38858\t5\t5\ttrue",
            "2021-01-01\tpractice_totals\t29\t273983\t0\t0\tNULL",
            "2022-09-01\tpractice_totals\t5\t40534\t5\t5\ttrue",
            "2024-04-01\tpractice_totals\t5\t33924\t5\t5\ttrue",
            "2026-04-01\tpractice_totals\t5\t34641\t5\t5\ttrue",
        ]
    );
    let snapshot = rows(
        &lake,
        "SELECT practice_code, registered_population, male, total_from FROM practice_snapshot WHERE snapshot_date = DATE '2021-01-01' ORDER BY 1 LIMIT 1",
    )
    .await;
    assert_eq!(snapshot.len(), 1);
    assert!(
        snapshot[0].ends_with("\tNULL\tpractice_totals"),
        "{snapshot:?}"
    );
    // The organisation figures of such a month give no split by sex either, and every
    // month's equal their definition.
    let order = "ORDER BY snapshot_date, basis, org_type, org_code";
    let made = rows(
        &lake,
        &format!("SELECT * FROM org_population_monthly {order}"),
    )
    .await;
    let by_sql = format!("SELECT * FROM ({}) {order}", org_figures_by_sql());
    assert_eq!(made, rows(&lake, &by_sql).await);
    let unsplit = "SELECT COUNT(*) FROM org_population_monthly WHERE basis <> 'published' AND male IS NULL AND snapshot_date = DATE '2021-01-01'";
    assert_ne!(rows(&lake, unsplit).await, ["0"]);
}

#[tokio::test]
async fn org_figures_are_made_again_only_for_changed_months_and_equal_a_whole_derivation() {
    let pop = Population::new(33, 8);
    let mirror = Mirror::start(
        [(2026, 2), (2026, 3), (2026, 4)]
            .iter()
            .map(|&m| release(&pop, m).unwrap())
            .collect(),
    );
    let source = Source::parse(&mirror.series_url());
    let written = |report: gplake::SyncReport| report.build.unwrap().derived.org_months_written;
    let day = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let list_sizes = |report: &gplake::SyncReport| {
        let build = report.build.as_ref().unwrap();
        build.derived.list_size_months_derived.clone()
    };
    let (_dir, lake) = local_lake();
    let first = full_sync(&lake, &source, "2026-02", "2026-04")
        .await
        .unwrap();
    assert_eq!(list_sizes(&first), None, "a first derivation derives all");
    assert_eq!(written(first), None, "a first derivation makes every month");
    let files = |lake: &gplake::Lake| list_size_files(lake);
    assert_eq!(files(&lake), 1);

    mirror.publish(release(&pop, (2026, 5)).unwrap());
    let added = full_sync(&lake, &source, "2026-02", "2026-05")
        .await
        .unwrap();
    assert_eq!(list_sizes(&added), Some(vec![day("2026-05-01")]));
    assert_eq!(
        files(&lake),
        2,
        "May's list sizes are added in a file of their own"
    );
    assert_eq!(written(added), Some(vec![day("2026-05-01")]));

    // March republished with other figures: the list sizes of March and April (its change
    // from March) are derived again, and the organisation figures whole.
    let other = Population::new(34, 8);
    mirror.publish(release(&other, (2026, 3)).unwrap());
    let revised = full_sync(&lake, &source, "2026-02", "2026-05")
        .await
        .unwrap();
    assert_eq!(
        list_sizes(&revised),
        Some(["2026-02-01", "2026-03-01", "2026-04-01"].map(day).to_vec()),
        "the file holding February to April is written again"
    );
    assert_eq!(
        written(revised),
        None,
        "March changed under the dims, which are derived again: every month is made again"
    );
    let march = rows(&lake, "SELECT SUM(registered_population) FROM org_population_monthly WHERE snapshot_date = DATE '2026-03-01' AND basis = 'published' AND org_type = 'REGION'").await;
    let england: u64 = other
        .practices((2026, 3))
        .iter()
        .map(|p| total(&other, p.index, (2026, 3)))
        .sum();
    assert_eq!(march, [england.to_string()], "March as republished");
    let march = rows(&lake, "SELECT SUM(registered_population) FROM org_population_monthly WHERE snapshot_date = DATE '2026-03-01' AND basis = 'as_published' AND org_type = 'REGION'").await;
    assert_eq!(
        march,
        [england.to_string()],
        "March summed again from its practices"
    );

    // A lake that saw only the final releases: the same tables, but for the flag of the
    // republished figures, which only the first lake saw.
    let (_whole_dir, whole) = local_lake();
    full_sync(&whole, &source, "2026-02", "2026-05")
        .await
        .unwrap();
    // The same lake derived again whole: the very same list sizes, flags and all, and the
    // very same organisation figures (each basis summed again or kept as the log allowed).
    let sql = "SELECT * FROM practice_list_size_monthly ORDER BY snapshot_date, practice_code";
    let org =
        "SELECT * FROM org_population_monthly ORDER BY snapshot_date, basis, org_type, org_code";
    let incremental = [rows(&lake, sql).await, rows(&lake, org).await];
    rederive_whole(&lake).await;
    assert_eq!(incremental[0], rows(&lake, sql).await, "flags and all");
    assert_eq!(
        incremental[1],
        rows(&lake, org).await,
        "organisation figures"
    );
    assert_eq!(files(&lake), 1);

    for table in [
        "* FROM org_population_monthly ORDER BY snapshot_date, basis, org_type, org_code",
        "* EXCLUDE (quality_flags) FROM practice_list_size_monthly ORDER BY snapshot_date, practice_code",
        "* FROM dim_practice ORDER BY practice_code, valid_from",
        "* FROM dim_organisation ORDER BY org_type, org_code, valid_from",
    ] {
        let sql = format!("SELECT {table}");
        let kept = rows(&lake, &sql).await;
        assert!(kept.len() > 8, "{table}");
        assert_eq!(kept, rows(&whole, &sql).await, "{table}");
    }
}

/// The restated figures of months already summed are kept while no practice's
/// organisations change, and summed again when one moves; either way they equal a whole
/// derivation's.
#[tokio::test]
async fn restated_figures_are_kept_until_a_practice_moves_and_equal_a_whole_derivation() {
    let pop = Population::new(37, 8);
    let first = [(2024, 2), (2024, 3)];
    let mirror = Mirror::start(first.iter().map(|&m| release(&pop, m).unwrap()).collect());
    let source = Source::parse(&mirror.series_url());
    let (_dir, lake) = local_lake();
    full_sync(&lake, &source, "2024-02", "2024-03")
        .await
        .unwrap();
    let org =
        "SELECT * FROM org_population_monthly ORDER BY snapshot_date, basis, org_type, org_code";
    // April moves a practice to another PCN (the test kit's practice 4); May moves none but
    // renames a PCN, whose rows of every month then carry the new name; June changes
    // neither, and only its own rows are written.
    for (month, to, kept, written) in [
        ((2024, 4), "2024-04", false, None),
        ((2024, 5), "2024-05", true, None),
        ((2024, 6), "2024-06", true, Some(vec!["2024-06-01"])),
    ] {
        mirror.publish(release(&pop, month).unwrap());
        let report = full_sync(&lake, &source, "2024-02", to).await.unwrap();
        let derived = report.build.unwrap().derived;
        assert!(derived.dims_extended, "{to}");
        assert_eq!(derived.geography_kept, kept, "{to}");
        let months = derived
            .org_months_written
            .map(|m| m.iter().map(|d| d.to_string()).collect::<Vec<_>>());
        assert_eq!(
            months,
            written.map(|w| w.iter().map(|d| d.to_string()).collect()),
            "{to}"
        );
        let incremental = rows(&lake, org).await;
        assert!(incremental.len() > 8, "{to}");
        rederive_whole(&lake).await;
        assert_eq!(incremental, rows(&lake, org).await, "{to}");
    }
}

#[tokio::test]
async fn dims_extended_by_later_months_equal_a_whole_derivation() {
    // A rename in June 2021; a practice closing at the end of 2022 and another opening in
    // January 2023, added together after a gap of months.
    let pop = Population::new(36, 8);
    let months = [(2021, 5), (2021, 6), (2022, 12), (2023, 1)];
    let mirror = Mirror::start(vec![release(&pop, months[0]).unwrap()]);
    let source = Source::parse(&mirror.series_url());
    let (_dir, lake) = local_lake();
    let extended = |report: gplake::SyncReport| report.build.unwrap().derived.dims_extended;
    let first = full_sync(&lake, &source, "2021-05", "2023-01");
    assert!(!extended(first.await.unwrap()), "a first derivation");
    let dims = [
        "SELECT * FROM dim_practice ORDER BY practice_code, valid_from",
        "SELECT * FROM dim_organisation ORDER BY org_type, org_code, valid_from",
    ];
    let versions = "SELECT COUNT(*) FROM dim_practice";
    for added in [&months[1..2], &months[2..]] {
        let before = rows(&lake, versions).await;
        for &m in added {
            mirror.publish(release(&pop, m).unwrap());
        }
        let sync = full_sync(&lake, &source, "2021-05", "2023-01").await;
        assert!(extended(sync.unwrap()), "{added:?} extend the dims");
        let got = [rows(&lake, dims[0]).await, rows(&lake, dims[1]).await];
        assert!(
            got[0].len() > before[0].parse().unwrap(),
            "{added:?}: new versions"
        );
        rederive_whole(&lake).await;
        for (sql, got) in dims.iter().zip(got) {
            assert_eq!(got, rows(&lake, sql).await, "{added:?}: {sql}");
        }
    }
    // A month up to the latest one the dims describe changed: every month derived again.
    let other = Population::new(37, 8);
    mirror.publish(release(&other, (2021, 6)).unwrap());
    let revised = full_sync(&lake, &source, "2021-05", "2023-01").await;
    assert!(!extended(revised.unwrap()), "a revised earlier month");
}

/// The practices never mapped are recorded with the dims, so that adding a month need not
/// scan every month before it for them; a month that maps them takes them off the record,
/// and the extended dims still equal a whole derivation's.
#[tokio::test]
async fn practices_never_mapped_are_recorded_and_extended_dims_equal_a_whole_derivation() {
    let pop = Population::new(38, 8);
    let mut unmapped = release(&pop, (2024, 1)).unwrap();
    unmapped
        .files
        .retain(|f| f.name != "gp-reg-pat-prac-map.csv");
    let mirror = Mirror::start(vec![unmapped]);
    let source = Source::parse(&mirror.series_url());
    let (_dir, lake) = local_lake();
    full_sync(&lake, &source, "2024-01", "2024-02")
        .await
        .unwrap();
    let practices = rows(
        &lake,
        "SELECT COUNT(DISTINCT practice_code) FROM practice_snapshot",
    )
    .await;
    let recorded = || async {
        let bytes = lake
            .get_bytes(&Path::from("_meta/derived.json"))
            .await
            .unwrap()
            .unwrap();
        let record: gplake::build::derived::Record = serde_json::from_slice(&bytes).unwrap();
        record.never_mapped.map(|n| n.len().to_string())
    };
    assert_eq!(
        recorded().await,
        Some(practices[0].clone()),
        "none mapped in January"
    );

    mirror.publish(release(&pop, (2024, 2)).unwrap());
    let report = full_sync(&lake, &source, "2024-01", "2024-02")
        .await
        .unwrap();
    assert!(report.build.unwrap().derived.dims_extended);
    assert_eq!(
        recorded().await,
        Some("0".to_string()),
        "February's map names them all"
    );
    let dims = [
        "SELECT * FROM dim_practice ORDER BY practice_code, valid_from",
        "SELECT * FROM dim_organisation ORDER BY org_type, org_code, valid_from",
    ];
    let got = [rows(&lake, dims[0]).await, rows(&lake, dims[1]).await];
    let count: usize = practices[0].parse().unwrap();
    assert!(got[0].len() >= count, "{got:?}");
    rederive_whole(&lake).await;
    for (sql, got) in dims.iter().zip(got) {
        assert_eq!(got, rows(&lake, sql).await, "{sql}");
    }
}

/// The data files `practice_list_size_monthly` is in now, from its log; each is written
/// as gplake writes Parquet (zstd), whether whole or a month at a time.
fn list_size_files(lake: &gplake::Lake) -> usize {
    let live = live_files(lake, "gold/practice_list_size_monthly");
    assert!(
        live.iter().all(|p| p.ends_with(".zstd.parquet")),
        "{live:?}"
    );
    live.len()
}

/// The data files of the table at `path` now, from its log.
fn live_files(lake: &gplake::Lake, path: &str) -> std::collections::BTreeSet<String> {
    let log = lake
        .local_file(&Path::from(format!("{path}/_delta_log")))
        .unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    let mut live = std::collections::BTreeSet::new();
    for entry in entries {
        for line in std::fs::read_to_string(entry).unwrap().lines() {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(path) = action.pointer("/add/path").and_then(|p| p.as_str()) {
                live.insert(path.to_string());
            }
            if let Some(path) = action.pointer("/remove/path").and_then(|p| p.as_str()) {
                live.remove(path);
            }
        }
    }
    live
}

/// `quality` gains files with every build and derivation, and every derivation reads all
/// of it: past 32 files the derivation rewrites it as one, and no row is lost or repeated.
#[tokio::test]
async fn quality_is_compacted_past_its_file_count_and_keeps_every_row() {
    let pop = Population::new(39, 8);
    let months = [(2024, 1), (2024, 2), (2024, 3)];
    let mirror = Mirror::start(months.iter().map(|&m| release(&pop, m).unwrap()).collect());
    let source = Source::parse(&mirror.series_url());
    let (_dir, lake) = local_lake();
    full_sync(&lake, &source, "2024-01", "2024-03")
        .await
        .unwrap();
    let count = "SELECT COUNT(*) FROM quality";
    let rows_now = || async { rows(&lake, count).await[0].parse::<i64>().unwrap() };
    let files_now = || live_files(&lake, "_meta/quality").len();
    let (mut counts, mut files) = (vec![rows_now().await], vec![files_now()]);
    let force = gplake::BuildOptions {
        force: true,
        ..gplake::BuildOptions::default()
    };
    for _ in 0..9 {
        gplake::build(&lake, &clock(), &force).await.unwrap();
        counts.push(rows_now().await);
        files.push(files_now());
    }
    let added: Vec<i64> = counts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        added[0] > 0 && added.iter().all(|a| *a == added[0]),
        "every rebuild adds the same rows: {added:?}"
    );
    assert!(files.contains(&1), "compacted: {files:?}");
    assert!(files.iter().all(|f| *f <= 36), "{files:?}");
}

/// Derives the dims and gold again keeping nothing, as after a lost record.
async fn rederive_whole(lake: &gplake::Lake) {
    lake.delete(&Path::from("_meta/derived.json"))
        .await
        .unwrap();
    let report = gplake::build(lake, &clock(), &gplake::BuildOptions::default())
        .await
        .unwrap();
    assert!(report.derived.rebuilt);
    assert_eq!(report.derived.list_size_months_derived, None);
}

#[tokio::test]
async fn list_sizes_of_a_month_whose_flags_alone_changed_are_derived_again() {
    let pop = Population::new(35, 8);
    let months = [(2026, 2), (2026, 3), (2026, 4)];
    let mirror = Mirror::start(months.iter().map(|&m| release(&pop, m).unwrap()).collect());
    let source = Source::parse(&mirror.series_url());
    let (_dir, lake) = local_lake();
    // A month at a time: each month's list sizes in a file of their own.
    for to in ["2026-02", "2026-03", "2026-04"] {
        full_sync(&lake, &source, "2026-02", to).await.unwrap();
    }
    assert_eq!(list_size_files(&lake), 3);
    let sql = "SELECT CAST(snapshot_date AS VARCHAR), COUNT(quality_flags) FROM practice_list_size_monthly GROUP BY 1 ORDER BY 1";
    let before = rows(&lake, sql).await;

    // March published again with a duplicated row: kept out by the gate, so its figures
    // stay, but its latest build failed and its practices are flagged so.
    mirror.publish(gplake_testkit::release_with_duplicated_95(&pop, (2026, 3)).unwrap());
    let report = full_sync(&lake, &source, "2026-02", "2026-04")
        .await
        .unwrap();
    let build = report.build.unwrap();
    assert!(build.gate_failed());
    let march = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    assert_eq!(build.derived.list_size_months_derived, Some(vec![march]));
    let after = rows(&lake, sql).await;
    assert_ne!(before[1], after[1], "March flagged: {after:?}");
    assert_eq!((&before[0], &before[2]), (&after[0], &after[2]));

    let all = "SELECT * FROM practice_list_size_monthly ORDER BY snapshot_date, practice_code";
    let incremental = rows(&lake, all).await;
    rederive_whole(&lake).await;
    assert_eq!(incremental, rows(&lake, all).await);
}

#[tokio::test]
async fn list_sizes_in_too_many_files_are_written_again_whole_a_file_a_span() {
    let pop = Population::new(36, 4);
    // One month past the most files the list sizes are kept in (24).
    let first = gplake::Month::new(2024, 1).unwrap();
    let months: Vec<gplake::Month> = std::iter::successors(Some(first), |m| Some(m.next()))
        .take(25)
        .collect();
    let mirror = Mirror::start(
        months
            .iter()
            .map(|m| release(&pop, (m.year(), m.month())).unwrap())
            .collect(),
    );
    let source = Source::parse(&mirror.series_url());
    let (_dir, lake) = local_lake();
    for (i, month) in months.iter().enumerate() {
        let to = month.to_string();
        let report = full_sync(&lake, &source, "2024-01", &to).await.unwrap();
        let derived = report.build.unwrap().derived.list_size_months_derived;
        if i == 0 || i == 24 {
            assert_eq!(derived, None, "{to}: derived whole");
            // Twelve months to a file: 25 months in three.
            assert_eq!(list_size_files(&lake), (i + 1).div_ceil(12), "{to}");
        } else {
            assert_eq!(derived, Some(vec![month.first_day()]), "{to}");
            assert_eq!(list_size_files(&lake), i + 1, "{to}: a file a month");
        }
    }
    let all = "SELECT * FROM practice_list_size_monthly ORDER BY snapshot_date, practice_code";
    let months_held = "SELECT COUNT(DISTINCT snapshot_date) FROM practice_list_size_monthly";
    assert_eq!(rows(&lake, months_held).await, ["25"]);
    let written = rows(&lake, all).await;
    rederive_whole(&lake).await;
    assert_eq!(written, rows(&lake, all).await);
}

#[tokio::test]
async fn a_history_longer_than_a_span_is_derived_in_spans_that_join_up() {
    // Thirteen months: gold derives twelve at a time, so January 2026's change from last
    // month crosses a span's edge, and the sums are of both spans.
    let pop = Population::new(38, 8);
    let mut months: Vec<(i32, u32)> = (1..=12).map(|m| (2025, m)).collect();
    months.push((2026, 1));
    let mirror = Mirror::start(months.iter().map(|&m| release(&pop, m).unwrap()).collect());
    let (_dir, lake) = local_lake();
    let source = Source::parse(&mirror.series_url());
    full_sync(&lake, &source, "2025-01", "2026-01")
        .await
        .unwrap();
    let count = |what: &str| format!("SELECT COUNT(*) FROM ({what})");
    let sized = "SELECT * FROM practice_snapshot WHERE registered_population IS NOT NULL";
    let changes = "SELECT l.practice_code, l.snapshot_date FROM practice_list_size_monthly l
        JOIN practice_snapshot s ON s.practice_code = l.practice_code AND s.snapshot_date = l.snapshot_date
        LEFT JOIN practice_snapshot p ON p.practice_code = l.practice_code AND p.snapshot_date = l.snapshot_date - INTERVAL '1 month'
        WHERE l.registered_population = s.registered_population
          AND l.change_from_last_month IS NOT DISTINCT FROM s.registered_population - p.registered_population";
    assert_eq!(
        rows(&lake, &count(changes)).await,
        rows(&lake, &count(sized)).await
    );
    let with_change = "SELECT * FROM practice_list_size_monthly WHERE change_from_last_month IS NOT NULL AND snapshot_date = DATE '2026-01-01'";
    assert_ne!(
        rows(&lake, &count(with_change)).await,
        ["0"],
        "January follows December across a span's edge"
    );
    let sums = "SELECT snapshot_date, pcn_code AS org_code, SUM(registered_population) AS n FROM practice_snapshot
        WHERE registered_population IS NOT NULL AND pcn_code IS NOT NULL GROUP BY snapshot_date, pcn_code";
    let matched = format!(
        "SELECT * FROM ({sums}) s JOIN org_population_monthly o ON o.snapshot_date = s.snapshot_date
         AND o.org_code = s.org_code AND o.org_type = 'PCN' AND o.basis = 'as_published' AND o.registered_population = s.n"
    );
    let pcn_rows =
        "SELECT * FROM org_population_monthly WHERE org_type = 'PCN' AND basis = 'as_published'";
    assert_eq!(
        rows(&lake, &count(&matched)).await,
        rows(&lake, &count(sums)).await
    );
    assert_eq!(
        rows(&lake, &count(pcn_rows)).await,
        rows(&lake, &count(sums)).await
    );
    let held = "SELECT DISTINCT snapshot_date FROM org_population_monthly";
    assert_eq!(
        rows(&lake, held).await.len(),
        13,
        "every month, in every span"
    );
}

/// The list sizes as SQL defines them over `practice_snapshot` and `quality`: what gold
/// derived through DataFusion before it made them a month at a time in Rust.
const LIST_SIZES_BY_SQL: &str = "
WITH t AS (SELECT * FROM practice_snapshot WHERE registered_population IS NOT NULL),
series AS (SELECT * FROM quality WHERE rule IN ('missing_months', 'month_over_month', 'practice_month_over_month')),
latest AS (SELECT snapshot_date, MAX(checked_at) AS at FROM quality WHERE snapshot_date IS NOT NULL
           AND rule NOT IN (SELECT rule FROM series) GROUP BY snapshot_date),
failed AS (
  SELECT q.snapshot_date, q.subject, q.rule FROM quality q JOIN latest l ON q.snapshot_date = l.snapshot_date AND q.checked_at = l.at
  WHERE NOT q.passed AND q.subject IS NOT NULL AND q.rule NOT IN (SELECT rule FROM series)
  UNION ALL
  SELECT snapshot_date, subject, rule FROM series
  WHERE NOT passed AND subject IS NOT NULL AND checked_at = (SELECT MAX(checked_at) FROM series)),
flags AS (SELECT snapshot_date, subject, array_to_string(array_sort(array_agg(DISTINCT rule)), ',') AS flags
          FROM failed GROUP BY snapshot_date, subject)
SELECT t.snapshot_date, t.practice_code, t.practice_name, t.pcn_code, t.sub_icb_code, t.icb_code, t.region_code,
       t.registered_population, t.male, t.female, t.total_from,
       t.registered_population - p.registered_population AS change_from_last_month, f.flags AS quality_flags
FROM t
LEFT JOIN t p ON p.practice_code = t.practice_code AND p.snapshot_date = t.snapshot_date - INTERVAL '1 month'
LEFT JOIN flags f ON f.snapshot_date = t.snapshot_date AND f.subject = t.practice_code";

#[tokio::test]
async fn list_sizes_equal_their_definition_in_sql_column_by_column() {
    // A gap (no February), and two unrelated populations in March and April: changes that
    // are NULL after the gap and large after it, and practices flagged by the series checks
    // beside those flagged by their month's checks (small_practice).
    let (a, b) = (Population::new(41, 8), Population::new(42, 8));
    let mirror = Mirror::start(vec![
        release(&a, (2026, 1)).unwrap(),
        release(&a, (2026, 3)).unwrap(),
        release(&b, (2026, 4)).unwrap(),
    ]);
    let (_dir, lake) = local_lake();
    full_sync(
        &lake,
        &Source::parse(&mirror.series_url()),
        "2026-01",
        "2026-04",
    )
    .await
    .unwrap();
    let order = "ORDER BY snapshot_date, practice_code";
    let made = rows(
        &lake,
        &format!("SELECT * FROM practice_list_size_monthly {order}"),
    )
    .await;
    let by_sql = rows(
        &lake,
        &format!("SELECT * FROM ({LIST_SIZES_BY_SQL}) {order}"),
    )
    .await;
    assert!(made.len() > 8, "{made:?}");
    assert_eq!(made, by_sql);
    let count =
        |what: &str| format!("SELECT COUNT(*) FROM practice_list_size_monthly WHERE {what}");
    let after_gap = "snapshot_date = DATE '2026-03-01' AND change_from_last_month IS NOT NULL";
    assert_eq!(rows(&lake, &count(after_gap)).await, ["0"], "no February");
    let changed = "snapshot_date = DATE '2026-04-01' AND change_from_last_month IS NOT NULL";
    assert_ne!(rows(&lake, &count(changed)).await, ["0"]);
    for rule in ["small_practice", "practice_month_over_month"] {
        let flagged = format!("quality_flags LIKE '%{rule}%'");
        assert_ne!(rows(&lake, &count(&flagged)).await, ["0"], "{rule}");
    }
}

/// Practice figures summed at every organisation level (grouping sets), on one basis.
fn org_sums_by_sql(basis: &str, rows: &str) -> String {
    format!(
        "SELECT * FROM (
  SELECT snapshot_date, '{basis}' AS basis,
         CASE WHEN grouping(pcn_code) = 0 THEN 'PCN' WHEN grouping(sub_icb_code) = 0 THEN 'SUB_ICB'
              WHEN grouping(icb_code) = 0 THEN 'ICB' ELSE 'REGION' END AS org_type,
         COALESCE(pcn_code, sub_icb_code, icb_code, region_code) AS org_code,
         SUM(registered_population) AS registered_population,
         CASE WHEN COUNT(male) = COUNT(*) THEN SUM(male) END AS male,
         CASE WHEN COUNT(female) = COUNT(*) THEN SUM(female) END AS female
  FROM ({rows}) r
  GROUP BY GROUPING SETS ((snapshot_date, pcn_code), (snapshot_date, sub_icb_code),
                          (snapshot_date, icb_code), (snapshot_date, region_code)))
WHERE org_code IS NOT NULL"
    )
}

/// The organisation figures as SQL defines them over the organisation facts,
/// `practice_snapshot` and the dims: what gold selected through DataFusion before it made
/// them a month at a time in Rust.
fn org_figures_by_sql() -> String {
    let as_published = org_sums_by_sql(
        "as_published",
        "SELECT snapshot_date, pcn_code, sub_icb_code, icb_code, region_code, registered_population, male, female FROM sized",
    );
    let restated = org_sums_by_sql(
        "latest_geography",
        "SELECT s.snapshot_date, cur.pcn_code, cur.sub_icb_code, cur.icb_code, cur.region_code, s.registered_population, s.male, s.female FROM sized s JOIN cur ON cur.practice_code = s.practice_code",
    );
    format!(
        "WITH last AS (SELECT practice_code, MAX(valid_from) AS vf FROM dim_practice GROUP BY practice_code),
cur AS (SELECT d.* FROM dim_practice d JOIN last ON last.practice_code = d.practice_code AND last.vf = d.valid_from),
lastorg AS (SELECT org_type, org_code, MAX(valid_from) AS vf FROM dim_organisation GROUP BY org_type, org_code),
names AS (SELECT o.* FROM dim_organisation o JOIN lastorg l ON l.org_type = o.org_type AND l.org_code = o.org_code AND l.vf = o.valid_from),
pub_rows AS (
  SELECT snapshot_date, org_type, org_code, sex, registered_population FROM fact_org_registered_patients_single_age
  UNION ALL
  SELECT snapshot_date, org_type, org_code, sex, registered_population FROM fact_org_registered_patients
  WHERE snapshot_date NOT IN (SELECT DISTINCT snapshot_date FROM fact_org_registered_patients_single_age)),
published AS (
  SELECT snapshot_date, 'published' AS basis, org_type, org_code,
         SUM(registered_population) AS registered_population,
         SUM(CASE WHEN sex = 'MALE' THEN registered_population ELSE 0 END) AS male,
         SUM(CASE WHEN sex = 'FEMALE' THEN registered_population ELSE 0 END) AS female
  FROM pub_rows GROUP BY snapshot_date, org_type, org_code),
sized AS (SELECT * FROM practice_snapshot WHERE registered_population IS NOT NULL),
everything AS (SELECT * FROM published UNION ALL {as_published} UNION ALL {restated})
SELECT e.snapshot_date, e.basis, e.org_type, e.org_code, n.org_name, e.registered_population, e.male, e.female,
       CASE WHEN e.basis = 'as_published' THEN e.registered_population - p.registered_population END AS difference_from_published
FROM everything e
LEFT JOIN names n ON n.org_type = e.org_type AND n.org_code = e.org_code
LEFT JOIN published p ON e.basis = 'as_published' AND p.snapshot_date = e.snapshot_date AND p.org_type = e.org_type AND p.org_code = e.org_code"
    )
}

#[tokio::test]
async fn org_figures_equal_their_definition_in_sql_column_by_column() {
    // Every grain of the publisher's figures: January 2017's wide files (no organisation
    // rows, no split by sex), quinary organisation rows (April 2019), then single-age ones
    // (from May 2019). Synced in two steps, so that the second derivation writes only the
    // months it adds, and then derived again whole.
    let pop = Population::new(43, 8);
    let months = [(2017, 1), (2019, 4), (2019, 5), (2019, 6)];
    let mirror = Mirror::start(months.iter().map(|&m| release(&pop, m).unwrap()).collect());
    let source = Source::parse(&mirror.series_url());
    let (_dir, lake) = local_lake();
    let order = "ORDER BY snapshot_date, basis, org_type, org_code";
    let made = || format!("SELECT * FROM org_population_monthly {order}");
    let by_sql = format!("SELECT * FROM ({}) {order}", org_figures_by_sql());
    full_sync(&lake, &source, "2017-01", "2019-05")
        .await
        .unwrap();
    let report = full_sync(&lake, &source, "2017-01", "2019-06")
        .await
        .unwrap();
    let written = report.build.unwrap().derived.org_months_written;
    let written = written.map(|m| m.iter().map(|d| d.to_string()).collect::<Vec<_>>());
    assert_eq!(written, Some(vec!["2019-06-01".to_string()]));
    let incremental = rows(&lake, &made()).await;
    assert_eq!(incremental, rows(&lake, &by_sql).await);
    rederive_whole(&lake).await;
    assert_eq!(incremental, rows(&lake, &made()).await);
    let count = |what: &str| format!("SELECT COUNT(*) FROM org_population_monthly WHERE {what}");
    for (what, why) in [
        (
            "basis = 'published' AND snapshot_date = DATE '2019-04-01'",
            "quinary rows",
        ),
        (
            "basis = 'published' AND snapshot_date = DATE '2019-06-01'",
            "single-age rows",
        ),
        (
            "basis = 'as_published' AND difference_from_published IS NOT NULL",
            "differences",
        ),
        (
            "basis = 'as_published' AND snapshot_date = DATE '2017-01-01'",
            "a month of wide files",
        ),
    ] {
        assert_ne!(rows(&lake, &count(what)).await, ["0"], "{why}");
    }
}
