//! Silver over the mirror: every era reconciles with the generator's own truth, defective
//! reissues are kept out and fixed ones replace the month atomically, bad input is named,
//! and the same works on S3.

use std::collections::BTreeMap;

use gplake::{Lake, Source};
use gplake_testkit::population::{AGES, SEXES};
use gplake_testkit::{
    Mirror, Population, Sex, SynthRelease, Ym, release, release_with_duplicated_95,
};

use crate::support::{full_sync, local_lake, rows};

/// Months covering every era and quirk the generator knows.
const ERAS: [Ym; 12] = [
    (2014, 10),
    (2016, 1),
    (2017, 4),
    (2017, 10),
    (2018, 3),
    (2020, 4),
    (2021, 1),
    (2022, 9),
    (2024, 4),
    (2024, 5),
    (2025, 7),
    (2026, 4),
];

fn pop() -> Population {
    Population::new(21, 9)
}

fn date((y, m): Ym) -> String {
    format!("{y}-{m:02}-01")
}

fn sex_label(s: Sex) -> &'static str {
    s.label()
}

/// The generator's truth for a month: (practice, sex, band) → count, for published practices.
fn truth_by_band(pop: &Population, month: Ym) -> BTreeMap<(String, String, String), u64> {
    let mut out = BTreeMap::new();
    for p in pop.practices(month) {
        let total: u64 = SEXES
            .iter()
            .flat_map(|&s| AGES.map(move |a| (s, a)))
            .map(|(s, a)| pop.count(p.index, month, s, a))
            .sum();
        if month < (2017, 4) && total <= 100 {
            continue; // suppressed in the wide era
        }
        for sex in SEXES {
            for age in AGES {
                let band = if age >= 95 {
                    "95+".to_string()
                } else {
                    format!("{}-{}", age / 5 * 5, age / 5 * 5 + 4)
                };
                *out.entry((p.code.clone(), sex_label(sex).to_string(), band))
                    .or_insert(0) += pop.count(p.index, month, sex, age);
            }
        }
    }
    out.retain(|_, n| *n > 0);
    out
}

async fn silver_by_band(lake: &Lake, month: Ym) -> BTreeMap<(String, String, String), u64> {
    let sql = format!(
        "SELECT practice_code, sex, age_band, SUM(registered_population) FROM fact_gp_registered_patients WHERE snapshot_date = DATE '{}' GROUP BY 1, 2, 3",
        date(month)
    );
    rows(lake, &sql)
        .await
        .into_iter()
        .map(|r| {
            let c: Vec<&str> = r.split('\t').collect();
            (
                (c[0].to_string(), c[1].to_string(), c[2].to_string()),
                c[3].parse().unwrap(),
            )
        })
        .collect()
}

async fn single_age_total(lake: &Lake, month: Ym) -> u64 {
    let sql = format!(
        "SELECT SUM(registered_population) FROM fact_gp_registered_patients_single_age WHERE snapshot_date = DATE '{}'",
        date(month)
    );
    rows(lake, &sql).await[0].parse().unwrap_or(0)
}

#[tokio::test]
async fn every_era_reconciles_with_the_generator_for_every_practice_sex_and_band() {
    let pop = pop();
    let releases: Vec<SynthRelease> = ERAS.iter().map(|&m| release(&pop, m).unwrap()).collect();
    let mirror = Mirror::start(releases);
    let (_dir, lake) = local_lake();
    let report = full_sync(
        &lake,
        &Source::parse(&mirror.series_url()),
        "2014-10",
        "2026-04",
    )
    .await
    .unwrap();
    let build = report.build.unwrap();
    let kept_out: Vec<String> = build
        .months
        .iter()
        .filter(|m| !m.committed)
        .map(|m| format!("{}: {:?}", m.month, m.failures))
        .collect();
    assert!(kept_out.is_empty(), "{kept_out:#?}");
    assert_eq!(build.months.len(), ERAS.len());
    for month in ERAS {
        let truth = truth_by_band(&pop, month);
        assert_eq!(
            silver_by_band(&lake, month).await,
            truth,
            "{month:?}: silver differs from the generator"
        );
        let persons: u64 = truth.values().sum();
        assert_eq!(
            single_age_total(&lake, month).await,
            persons,
            "{month:?}: single-age total"
        );
    }
    let subtotals = rows(&lake, "SELECT COUNT(*) FROM fact_gp_registered_patients WHERE sex NOT IN ('MALE','FEMALE') OR age_band = 'ALL'").await;
    assert_eq!(subtotals, ["0"], "facts hold leaf rows only");
    let zeros = rows(&lake, "SELECT COUNT(*) FROM fact_gp_registered_patients_single_age WHERE registered_population = 0").await;
    assert_eq!(zeros, ["0"], "zero counts are not stored");
    // April 2024 offered two sets: silver holds the PDS one, the generator's truth.
    assert!(
        build
            .months
            .iter()
            .any(|m| m.month.to_string() == "2024-04" && m.source_set.starts_with("PDS"))
    );
}

#[tokio::test]
async fn lsoa_dims_and_lineage() {
    let pop = pop();
    let months = [(2021, 1), (2022, 9), (2025, 7)];
    let mirror = Mirror::start(months.iter().map(|&m| release(&pop, m).unwrap()).collect());
    let (_dir, lake) = local_lake();
    full_sync(
        &lake,
        &Source::parse(&mirror.series_url()),
        "2021-01",
        "2025-07",
    )
    .await
    .unwrap();
    // LSOA: each vintage sums to the practice's patients; both vintages in July 2025.
    let by_vintage = rows(&lake, "SELECT CAST(snapshot_date AS VARCHAR), lsoa_vintage, SUM(registered_population) FROM fact_gp_registered_patients_lsoa GROUP BY 1, 2 ORDER BY 1, 2").await;
    let persons = |m: Ym| -> u64 { truth_by_band(&pop, m).values().sum() };
    assert_eq!(
        by_vintage,
        [
            format!("2021-01-01\t2011\t{}", persons((2021, 1))),
            format!("2025-07-01\t2011\t{}", persons((2025, 7))),
            format!("2025-07-01\t2021\t{}", persons((2025, 7))),
        ]
    );
    let special = rows(&lake, "SELECT DISTINCT lsoa_code FROM fact_gp_registered_patients_lsoa WHERE lsoa_code IN ('CLOSED', 'NO2011') ORDER BY 1").await;
    assert_eq!(special, ["CLOSED"], "special codes kept as published");
    // dim_practice: practice 2 was renamed in June 2021 → two versions.
    let code = pop.practices((2021, 1))[0..]
        .iter()
        .find(|p| p.index == 2)
        .unwrap()
        .code
        .clone();
    let versions = rows(&lake, &format!("SELECT practice_name, CAST(valid_from AS VARCHAR) AS f, CAST(valid_to AS VARCHAR) AS t, is_current FROM dim_practice WHERE practice_code = '{code}' ORDER BY f")).await;
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(
        versions[0].ends_with("2021-01-01\t2022-09-01\tfalse"),
        "{versions:?}"
    );
    assert!(
        versions[1].starts_with("THE NEW ") && versions[1].ends_with("\tNULL\ttrue"),
        "{versions:?}"
    );
    // dim_organisation knows sub-ICB locations with their parents, effective-dated.
    let orgs = rows(&lake, "SELECT COUNT(*) FROM dim_organisation WHERE org_type = 'SUB_ICB' AND parent_code IS NOT NULL").await;
    assert_ne!(orgs, ["0"]);
    // 0 … 94, 95+, and the open top bands of some pre-2017 files (85+, 90+).
    assert_eq!(
        rows(&lake, "SELECT COUNT(*) FROM dim_age_band").await,
        ["98"]
    );
    // Lineage: every fact row names its bronze file and hash.
    let lineage = rows(&lake, "SELECT COUNT(*) FROM fact_gp_registered_patients WHERE source_file IS NULL OR length(source_sha256) <> 64").await;
    assert_eq!(lineage, ["0"]);
    let accounting = rows(&lake, "SELECT COUNT(*) FROM files WHERE rows_read <> rows_written + rows_zero + rows_subtotal + rows_quarantined").await;
    assert_eq!(accounting, ["0"], "every row read is accounted for");
}

async fn month_total(lake: &Lake, day: &str) -> u64 {
    let sql = format!(
        "SELECT COALESCE(SUM(registered_population), 0) FROM fact_gp_registered_patients WHERE snapshot_date = DATE '{day}'"
    );
    rows(lake, &sql).await[0].parse().unwrap()
}

async fn reissue_cycle(lake: &Lake) {
    let month = (2024, 5);
    let good = release(&pop(), month).unwrap();
    let mirror = Mirror::start(vec![good.clone()]);
    let source = Source::parse(&mirror.series_url());
    full_sync(lake, &source, "2024-05", "2024-05")
        .await
        .unwrap();
    let first_total = month_total(lake, "2024-05-01").await;
    assert!(first_total > 0);

    mirror.publish(release_with_duplicated_95(&pop(), month).unwrap());
    let report = full_sync(lake, &source, "2024-05", "2024-05")
        .await
        .unwrap();
    let build = report.build.unwrap();
    assert!(build.gate_failed());
    let failures = &build.months[0].failures;
    assert!(
        failures.iter().any(|f| f.contains("appears more than once")
            && f.contains("95+")
            && f.contains("line ")),
        "{failures:?}"
    );
    assert_eq!(
        month_total(lake, "2024-05-01").await,
        first_total,
        "the previous good revision stays"
    );
    let status = gplake::status::status(lake).await.unwrap();
    assert!(status.any_failed());

    // The corrected reissue (different figures) replaces the month in one commit per table;
    // a reader polling meanwhile sees the old month or the new one, never a mix or nothing.
    let corrected = release(&Population::new(99, 9), month).unwrap();
    let new_total: u64 = corrected_total(&corrected);
    mirror.publish(corrected);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (lake, stop) = (lake.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                seen.push(month_total(&lake, "2024-05-01").await);
            }
            seen
        })
    };
    let report = full_sync(lake, &source, "2024-05", "2024-05")
        .await
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    assert!(!report.build.unwrap().gate_failed());
    assert_eq!(month_total(lake, "2024-05-01").await, new_total);
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|t| *t == first_total || *t == new_total),
        "a reader saw {seen:?}, not {first_total} or {new_total}"
    );
    assert!(!gplake::status::status(lake).await.unwrap().any_failed());
}

fn corrected_total(r: &SynthRelease) -> u64 {
    let all = r
        .files
        .iter()
        .find(|f| f.name.starts_with("gp-reg-pat-prac-all"))
        .unwrap();
    String::from_utf8_lossy(&all.bytes)
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().trim().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test]
async fn a_defective_reissue_is_kept_out_and_the_fix_replaces_the_month_atomically() {
    let (_dir, lake) = local_lake();
    reissue_cycle(&lake).await;
}

#[tokio::test]
async fn silver_on_s3() {
    let lake = crate::support::s3_lake("silver").await;
    let pop = pop();
    let months = [(2016, 1), (2022, 9), (2026, 4)];
    let mirror = Mirror::start(months.iter().map(|&m| release(&pop, m).unwrap()).collect());
    let report = full_sync(
        &lake,
        &Source::parse(&mirror.series_url()),
        "2016-01",
        "2026-04",
    )
    .await
    .unwrap();
    assert!(!report.build.unwrap().gate_failed());
    for month in months {
        assert_eq!(
            silver_by_band(&lake, month).await,
            truth_by_band(&pop, month),
            "{month:?}"
        );
    }
    reissue_cycle(&crate::support::s3_lake("reissue-silver").await).await;
}

/// Writes January 2021 by hand into a folder, with one file changed by `tamper`.
fn tampered_source(tamper: impl Fn(&str, String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in release(&pop(), (2021, 1)).unwrap().files {
        let bytes = if f.name.ends_with(".csv") {
            tamper(&f.name, String::from_utf8(f.bytes).unwrap()).into_bytes()
        } else {
            f.bytes
        };
        std::fs::write(dir.path().join(&f.name), bytes).unwrap();
    }
    dir
}

/// Syncs a good January 2021, then a tampered one: the month must be kept out with a
/// message containing every `expected` fragment, and the good silver must stay.
async fn kept_out_with(tamper: impl Fn(&str, String) -> String, expected: &[&str]) {
    let (_dir, lake) = good_january().await;
    let before = month_total(&lake, "2021-01-01").await;
    let failures = kept_out_failures(&lake, tamper, expected).await;
    assert!(failures.lines().all(|l| !l.is_empty()));
    assert_eq!(
        month_total(&lake, "2021-01-01").await,
        before,
        "previous silver untouched"
    );
}

/// A lake holding a good January 2021.
async fn good_january() -> (tempfile::TempDir, Lake) {
    let (dir, lake) = local_lake();
    let good = tampered_source(|_, s| s);
    full_sync(
        &lake,
        &Source::Dir(good.path().into()),
        "2021-01",
        "2021-01",
    )
    .await
    .unwrap();
    (dir, lake)
}

/// Syncs a tampered January 2021: the month must be kept out with a message containing every
/// `expected` fragment; returns the month's failures.
async fn kept_out_failures(
    lake: &Lake,
    tamper: impl Fn(&str, String) -> String,
    expected: &[&str],
) -> String {
    let bad = tampered_source(tamper);
    let report = full_sync(lake, &Source::Dir(bad.path().into()), "2021-01", "2021-01")
        .await
        .unwrap();
    let build = report.build.unwrap();
    assert!(build.gate_failed(), "{build:?}");
    let failures = build.months[0].failures.join("\n");
    for fragment in expected {
        assert!(
            failures.contains(fragment),
            "expected '{fragment}' in:\n{failures}"
        );
    }
    failures
}

fn edit_line(text: &str, line: usize, f: impl Fn(&str) -> String) -> String {
    text.split_inclusive('\n')
        .enumerate()
        .map(|(i, l)| {
            if i + 1 == line {
                let end = if l.ends_with("\r\n") { "\r\n" } else { "\n" };
                f(l.trim_end()) + end
            } else {
                l.to_string()
            }
        })
        .collect()
}

#[tokio::test]
async fn an_unknown_header_stops_the_month_naming_file_column_and_era() {
    let tamper = |name: &str, s: String| {
        if name == "gp-reg-pat-prac-quin-age.csv" {
            s.replacen("AGE_GROUP_5", "AGE_BAND_5", 1)
        } else {
            s
        }
    };
    kept_out_with(
        tamper,
        &[
            "month 2021-01",
            "gp-reg-pat-prac-quin-age.csv",
            "unknown column 'AGE_BAND_5'",
            "looks like the long format",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_short_row_is_quarantined_and_named() {
    let tamper = |name: &str, s: String| {
        if name == "gp-reg-pat-prac-sing-age-male.csv" {
            edit_line(&s, 5, |l| l.rsplit_once(',').unwrap().0.to_string())
        } else {
            s
        }
    };
    kept_out_with(
        tamper,
        &["gp-reg-pat-prac-sing-age-male.csv line 5", "short row"],
    )
    .await;
}

#[tokio::test]
async fn a_long_row_is_quarantined_and_named() {
    // A field too many (an unquoted comma in a name, say) could shift a count into another
    // column: the row is not read, and the month is kept out.
    let tamper = |name: &str, s: String| {
        if name == "gp-reg-pat-prac-quin-age.csv" {
            edit_line(&s, 7, |l| format!("{l},12"))
        } else {
            s
        }
    };
    kept_out_with(tamper, &["gp-reg-pat-prac-quin-age.csv line 7", "long row"]).await;
}

#[tokio::test]
async fn non_numeric_and_negative_counts_are_named() {
    let tamper = |name: &str, s: String| match name {
        "gp-reg-pat-prac-quin-age.csv" => {
            edit_line(&s, 7, |l| format!("{},12a", l.rsplit_once(',').unwrap().0))
        }
        "gp-reg-pat-prac-sing-age-female.csv" => {
            edit_line(&s, 9, |l| format!("{},-4", l.rsplit_once(',').unwrap().0))
        }
        _ => s,
    };
    kept_out_with(
        tamper,
        &[
            "gp-reg-pat-prac-quin-age.csv line 7",
            "NUMBER_OF_PATIENTS: '12a'",
            "gp-reg-pat-prac-sing-age-female.csv line 9",
            "'-4'",
        ],
    )
    .await;
}

#[tokio::test]
async fn duplicate_keys_are_named() {
    let tamper = |name: &str, s: String| {
        if name == "gp-reg-pat-prac-sing-age-female.csv" {
            let line = s.lines().find(|l| l.contains(",95+,")).unwrap().to_string();
            s + &line + "\r\n"
        } else {
            s
        }
    };
    kept_out_with(
        tamper,
        &[
            "gp-reg-pat-prac-sing-age-female.csv line",
            "95+ appears more than once",
        ],
    )
    .await;
}

/// The data files under a table's folder, committed or not.
fn parquet_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.path() {
            p if p.is_dir() => parquet_files(&p),
            p => usize::from(p.extension().is_some_and(|x| x == "parquet")),
        })
        .sum()
}

#[tokio::test]
async fn a_key_in_both_single_age_files_is_named_as_one_reader_would_name_it() {
    // A female row at the end of the male file. The two files are read at once, apart; they
    // then share a sex, so they are read again in turn, in the release's order (the female
    // file first here), and the male file's row is the repeat, as when one thread read them.
    // Neither reading leaves a data file behind.
    let tamper = |name: &str, s: String| {
        if name == "gp-reg-pat-prac-sing-age-male.csv" {
            let line = s.lines().find(|l| l.contains(",MALE,95+,")).unwrap();
            let female = line.replace(",MALE,", ",FEMALE,");
            s + &female + "\r\n"
        } else {
            s
        }
    };
    let (dir, lake) = good_january().await;
    let table = dir
        .path()
        .join("silver/fact_gp_registered_patients_single_age");
    let files_before = parquet_files(&table);
    let before = single_age_total(&lake, (2021, 1)).await;
    let expected = [
        "gp-reg-pat-prac-sing-age-male.csv line",
        "FEMALE age 95+ appears more than once",
    ];
    kept_out_failures(&lake, tamper, &expected).await;
    assert_eq!(single_age_total(&lake, (2021, 1)).await, before);
    assert_eq!(
        parquet_files(&table),
        files_before,
        "no data file left behind"
    );
}

#[tokio::test]
async fn an_extract_date_of_another_month_is_named() {
    let tamper = |name: &str, s: String| {
        if name == "gp-reg-pat-prac-sing-age-male.csv" {
            s.replace("01JAN2021", "01FEB2021")
        } else {
            s
        }
    };
    // The file then sniffs as February: January loses it and February has only it.
    let (_dir, lake) = local_lake();
    let bad = tampered_source(tamper);
    let report = full_sync(&lake, &Source::Dir(bad.path().into()), "2021-01", "2021-02")
        .await
        .unwrap();
    assert!(report.build.unwrap().gate_failed());
    let tamper_one_row = |name: &str, s: String| {
        if name == "gp-reg-pat-prac-map.csv" {
            edit_line(&s, 3, |l| l.replace("01Jan2021", "01Mar2021"))
        } else {
            s
        }
    };
    kept_out_with(tamper_one_row, &["gp-reg-pat-prac-map.csv line 3, column EXTRACT_DATE: '01Mar2021' belongs to another month"]).await;
}

#[tokio::test]
async fn a_map_missing_a_practice_is_named() {
    let tamper = |name: &str, s: String| {
        if name == "gp-reg-pat-prac-map.csv" {
            edit_line(&s, 2, |_| String::new()).replacen("\n\n", "\n", 1)
        } else {
            s
        }
    };
    kept_out_with(tamper, &["is not in the month's map file"]).await;
}

/// Adds a column `name` (value `x`) to every line of a CSV text.
fn append_column(text: &str, name: &str) -> String {
    text.split_inclusive('\n')
        .enumerate()
        .map(|(i, l)| {
            let end = if l.ends_with("\r\n") { "\r\n" } else { "\n" };
            let value = if i == 0 { name } else { "x" };
            format!("{},{value}{end}", l.trim_end())
        })
        .collect()
}

#[tokio::test]
async fn an_extra_column_is_set_aside_with_a_warning_and_the_month_is_built() {
    let tamper = |name: &str, s: String| match name {
        "gp-reg-pat-prac-map.csv" => append_column(&s, "NEW_THING"),
        "gp-reg-pat-prac-quin-age.csv" => append_column(&s, "PUBLISHED_BY"),
        _ => s,
    };
    let (_dir, lake) = local_lake();
    let src = tampered_source(tamper);
    let report = full_sync(&lake, &Source::Dir(src.path().into()), "2021-01", "2021-01")
        .await
        .unwrap();
    let build = report.build.unwrap();
    assert!(!build.gate_failed(), "{:?}", build.months[0].failures);
    let warnings = build.months[0].warnings.join("\n");
    for expected in [
        "gp-reg-pat-prac-map.csv line 1: column 'NEW_THING' is not known to gplake and was not read",
        "gp-reg-pat-prac-quin-age.csv line 1: column 'PUBLISHED_BY' is not known to gplake",
    ] {
        assert!(warnings.contains(expected), "{warnings}");
    }
    let good = tampered_source(|_, s| s);
    let (_dir2, clean) = local_lake();
    full_sync(
        &clean,
        &Source::Dir(good.path().into()),
        "2021-01",
        "2021-01",
    )
    .await
    .unwrap();
    assert_eq!(
        month_total(&lake, "2021-01-01").await,
        month_total(&clean, "2021-01-01").await,
        "the same figures as without the extra columns"
    );
}

#[tokio::test]
async fn names_in_windows_1252_are_decoded_and_utf8_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    for f in release(&pop(), (2024, 4)).unwrap().files {
        let mut bytes = f.bytes;
        if f.name == "gp-reg-pat-prac-map.csv" {
            let text = String::from_utf8(bytes).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let first: Vec<&str> = lines[1].split(',').collect();
            let second: Vec<&str> = lines[2].split(',').collect();
            let (a, b) = (first[3].to_string(), second[3].to_string());
            lines[2] = lines[2].replacen(&b, "CAFÉ SURGERY", 1);
            let mut out = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                if i == 1 {
                    // ST MARY’S in Windows-1252: the apostrophe is byte 0x92.
                    let (before, after) = line.split_once(&a).unwrap();
                    out.extend_from_slice(before.as_bytes());
                    out.extend_from_slice(b"ST MARY\x92S SURGERY");
                    out.extend_from_slice(after.as_bytes());
                } else {
                    out.extend_from_slice(line.as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
            bytes = out;
        }
        std::fs::write(dir.path().join(&f.name), bytes).unwrap();
    }
    let (_lake_dir, lake) = local_lake();
    let report = full_sync(&lake, &Source::Dir(dir.path().into()), "2024-04", "2024-04")
        .await
        .unwrap();
    assert!(!report.build.unwrap().gate_failed());
    let names = crate::support::rows(
        &lake,
        "SELECT practice_name FROM practice_snapshot WHERE practice_name LIKE 'ST MARY%' OR practice_name LIKE 'CAF%' ORDER BY 1",
    )
    .await;
    assert_eq!(names, vec!["CAFÉ SURGERY", "ST MARY\u{2019}S SURGERY"]);
    // The file is noted once, naming the first line (the valid UTF-8 line is not counted).
    let notes = crate::support::rows(
        &lake,
        "SELECT message FROM quality WHERE rule = 'text_encoding'",
    )
    .await;
    assert_eq!(
        notes,
        vec![
            "gp-reg-pat-prac-map.csv line 2: 1 rows have text that is not UTF-8, read as Windows-1252 (files saved by Windows tools)"
        ]
    );
}

/// Repeats line `n` of a CSV text at its end.
fn repeat_line(text: &str, n: usize) -> String {
    let line = text.split_inclusive('\n').nth(n - 1).unwrap().to_string();
    let mut out = text.to_string();
    if !out.ends_with('\n') {
        out.push_str("\r\n");
    }
    out.push_str(&line);
    out
}

#[tokio::test]
async fn a_practice_twice_in_the_totals_file_or_the_map_is_named() {
    for file in ["gp-reg-pat-prac-all.csv", "gp-reg-pat-prac-map.csv"] {
        let tamper = move |name: &str, s: String| {
            if name == file { repeat_line(&s, 3) } else { s }
        };
        let expected = format!("{file} line");
        let both = "appears more than once (first at line 3)";
        kept_out_with(tamper, &[&expected, both]).await;
    }
}

/// Moves one patient of the first practice's male single-age rows from age 0 to age 5: the
/// file stays consistent with its own ALL rows, but no longer with the 5-year file.
fn move_a_patient(text: &str) -> String {
    let fields = |l: &str| {
        l.trim_end()
            .split(',')
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let (age, code, count) = (6, 3, 7);
    let first = lines
        .iter()
        .map(|l| fields(l))
        .find(|f| f.len() == 8 && f[age] == "0" && f[count].parse::<u64>().unwrap_or(0) > 0)
        .unwrap();
    lines
        .iter()
        .map(|l| {
            let mut f = fields(l);
            if f.len() == 8 && f[code] == first[code] && (f[age] == "0" || f[age] == "5") {
                let n: u64 = f[count].parse().unwrap();
                f[count] = if f[age] == "0" { n - 1 } else { n + 1 }.to_string();
                format!("{}\r\n", f.join(","))
            } else {
                l.to_string()
            }
        })
        .collect()
}

#[tokio::test]
async fn single_years_that_disagree_with_the_five_year_file_keep_the_month_out() {
    let tamper = |name: &str, s: String| {
        if name == "gp-reg-pat-prac-sing-age-male.csv" {
            move_a_patient(&s)
        } else {
            s
        }
    };
    kept_out_with(
        tamper,
        &["MALE 0-4: single years sum to", "the 5-year file says"],
    )
    .await;
}

/// Replaces the `ORG_TYPE` (third field) `from` by `to` on every line of a quinary file.
fn relabel(text: &str, from: &str, to: &str) -> String {
    text.split_inclusive('\n')
        .map(|l| {
            let fields: Vec<&str> = l.splitn(4, ',').collect();
            if fields.len() == 4 && fields[2] == from {
                format!("{},{},{to},{}", fields[0], fields[1], fields[3])
            } else {
                l.to_string()
            }
        })
        .collect()
}

#[tokio::test]
async fn an_unknown_org_type_on_subtotal_rows_is_warned_and_the_month_is_built() {
    let (_dir, lake) = local_lake();
    let src = tampered_source(|name, s| match name {
        "gp-reg-pat-prac-quin-age.csv" => relabel(&s, "CCG", "NEW_AREA"),
        _ => s,
    });
    let report = full_sync(&lake, &Source::Dir(src.path().into()), "2021-01", "2021-01")
        .await
        .unwrap();
    let build = report.build.unwrap();
    assert!(!build.gate_failed(), "{:?}", build.months[0].failures);
    let warnings = build.months[0].warnings.join("\n");
    assert!(
        warnings.contains("gp-reg-pat-prac-quin-age.csv line")
            && warnings.contains("ORG_TYPE 'NEW_AREA' is not known to gplake"),
        "{warnings}"
    );
}

#[tokio::test]
async fn a_renamed_practice_label_keeps_the_month_out() {
    let tamper = |name: &str, s: String| match name {
        "gp-reg-pat-prac-quin-age.csv" => relabel(&s, "GP", "PRACTICE_NEW"),
        _ => s,
    };
    kept_out_with(
        tamper,
        &[
            "gp-reg-pat-prac-quin-age.csv: no practice (ORG_TYPE GP) rows at all",
            "PRACTICE_NEW",
        ],
    )
    .await;
}

/// A 2016 wide 5-year file whose top columns are `MALE_85+`/`FEMALE_85+` (the sum of
/// 85-89, 90-94 and 95+), as some pre-2017 files were published.
fn open_top_band(text: &str) -> String {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let folded = |sex: &str| -> Vec<usize> {
        ["85-89", "90-94", "95+"]
            .iter()
            .map(|b| {
                header
                    .iter()
                    .position(|h| *h == format!("{sex}_{b}"))
                    .unwrap()
            })
            .collect()
    };
    let (male, female) = (folded("MALE"), folded("FEMALE"));
    let rewrite = |fields: Vec<String>, sum: &dyn Fn(&[usize]) -> String| -> String {
        let mut out = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if i == male[0] {
                out.push(sum(&male));
            } else if i == female[0] {
                out.push(sum(&female));
            } else if !male.contains(&i) && !female.contains(&i) {
                out.push(f.clone());
            }
        }
        out.join(",")
    };
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = rewrite(head, &|cols: &[usize]| {
        if cols == male.as_slice() {
            "MALE_85+".into()
        } else {
            "FEMALE_85+".into()
        }
    }) + "\n";
    for line in lines {
        let fields: Vec<String> = line.split(',').map(str::to_string).collect();
        let f2 = fields.clone();
        let sum = move |cols: &[usize]| -> String {
            cols.iter()
                .map(|i| f2[*i].parse::<u64>().unwrap())
                .sum::<u64>()
                .to_string()
        };
        out.push_str(&(rewrite(fields, &sum) + "\n"));
    }
    out
}

#[tokio::test]
async fn an_open_85_plus_top_band_is_stored_as_published_and_checked_against_single_years() {
    let (_d, lake) = local_lake();
    let dir = tempfile::tempdir().unwrap();
    let r = release(&pop(), (2016, 1)).unwrap();
    let mut expected = 0u64;
    for f in &r.files {
        let text = String::from_utf8(f.bytes.clone()).unwrap();
        let text = if f.name.starts_with("gp-reg-patients-01-2016") {
            let folded = open_top_band(&text);
            expected = folded
                .lines()
                .skip(1)
                .map(|l| {
                    l.rsplit(',')
                        .take(1)
                        .next()
                        .unwrap()
                        .parse::<u64>()
                        .unwrap()
                })
                .sum::<u64>();
            folded
        } else {
            text
        };
        // Wide files carry no EXTRACT_DATE: a dated folder says the month.
        let folder = dir.path().join("2016-01");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(&f.name), text).unwrap();
    }
    let report = full_sync(&lake, &Source::Dir(dir.path().into()), "2016-01", "2016-01")
        .await
        .unwrap();
    let build = report.build.unwrap();
    assert!(!build.gate_failed(), "{:?}", build.months[0].failures);
    let top = rows(
        &lake,
        "SELECT CAST(SUM(registered_population) AS VARCHAR) FROM fact_gp_registered_patients WHERE age_band = '85+' AND sex = 'FEMALE'",
    )
    .await;
    assert_eq!(top, vec![expected.to_string()]);
    let split = rows(
        &lake,
        "SELECT COUNT(*) FROM fact_gp_registered_patients WHERE age_band IN ('85-89', '90-94', '95+')",
    )
    .await;
    assert_eq!(split, vec!["0"], "never split into the bands it spans");
    let dim = rows(&lake, "SELECT age_band FROM dim_age_band WHERE age = '85+'").await;
    assert_eq!(dim, vec!["85+"]);
    let gate = rows(
        &lake,
        "SELECT CAST(passed AS VARCHAR) FROM quality WHERE rule = 'single_age_matches_quinary'",
    )
    .await;
    assert_eq!(gate, vec!["true"]);
}

#[tokio::test]
async fn a_wide_file_without_age_columns_keeps_the_month_out() {
    let (_d, lake) = local_lake();
    let dir = tempfile::tempdir().unwrap();
    for f in release(&pop(), (2016, 1)).unwrap().files {
        let text = String::from_utf8(f.bytes).unwrap();
        let text = if f.name.starts_with("gp-reg-patients-01-2016") {
            // Only the first eight columns: codes and totals.
            text.lines()
                .map(|l| l.split(',').take(8).collect::<Vec<_>>().join(",") + "\n")
                .collect()
        } else {
            text
        };
        // Wide files carry no EXTRACT_DATE: a dated folder says the month.
        let folder = dir.path().join("2016-01");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(&f.name), text).unwrap();
    }
    let report = full_sync(&lake, &Source::Dir(dir.path().into()), "2016-01", "2016-01")
        .await
        .unwrap();
    let build = report.build.unwrap();
    assert!(build.gate_failed());
    let failures = build.months[0].failures.join("\n");
    assert!(failures.contains("no age columns (MALE_0-4"), "{failures}");
}

#[tokio::test]
async fn masked_cells_in_wide_files_are_recorded_as_suppressed_never_guessed() {
    let (_d, lake) = local_lake();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("2016-01");
    std::fs::create_dir_all(&folder).unwrap();
    let mut masked = Vec::new();
    for f in release(&pop(), (2016, 1)).unwrap().files {
        let mut text = String::from_utf8(f.bytes).unwrap();
        if f.name.starts_with("gp-reg-patients-01-2016") {
            let mut lines: Vec<Vec<String>> = text
                .lines()
                .map(|l| l.split(',').map(str::to_string).collect())
                .collect();
            let at = |name: &str| lines[0].iter().position(|h| h == name).unwrap();
            let (male, female) = (at("MALE_0-4"), at("FEMALE_0-4"));
            let (total, total_male) = (at("TOTAL_ALL"), at("TOTAL_MALE"));
            lines[1][male] = "*".into();
            lines[2][female] = String::new();
            for line in &lines[1..3] {
                masked.push((
                    line[0].clone(),
                    line[total].clone(),
                    line[total_male].clone(),
                ));
            }
            text = lines.iter().map(|l| l.join(",") + "\n").collect();
        }
        std::fs::write(folder.join(&f.name), text).unwrap();
    }
    let report = full_sync(&lake, &Source::Dir(dir.path().into()), "2016-01", "2016-01")
        .await
        .unwrap();
    let build = report.build.unwrap();
    assert!(!build.gate_failed(), "{:?}", build.months[0].failures);
    let cells = rows(
        &lake,
        "SELECT practice_code, sex, age_band FROM fact_gp_registered_patients WHERE suppressed AND registered_population IS NULL ORDER BY 1",
    )
    .await;
    assert_eq!(cells.len(), 2, "{cells:?}");
    for (code, total, male) in &masked {
        let snapshot = rows(
            &lake,
            &format!("SELECT CAST(registered_population AS VARCHAR), CAST(male AS VARCHAR), total_from FROM practice_snapshot WHERE practice_code = '{code}'"),
        )
        .await;
        assert_eq!(snapshot, vec![format!("{total}\t{male}\twide_total")]);
    }
    let bands = rows(
        &lake,
        "SELECT CAST(passed AS VARCHAR), message FROM quality WHERE rule = 'bands_sum_to_all'",
    )
    .await;
    assert!(
        bands
            .iter()
            .any(|r| r.starts_with("true") && r.contains("2 not verifiable (2 suppressed cells)")),
        "{bands:?}"
    );
    let quarantined = rows(&lake, "SELECT COUNT(*) FROM quarantine").await;
    assert_eq!(quarantined, vec!["0"], "masked cells are never quarantined");
}

/// April 2024 served with its NHAIS set listed first, and link texts passed through `label`.
fn april_2024(label: impl Fn(&str) -> String) -> SynthRelease {
    let mut r = release(&pop(), (2024, 4)).unwrap();
    let (pds, nhais): (Vec<_>, Vec<_>) = r
        .files
        .into_iter()
        .partition(|f| f.link_text.ends_with("(PDS)"));
    r.files = nhais.into_iter().chain(pds).collect();
    for f in &mut r.files {
        f.link_text = label(&f.link_text);
    }
    r
}

async fn used_files(lake: &Lake) -> Vec<String> {
    rows(
        lake,
        "SELECT source_file FROM files WHERE used AND snapshot_date = DATE '2024-04-01' ORDER BY 1",
    )
    .await
}

#[tokio::test]
async fn the_pds_set_wins_even_listed_second_and_sets_are_never_mixed() {
    let (_d, lake) = local_lake();
    let mirror = Mirror::start(vec![april_2024(|t| t.to_string())]);
    let report = full_sync(
        &lake,
        &Source::parse(&mirror.series_url()),
        "2024-04",
        "2024-04",
    )
    .await
    .unwrap();
    let build = report.build.unwrap();
    assert!(
        build.months[0].source_set.starts_with("PDS ("),
        "{}",
        build.months[0].source_set
    );
    assert_eq!(
        silver_by_band(&lake, (2024, 4)).await,
        truth_by_band(&pop(), (2024, 4))
    );
    // Listed second, the PDS files carry the folder tag: every file used has it.
    let used = used_files(&lake).await;
    assert!(
        !used.is_empty() && used.iter().all(|f| f.contains('~')),
        "{used:?}"
    );
    assert!(
        !build.months[0]
            .warnings
            .iter()
            .any(|w| w.contains("which is PDS"))
    );
}

#[tokio::test]
async fn with_no_marker_words_one_whole_set_is_used_and_the_choice_is_warned() {
    let (_d, lake) = local_lake();
    let unmarked = |t: &str| t.replace(" (PDS)", "").replace(" (NHAIS)", "");
    let mirror = Mirror::start(vec![april_2024(unmarked)]);
    let report = full_sync(
        &lake,
        &Source::parse(&mirror.series_url()),
        "2024-04",
        "2024-04",
    )
    .await
    .unwrap();
    let build = report.build.unwrap();
    let m = &build.months[0];
    assert!(m.source_set.starts_with("first set ("), "{}", m.source_set);
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("neither their names, links nor folders say which is PDS")),
        "{:?}",
        m.warnings
    );
    let used = used_files(&lake).await;
    assert!(
        !used.is_empty() && used.iter().all(|f| !f.contains('~')),
        "one set only: {used:?}"
    );
}

/// Silver's data files as engines find them: zstd, written by gplake, statistics per column
/// chunk for the codes readers filter on and none for names, postcodes and lineage.
#[tokio::test]
async fn fact_files_are_zstd_with_statistics_only_where_they_prune() {
    use deltalake::parquet::basic::Compression;
    use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
    let (dir, lake) = local_lake();
    let mirror = Mirror::start(vec![release(&pop(), (2024, 5)).unwrap()]);
    let source = Source::parse(&mirror.series_url());
    full_sync(&lake, &source, "2024-05", "2024-05")
        .await
        .unwrap();
    let table = dir
        .path()
        .join("silver/fact_gp_registered_patients_single_age");
    let files = crate::support::parquet_files(&table);
    assert!(!files.is_empty());
    for path in files {
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let meta = reader.metadata();
        assert!(
            meta.file_metadata()
                .created_by()
                .is_some_and(|c| c.starts_with("gplake ")),
            "{path:?}"
        );
        let group = meta.row_group(0);
        let column = |name: &str| {
            (0..group.num_columns())
                .map(|i| group.column(i))
                .find(|c| c.column_path().string() == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        for name in [
            "practice_code",
            "icb_code",
            "sex",
            "age",
            "registered_population",
        ] {
            let stats = column(name).statistics();
            assert!(stats.is_some_and(|s| s.min_bytes_opt().is_some()), "{name}");
            assert!(matches!(column(name).compression(), Compression::ZSTD(_)));
        }
        let descriptive: Vec<&str> = gplake::catalog::FACT_SINGLE_AGE
            .columns
            .iter()
            .map(|c| c.name)
            .filter(|n| gplake::catalog::UNFILTERED.contains(n))
            .collect();
        assert_eq!(descriptive.len(), 5, "{descriptive:?}");
        for name in descriptive {
            assert!(column(name).statistics().is_none(), "{name} has statistics");
        }
    }
}
