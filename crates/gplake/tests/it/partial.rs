//! Every published figure lands in a table, whatever files a month has: partial releases
//! (totals only, map only, map and organisation file, age files without a map, everything),
//! the published organisation figures, the national figure, per-table gating of the files
//! only one table reads, and what a reissue changed.

use std::collections::BTreeMap;
use std::path::Path;

use gplake::{Lake, Source};
use gplake_testkit::{Mirror, Population, SynthRelease, release};

use crate::support::{full_sync, local_lake, rows};

const MONTH: (i32, u32) = (2021, 1);
const DAY: &str = "2021-01-01";

const TOTALS: &str = "gp-reg-pat-prac-all.csv";
const QUINARY: &str = "gp-reg-pat-prac-quin-age.csv";
const MALE: &str = "gp-reg-pat-prac-sing-age-male.csv";
const FEMALE: &str = "gp-reg-pat-prac-sing-age-female.csv";
const REGIONS: &str = "gp-reg-pat-prac-sing-age-regions.csv";
const MAP: &str = "gp-reg-pat-prac-map.csv";
const LSOA: &str = "gp-reg-pat-prac-lsoa";

/// January 2021's synthetic files whose names start with one of `keep`, each passed through
/// `tamper`, written into a folder as a user's hand downloads.
fn files(keep: &[&str], tamper: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in release(&Population::new(21, 9), MONTH).unwrap().files {
        if keep.iter().any(|k| f.name.starts_with(k)) {
            let bytes = tamper(&f.name, f.bytes);
            std::fs::write(dir.path().join(&f.name), bytes).unwrap();
        }
    }
    dir
}

fn untouched(_: &str, bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

async fn build_from(lake: &Lake, dir: &Path) -> gplake::BuildReport {
    let source = Source::Dir(dir.into());
    full_sync(lake, &source, "2021-01", "2021-01")
        .await
        .unwrap()
        .build
        .unwrap()
}

/// The published ALL/ALL rows of a long file: (ORG_TYPE, ORG_CODE) → count.
fn published_all(csv: &[u8]) -> BTreeMap<(String, String), u64> {
    let text = String::from_utf8(csv.to_vec()).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (ty, code, sex, count) = (
        at("ORG_TYPE"),
        at("ORG_CODE"),
        at("SEX"),
        at("NUMBER_OF_PATIENTS"),
    );
    let age = header
        .iter()
        .position(|h| *h == "AGE" || *h == "AGE_GROUP_5")
        .unwrap();
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[sex] == "ALL" && f[age] == "ALL" && f[ty] != "GP")
        .map(|f| {
            (
                (f[ty].to_string(), f[code].to_string()),
                f[count].parse().unwrap(),
            )
        })
        .collect()
}

fn file_bytes(name: &str) -> Vec<u8> {
    release(&Population::new(21, 9), MONTH)
        .unwrap()
        .files
        .into_iter()
        .find(|f| f.name == name)
        .unwrap()
        .bytes
}

/// gplake's `org_type` for a published `ORG_TYPE` label of 2021.
fn level(label: &str) -> &'static str {
    match label {
        "Comm Region" => "REGION",
        "CCG" => "SUB_ICB",
        "STP" | "ICB" => "ICB",
        "PCN" => "PCN",
        other => panic!("label {other}"),
    }
}

async fn sizes(lake: &Lake) -> BTreeMap<String, (String, String)> {
    rows(lake, &format!("SELECT practice_code, CAST(registered_population AS VARCHAR), total_from FROM practice_snapshot WHERE snapshot_date = DATE '{DAY}' AND registered_population IS NOT NULL"))
        .await
        .into_iter()
        .map(|r| {
            let f: Vec<&str> = r.split('\t').collect();
            (f[0].to_string(), (f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

async fn quality(lake: &Lake, rule: &str) -> Vec<String> {
    rows(lake, &format!("SELECT CAST(passed AS VARCHAR), CAST(skipped AS VARCHAR), COALESCE(subject, ''), COALESCE(CAST(expected AS VARCHAR), ''), COALESCE(CAST(actual AS VARCHAR), ''), message FROM quality WHERE rule = '{rule}' AND snapshot_date = DATE '{DAY}' ORDER BY checked_at, subject"))
        .await
}

/// The practice totals file: CODE → NUMBER_OF_PATIENTS.
fn totals_file() -> BTreeMap<String, u64> {
    let text = String::from_utf8(file_bytes(TOTALS)).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let code = header.iter().position(|h| *h == "CODE").unwrap();
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .map(|f| (f[code].to_string(), f.last().unwrap().parse().unwrap()))
        .collect()
}

#[tokio::test]
async fn a_totals_file_alone_gives_every_list_size_and_the_national_figure() {
    let (_d, lake) = local_lake();
    let dir = files(&[TOTALS], untouched);
    let build = build_from(&lake, dir.path()).await;
    assert!(!build.gate_failed(), "{:?}", build.months[0].failures);
    let expected = totals_file();
    let got = sizes(&lake).await;
    assert_eq!(got.len(), expected.len());
    for (code, n) in &expected {
        assert_eq!(
            got[code],
            (n.to_string(), "practice_totals".into()),
            "{code}"
        );
    }
    let org = quality(&lake, "org_totals_match").await;
    assert!(
        org[0].starts_with("true\ttrue\t"),
        "skipped, not passed: {org:?}"
    );
    let status = gplake::status::status(&lake).await.unwrap();
    let m = &status.months[0];
    assert!(
        m.notes()
            .contains(&"no age files in this release".to_string()),
        "{:?}",
        m.notes()
    );
    let national = m.national.unwrap();
    assert_eq!(national.practices, Some(expected.values().sum()));
    assert_eq!(national.published, None);
}

#[tokio::test]
async fn a_map_and_the_organisation_file_publish_their_figures_without_practice_files() {
    let (_d, lake) = local_lake();
    let dir = files(&[MAP, REGIONS], untouched);
    let build = build_from(&lake, dir.path()).await;
    assert!(!build.gate_failed(), "{:?}", build.months[0].failures);
    // The organisation file's figures are stored, leaf rows summing to its ALL rows.
    let published = published_all(&file_bytes(REGIONS));
    let stored: BTreeMap<(String, String), u64> = rows(&lake, &format!("SELECT org_type, org_code, CAST(SUM(registered_population) AS VARCHAR) FROM fact_org_registered_patients_single_age WHERE snapshot_date = DATE '{DAY}' GROUP BY 1, 2"))
        .await
        .into_iter()
        .map(|r| {
            let f: Vec<&str> = r.split('\t').collect();
            ((f[0].to_string(), f[1].to_string()), f[2].parse().unwrap())
        })
        .collect();
    let expected: BTreeMap<(String, String), u64> = published
        .iter()
        .map(|((t, c), n)| ((level(t).to_string(), c.clone()), *n))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(stored, expected);
    // Nothing to reconcile them with: skipped, and said so.
    let org = quality(&lake, "org_totals_match").await;
    assert!(
        org[0].starts_with("true\ttrue\t") && org[0].contains("no practice-level files"),
        "{org:?}"
    );
    // The map's practices reach practice_snapshot and the dims.
    let practices = rows(
        &lake,
        &format!("SELECT COUNT(*) FROM practice_snapshot WHERE snapshot_date = DATE '{DAY}'"),
    )
    .await;
    assert!(practices[0].parse::<u64>().unwrap() > 0);
    let dims = rows(&lake, "SELECT COUNT(*) FROM dim_practice").await;
    assert_eq!(dims, practices);
    // The published figure is in gold, on its own basis.
    let gold = rows(&lake, &format!("SELECT org_code, CAST(registered_population AS VARCHAR) FROM org_population_monthly WHERE basis = 'published' AND org_type = 'REGION' AND snapshot_date = DATE '{DAY}' ORDER BY 1")).await;
    let regions: Vec<String> = expected
        .iter()
        .filter(|((t, _), _)| t == "REGION")
        .map(|((_, c), n)| format!("{c}\t{n}"))
        .collect();
    assert_eq!(gold, regions);
    let national = gplake::status::status(&lake).await.unwrap().months[0]
        .national
        .unwrap();
    let region_sum: u64 = expected
        .iter()
        .filter(|((t, _), _)| t == "REGION")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(national.published, Some(region_sum));
    assert_eq!(national.practices, None);
}

#[tokio::test]
async fn age_files_without_a_map_keep_the_codes_they_give_and_say_the_rest_is_null() {
    let (_d, lake) = local_lake();
    let dir = files(&[QUINARY, MALE, FEMALE], untouched);
    let build = build_from(&lake, dir.path()).await;
    assert!(!build.gate_failed(), "{:?}", build.months[0].failures);
    let warnings = build.months[0].warnings.join("\n");
    assert!(
        warnings.contains("the release has no map") && warnings.contains("left NULL"),
        "{warnings}"
    );
    let names = rows(
        &lake,
        "SELECT COUNT(*) FROM fact_gp_registered_patients WHERE practice_name IS NOT NULL",
    )
    .await;
    assert_eq!(names, vec!["0"]);
    // The quinary file's organisation rows are stored, and reconcile where they can.
    let published = published_all(&file_bytes(QUINARY));
    let stored = rows(&lake, "SELECT CAST(SUM(registered_population) AS VARCHAR) FROM fact_org_registered_patients WHERE org_type = 'REGION'").await;
    let regions: u64 = published
        .iter()
        .filter(|((t, _), _)| t == "Comm Region")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(stored, vec![regions.to_string()]);
    let sizes = sizes(&lake).await;
    assert!(sizes.values().all(|(_, from)| from == "quinary"));
}

#[tokio::test]
async fn a_whole_release_shows_the_publishers_figure_beside_the_practice_sums() {
    let (_d, lake) = local_lake();
    let dir = files(&[TOTALS, QUINARY, MALE, FEMALE, REGIONS, MAP], untouched);
    let build = build_from(&lake, dir.path()).await;
    assert!(!build.gate_failed(), "{:?}", build.months[0].failures);
    let side_by_side = rows(&lake, &format!("SELECT p.org_type, p.org_code, CAST(p.registered_population AS VARCHAR), CAST(s.registered_population AS VARCHAR), CAST(s.difference_from_published AS VARCHAR) FROM org_population_monthly p JOIN org_population_monthly s ON s.org_type = p.org_type AND s.org_code = p.org_code AND s.snapshot_date = p.snapshot_date AND s.basis = 'as_published' WHERE p.basis = 'published' AND p.snapshot_date = DATE '{DAY}' ORDER BY 1, 2")).await;
    assert!(side_by_side.len() > 3, "{side_by_side:?}");
    for row in &side_by_side {
        let f: Vec<&str> = row.split('\t').collect();
        assert_eq!((f[2], f[4]), (f[3], "0"), "{row}");
    }
    let national = quality(&lake, "national_total").await;
    assert!(national[0].starts_with("true\tfalse\t"), "{national:?}");
    let status = gplake::status::status(&lake).await.unwrap();
    let n = status.months[0].national.unwrap();
    assert_eq!(n.published, n.practices);
    assert!(n.describe().contains("(= published)"));
}

/// January 2021 as served by a mirror, each file passed through `tamper`.
fn served(tamper: &dyn Fn(&str, Vec<u8>) -> Vec<u8>) -> SynthRelease {
    let mut r = release(&Population::new(21, 9), MONTH).unwrap();
    for f in &mut r.files {
        f.bytes = tamper(&f.name, std::mem::take(&mut f.bytes));
    }
    r
}

/// A good month, then a reissue with one file broken by `tamper`: only `table` is kept out
/// (its previous month stays), every other table takes the new build.
async fn only_its_table_kept_out(
    tamper: impl Fn(&str, Vec<u8>) -> Vec<u8>,
    table: &str,
    fragment: &str,
) {
    let (_d, lake) = local_lake();
    let mirror = Mirror::start(vec![served(&untouched)]);
    let source = Source::parse(&mirror.series_url());
    full_sync(&lake, &source, "2021-01", "2021-01")
        .await
        .unwrap();
    let count = |t: String| {
        let lake = lake.clone();
        async move { rows(&lake, &format!("SELECT COUNT(*) FROM {t}")).await }
    };
    let before = count(table.to_string()).await;
    mirror.publish(served(&tamper));
    let report = full_sync(&lake, &source, "2021-01", "2021-01")
        .await
        .unwrap();
    let build = report.build.unwrap();
    assert!(build.gate_failed());
    let m = &build.months[0];
    assert!(m.committed, "{:?}", m.failures);
    assert_eq!(m.kept_out, vec![table.to_string()]);
    assert!(
        m.failures
            .iter()
            .any(|f| f.contains(fragment) && f.contains(table)),
        "{:?}",
        m.failures
    );
    assert!(
        m.rows
            .iter()
            .any(|(t, n)| t == "fact_gp_registered_patients" && *n > 0)
    );
    assert_eq!(
        count(table.to_string()).await,
        before,
        "{table}: previous month kept"
    );
    let status = gplake::status::status(&lake).await.unwrap();
    assert!(status.any_failed());
    assert_eq!(status.months[0].kept_out_tables(), vec![table]);
    assert!(status.months[0].quality().starts_with("PARTIAL"));
    let recorded = rows(
        &lake,
        &format!("SELECT COUNT(*) FROM quality WHERE table_name = '{table}' AND NOT passed"),
    )
    .await;
    assert_ne!(recorded, vec!["0"]);
}

#[tokio::test]
async fn a_broken_lsoa_file_keeps_only_the_lsoa_table_out() {
    let tamper = |name: &str, bytes: Vec<u8>| {
        // A download cut short: the ZIP's first bytes only.
        if name.starts_with(LSOA) {
            bytes[..200].to_vec()
        } else {
            bytes
        }
    };
    only_its_table_kept_out(
        tamper,
        "fact_gp_registered_patients_lsoa",
        "not a readable ZIP",
    )
    .await;
}

#[tokio::test]
async fn a_practice_coming_back_in_the_lsoa_file_with_a_repeated_row_keeps_only_the_lsoa_table_out()
{
    // The first practice's first male or female row again at the end of its member, after
    // every other practice's rows: the repeat is found though the practice's run had ended.
    let tamper = |name: &str, bytes: Vec<u8>| {
        if name.starts_with(LSOA) {
            repeat_first_lsoa_row(&bytes).0
        } else {
            bytes
        }
    };
    let lsoa = release(&Population::new(21, 9), MONTH)
        .unwrap()
        .files
        .into_iter()
        .find(|f| f.name.starts_with(LSOA))
        .unwrap();
    let (_, repeated) = repeat_first_lsoa_row(&lsoa.bytes);
    only_its_table_kept_out(tamper, "fact_gp_registered_patients_lsoa", &repeated).await;
}

/// The LSOA ZIP with its first member's first male or female row appended to that member;
/// with what the failure must say of it: its practice, LSOA and first line.
fn repeat_first_lsoa_row(zip: &[u8]) -> (Vec<u8>, String) {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut members = Vec::new();
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut member, &mut text).unwrap();
        members.push((member.name().unwrap().to_string(), text));
    }
    let mut found = None;
    for (_, text) in &mut members {
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (sex, code, lsoa) = (at("SEX"), at("PRACTICE_CODE"), at("LSOA_CODE"));
        // A row without quotes (practice names may hold commas), so fields split on commas.
        let row = text.lines().enumerate().skip(1).find(|(_, l)| {
            let f: Vec<&str> = l.split(',').collect();
            !l.contains('"') && (f[sex] == "MALE" || f[sex] == "FEMALE")
        });
        if let Some((i, line)) = row {
            let f: Vec<&str> = line.split(',').collect();
            found = Some(format!(
                "practice {} LSOA {} appears more than once (first at line {})",
                f[code],
                f[lsoa],
                i + 1
            ));
            let line = format!("{line}\r\n");
            text.push_str(&line);
            break;
        }
    }
    let repeated = found.expect("a male or female LSOA row");
    let members: Vec<(String, Vec<u8>)> = members
        .into_iter()
        .map(|(n, t)| (n, t.into_bytes()))
        .collect();
    (gplake_testkit::synth::zip_members(&members), repeated)
}

#[tokio::test]
async fn a_broken_organisation_file_keeps_only_its_table_out() {
    let tamper = |name: &str, bytes: Vec<u8>| {
        if name == REGIONS {
            String::from_utf8(bytes)
                .unwrap()
                .replacen("NUMBER_OF_PATIENTS", "PATIENT_COUNT", 1)
                .into_bytes()
        } else {
            bytes
        }
    };
    only_its_table_kept_out(tamper, "fact_org_registered_patients_single_age", REGIONS).await;
}

#[tokio::test]
async fn an_organisation_row_that_does_not_reconcile_keeps_only_its_table_out() {
    let tamper = |name: &str, bytes: Vec<u8>| {
        if name != REGIONS {
            return bytes;
        }
        // The first region's published ALL row, one patient more.
        let text = String::from_utf8(bytes).unwrap();
        let mut done = false;
        text.split_inclusive('\n')
            .map(|l| {
                let f: Vec<&str> = l.trim_end().split(',').collect();
                if !done && f.len() == 8 && f[2] == "Comm Region" && f[5] == "ALL" && f[6] == "ALL"
                {
                    done = true;
                    let n: u64 = f[7].parse().unwrap();
                    format!("{},{}\r\n", f[..7].join(","), n + 1)
                } else {
                    l.to_string()
                }
            })
            .collect::<String>()
            .into_bytes()
    };
    only_its_table_kept_out(
        tamper,
        "fact_org_registered_patients_single_age",
        "its practices sum to",
    )
    .await;
}

#[tokio::test]
async fn a_repeated_organisation_row_keeps_only_its_table_out_naming_both_lines() {
    let tamper = |name: &str, bytes: Vec<u8>| {
        if name != REGIONS {
            return bytes;
        }
        let text = String::from_utf8(bytes).unwrap();
        let second = text.split_inclusive('\n').nth(1).unwrap().to_string();
        (text + &second).into_bytes()
    };
    only_its_table_kept_out(
        tamper,
        "fact_org_registered_patients_single_age",
        "appears more than once (first at line 2)",
    )
    .await;
}

#[tokio::test]
async fn a_reissue_records_which_practices_changed_and_by_how_much() {
    let (_d, lake) = local_lake();
    let first = files(&[TOTALS], untouched);
    build_from(&lake, first.path()).await;
    let totals = totals_file();
    let (code, old) = totals.iter().nth(3).map(|(c, n)| (c.clone(), *n)).unwrap();
    let changed = {
        let code = code.clone();
        move |_: &str, bytes: Vec<u8>| {
            let text = String::from_utf8(bytes).unwrap();
            text.split_inclusive('\n')
                .map(|l| {
                    if l.split(',').nth(5) == Some(code.as_str()) {
                        let (head, _) = l.trim_end().rsplit_once(',').unwrap();
                        format!("{head},{}\r\n", old + 7)
                    } else {
                        l.to_string()
                    }
                })
                .collect::<String>()
                .into_bytes()
        }
    };
    let second = files(&[TOTALS], changed);
    let build = build_from(&lake, second.path()).await;
    assert!(!build.gate_failed(), "{:?}", build.months[0].failures);
    let changes = quality(&lake, "reissue_changed").await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    let practice = changes.iter().find(|r| r.contains(&code)).unwrap();
    assert!(
        practice.starts_with(&format!("false\tfalse\t{code}\t{old}\t{}\t", old + 7)),
        "{practice}"
    );
    let national = changes.iter().find(|r| r.contains("England")).unwrap();
    assert!(national.contains("(+7)"), "{national}");
    let status = gplake::status::status(&lake).await.unwrap();
    assert_eq!(status.months[0].reissue_changed, Some(1));
    assert!(
        status.months[0]
            .notes()
            .iter()
            .any(|n| n == "reissue changed 1 practices' list sizes")
    );
    assert_eq!(sizes(&lake).await[&code].0, (old + 7).to_string());
}

#[tokio::test]
async fn a_map_alone_reaches_practice_snapshot_and_the_dims() {
    let (_d, lake) = local_lake();
    let dir = files(&[MAP], untouched);
    let build = build_from(&lake, dir.path()).await;
    assert!(!build.gate_failed(), "{:?}", build.months[0].failures);
    let map_rows = String::from_utf8(file_bytes(MAP)).unwrap().lines().count() - 1;
    let snapshot = rows(
        &lake,
        &format!("SELECT COUNT(*), COUNT(practice_name), COUNT(registered_population) FROM practice_snapshot WHERE snapshot_date = DATE '{DAY}'"),
    )
    .await;
    assert_eq!(snapshot, vec![format!("{map_rows}\t{map_rows}\t0")]);
    let orgs = rows(
        &lake,
        "SELECT COUNT(DISTINCT org_type) FROM dim_organisation",
    )
    .await;
    assert_eq!(orgs, vec!["4"], "PCN, sub-ICB, ICB, region");
    for rule in [
        "org_totals_match",
        "practice_totals_match",
        "national_total",
    ] {
        let r = quality(&lake, rule).await;
        assert!(r[0].starts_with("true\ttrue\t"), "{rule} skipped: {r:?}");
    }
    let status = gplake::status::status(&lake).await.unwrap();
    assert!(
        status.months[0]
            .notes()
            .contains(&"no age files in this release".to_string())
    );
}

#[tokio::test]
async fn a_file_its_page_no_longer_links_is_withdrawn_kept_and_not_used() {
    let (_d, lake) = local_lake();
    let mirror = Mirror::start(vec![served(&untouched)]);
    let source = Source::parse(&mirror.series_url());
    full_sync(&lake, &source, "2021-01", "2021-01")
        .await
        .unwrap();
    let from_map = format!(
        "SELECT COUNT(*) FROM practice_snapshot WHERE snapshot_date = DATE '{DAY}' AND attributes_from = 'map'"
    );
    assert_ne!(rows(&lake, &from_map).await, vec!["0"]);
    // The page is republished without the map.
    let mut without_map = served(&untouched);
    without_map.files.retain(|f| f.name != MAP);
    mirror.publish(without_map);
    let report = full_sync(&lake, &source, "2021-01", "2021-01")
        .await
        .unwrap();
    assert_eq!(report.fetch.withdrawn, 1, "{}", report.fetch.summary());
    assert!(report.fetch.summary().contains("1 withdrawn"));
    let manifest = crate::support::manifest(&lake, "2021-01").await.unwrap();
    let map = manifest.files.iter().find(|f| f.name == MAP).unwrap();
    assert!(map.withdrawn.is_some());
    assert!(
        crate::support::bronze_bytes(&lake, "2021-01", MAP)
            .await
            .is_some(),
        "kept in bronze"
    );
    // Rebuilt without it.
    assert_eq!(rows(&lake, &from_map).await, vec!["0"]);
    let used = rows(
        &lake,
        &format!("SELECT CAST(used AS VARCHAR) FROM files WHERE source_file = '{MAP}'"),
    )
    .await;
    assert_eq!(used, vec!["false"]);
    // Linked again: used again.
    mirror.publish(served(&untouched));
    full_sync(&lake, &source, "2021-01", "2021-01")
        .await
        .unwrap();
    let manifest = crate::support::manifest(&lake, "2021-01").await.unwrap();
    assert!(manifest.files.iter().all(|f| f.withdrawn.is_none()));
    assert_ne!(rows(&lake, &from_map).await, vec!["0"]);
}
