//! `gplake sync`, `build`, `check` and `status` on silver, as a user runs them: exit 3 when
//! the quality gate keeps a month out, and `status` pointing at the next command.

use gplake_testkit::{Mirror, Population, release, release_with_duplicated_95};

use crate::{gplake, stderr, stdout};

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
    assert_eq!(
        first.status.code(),
        Some(3),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    let text = stdout(&first);
    assert!(text.contains("2024-04  built"), "{text}");
    assert!(text.contains("2024-05  KEPT OUT"), "{text}");
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
