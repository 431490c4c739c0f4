//! `gplake sync`, `build`, `check` and `status` on silver, as a user runs them: exit 3 when
//! the quality gate keeps a month out, and `status` pointing at the next command.

use gplake_testkit::{Mirror, Population, release, release_with_duplicated_95};

use crate::{assert_exit, gplake, stderr, stdout};

#[test]
fn a_defective_reissue_exits_3_until_the_fix_arrives() {
    let pop = Population::new(4, 8);
    let mirror = Mirror::start(vec![
        release(&pop, (2024, 4)).unwrap(),
        release_with_duplicated_95(&pop, (2024, 5)).unwrap(),
    ]);
    let lake = tempfile::tempdir().unwrap();
    let lake = lake.path().to_str().unwrap();
    let source = mirror.series_url();
    let sync = |extra: &[&str]| {
        let mut args = vec![
            "--lake",
            lake,
            "sync",
            "--source",
            &source,
            "--from",
            "2024-04",
            "--to",
            "2024-05",
            "--backoff-ms",
            "10",
        ];
        args.extend(extra);
        gplake(&args, &[])
    };
    let first = sync(&[]);
    assert_exit(&first, 3);
    let text = stdout(&first);
    assert!(text.contains("2024-04  built"), "{text}");
    assert!(
        text.contains("2024-05  KEPT OUT 6 failure(s); this month's silver is as it was"),
        "{text}"
    );
    assert!(
        text.contains(
            "error: gp-reg-pat-prac-sing-age-male.zip!gp-reg-pat-prac-sing-age-male.csv line"
        ),
        "{text}"
    );
    assert!(text.contains("1 kept out by the quality gate"), "{text}");

    let status = gplake(&["--lake", lake, "status"], &[]);
    let text = stdout(&status);
    let april = text.lines().find(|l| l.starts_with("2024-04")).unwrap();
    assert!(
        april.contains("2024-04-10")
            && april.contains("built")
            && april.contains("PDS (7 files of the NHAIS set"),
        "{text}"
    );
    assert!(
        text.contains("2024-05") && text.contains("failed"),
        "{text}"
    );
    assert!(text.contains("next: gplake check"), "{text}");
    let check = gplake(&["--lake", lake, "check"], &[]);
    assert_eq!(check.status.code(), Some(3));
    assert!(stdout(&check).contains("appears more than once"));

    // Unchanged upstream: still failing, still exit 3, nothing rebuilt.
    let again = sync(&[]);
    assert_eq!(again.status.code(), Some(3));
    assert!(
        stdout(&again)
            .contains("0 months built (0 rows), 0 kept out by the quality gate, 2 unchanged"),
        "{}",
        stdout(&again)
    );

    mirror.publish(release(&pop, (2024, 5)).unwrap());
    let fixed = sync(&[]);
    assert_eq!(fixed.status.code(), Some(0), "{}", stdout(&fixed));
    assert!(stdout(&fixed).contains("2024-05  built"));
    let json = gplake(&["--lake", lake, "--json", "status"], &[]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(status["months"][1]["silver"], "built");
    assert_eq!(status["months"][1]["revised_files"], 2);
}

#[test]
fn build_rebuilds_on_demand_and_fetch_stays_in_bronze() {
    let lake = tempfile::tempdir().unwrap();
    let lake = lake.path().to_str().unwrap();
    let fetch = gplake(
        &["--lake", lake, "fetch", "--source", "examples/releases"],
        &[],
    );
    assert!(fetch.status.success());
    assert!(!stdout(&fetch).contains("silver"), "fetch is bronze only");
    assert!(stdout(&gplake(&["--lake", lake, "status"], &[])).contains("next: gplake build"));
    let build = gplake(&["--lake", lake, "build"], &[]);
    assert!(build.status.success(), "{}", stderr(&build));
    assert!(
        stdout(&build).contains("silver: 6 months built"),
        "{}",
        stdout(&build)
    );
    let nothing = gplake(&["--lake", lake, "build"], &[]);
    assert!(
        stdout(&nothing)
            .contains("0 months built (0 rows), 0 kept out by the quality gate, 6 unchanged"),
        "{}",
        stdout(&nothing)
    );
    let forced = gplake(
        &["--lake", lake, "build", "--month", "2022-09", "--force"],
        &[],
    );
    assert!(
        stdout(&forced).starts_with("2022-09  built"),
        "{}",
        stdout(&forced)
    );
    assert!(
        stdout(&forced).contains("silver: 1 months built"),
        "{}",
        stdout(&forced)
    );
    assert!(stdout(&gplake(&["--lake", lake, "status"], &[])).contains("everything is current"));
}

/// January 2021 with its 5-year file's count column renamed, and September 2022 as published.
fn renamed_column_source() -> tempfile::TempDir {
    let pop = Population::new(4, 8);
    let dir = tempfile::tempdir().unwrap();
    for month in [(2021, 1), (2022, 9)] {
        for f in release(&pop, month).unwrap().files {
            let bytes = if month == (2021, 1) && f.name == "gp-reg-pat-prac-quin-age.csv" {
                String::from_utf8(f.bytes)
                    .unwrap()
                    .replacen("NUMBER_OF_PATIENTS", "PATIENT_COUNT", 1)
                    .into_bytes()
            } else {
                f.bytes
            };
            let folder = dir.path().join(format!("{}-{:02}", month.0, month.1));
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join(&f.name), bytes).unwrap();
        }
    }
    dir
}

#[test]
fn an_alias_unblocks_exactly_the_months_it_reads() {
    let source = renamed_column_source();
    let lake = tempfile::tempdir().unwrap();
    let lake = lake.path().to_str().unwrap();
    let src = source.path().to_str().unwrap();
    let first = gplake(&["--lake", lake, "sync", "--source", src], &[]);
    assert_eq!(first.status.code(), Some(3), "{}", stderr(&first));
    let text = stdout(&first);
    assert!(text.contains("2021-01  KEPT OUT"), "{text}");
    assert!(text.contains("2022-09  built"), "{text}");
    // The error gives the exact line that reads the renamed column.
    let line = "[columns] \"PATIENT_COUNT\" = \"NUMBER_OF_PATIENTS\"";
    assert!(text.contains(line), "{text}");

    let aliases = source.path().join("aliases.toml");
    // A target gplake does not know is refused, and nothing is kept.
    std::fs::write(
        &aliases,
        "[columns]\n\"PATIENT_COUNT\" = \"NUMBER_OF_PEOPLE\"\n",
    )
    .unwrap();
    let refused = gplake(
        &[
            "--lake",
            lake,
            "build",
            "--aliases",
            aliases.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("'NUMBER_OF_PEOPLE' is not a column gplake knows"));
    assert!(
        !std::path::Path::new(lake)
            .join("_meta/aliases.toml")
            .exists()
    );

    std::fs::write(&aliases, line.replace("[columns] ", "[columns]\n") + "\n").unwrap();
    let fixed = gplake(
        &[
            "--lake",
            lake,
            "build",
            "--aliases",
            aliases.to_str().unwrap(),
        ],
        &[],
    );
    assert_exit(&fixed, 0);
    let text = stdout(&fixed);
    assert!(text.contains("aliases: 1 entries"), "{text}");
    assert!(text.contains("2021-01  built"), "{text}");
    assert!(
        !text.contains("2022-09"),
        "the month that read no alias is not rebuilt: {text}"
    );
    assert!(text.contains("1 unchanged"), "{text}");
    // Kept in the lake: the next build needs no flag, and rebuilds nothing.
    let again = gplake(&["--lake", lake, "build"], &[]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stdout(&again)
            .contains("0 months built (0 rows), 0 kept out by the quality gate, 2 unchanged")
    );
    let state =
        std::fs::read_to_string(std::path::Path::new(lake).join("_meta/build/2021-01.json"))
            .unwrap();
    assert!(
        state.contains("columns.PATIENT_COUNT=NUMBER_OF_PATIENTS"),
        "{state}"
    );
}

#[test]
fn a_broken_lsoa_file_shows_as_a_partial_month_in_status_and_check() {
    let pop = Population::new(4, 8);
    let dir = tempfile::tempdir().unwrap();
    for f in release(&pop, (2021, 1)).unwrap().files {
        let bytes = if f.name.starts_with("gp-reg-pat-prac-lsoa") {
            // A ZIP cut short: its members cannot be read.
            f.bytes[..f.bytes.len() - 40].to_vec()
        } else {
            f.bytes
        };
        let folder = dir.path().join("2021-01");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(&f.name), bytes).unwrap();
    }
    let lake = tempfile::tempdir().unwrap();
    let lake = lake.path().to_str().unwrap();
    let src = dir.path().to_str().unwrap();
    let sync = gplake(&["--lake", lake, "sync", "--source", src], &[]);
    assert_exit(&sync, 3);
    let text = stdout(&sync);
    assert!(text.contains("2021-01  partial"), "{text}");
    assert!(
        text.contains("(fact_gp_registered_patients_lsoa kept out)"),
        "{text}"
    );

    let status = gplake(&["--lake", lake, "status"], &[]);
    let text = stdout(&status);
    let line = text.lines().find(|l| l.starts_with("2021-01")).unwrap();
    assert!(
        line.contains("PARTIAL (1)") && line.contains("(= published)"),
        "{text}"
    );
    assert!(
        text.contains("kept out: fact_gp_registered_patients_lsoa"),
        "{text}"
    );

    let check = gplake(&["--lake", lake, "check"], &[]);
    assert_eq!(check.status.code(), Some(3));
    let text = stdout(&check);
    assert!(
        text.lines()
            .any(|l| l.contains("fact_gp_registered_patients_lsoa") && l.contains("failed")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("fact_gp_registered_patients ") && l.contains("built")),
        "{text}"
    );
    assert!(text.contains("1 with a table kept out"), "{text}");
}
