//! `--source DIR`: files downloaded by hand, in any layout, dated by their own EXTRACT_DATE,
//! else their name, else their folder — and clear errors when none of these says.

use gplake::Source;
use gplake_testkit::{Population, fixtures, release};

use crate::support::{bronze_bytes, full_sync, local_lake, manifest, rows, sync};

fn write(dir: &std::path::Path, relative: &str, bytes: &[u8]) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn any_layout_dated_by_extract_date_name_or_folder() {
    let pop = Population::new(3, 8);
    let src = tempfile::tempdir().unwrap();
    let jan21 = release(&pop, (2021, 1)).unwrap();
    let apr26 = release(&pop, (2026, 4)).unwrap();
    let jan16 = release(&pop, (2016, 1)).unwrap();
    for f in &jan21.files {
        write(src.path(), &f.name, &f.bytes);
    }
    for f in &apr26.files {
        write(src.path(), &format!("misc/nested/{}", f.name), &f.bytes);
    }
    for f in &jan16.files {
        write(src.path(), &format!("2016-01/{}", f.name), &f.bytes);
    }
    write(src.path(), "notes.txt", b"not data");
    let (_dir, lake) = local_lake();
    let report = sync(&lake, &Source::Dir(src.path().into()), "2013-10", "2026-11")
        .await
        .unwrap();
    let months: Vec<String> = report
        .discovery
        .releases
        .iter()
        .map(|r| r.month.to_string())
        .collect();
    assert_eq!(months, ["2016-01", "2021-01", "2026-04"]);
    for (month, r) in [
        ("2016-01", &jan16),
        ("2021-01", &jan21),
        ("2026-04", &apr26),
    ] {
        for f in &r.files {
            assert!(
                bronze_bytes(&lake, month, &f.name).await.unwrap() == f.bytes,
                "{month}/{}",
                f.name
            );
        }
        assert_eq!(
            manifest(&lake, month).await.unwrap().files.len(),
            r.files.len()
        );
    }
    let again = sync(&lake, &Source::Dir(src.path().into()), "2013-10", "2026-11")
        .await
        .unwrap();
    assert_eq!(again.fetch.fetched, 0);
}

#[tokio::test]
async fn the_real_samples_are_dated_by_their_extract_date() {
    let src = tempfile::tempdir().unwrap();
    for (_, name, bytes) in fixtures::samples() {
        write(src.path(), &name, &bytes);
    }
    let (_dir, lake) = local_lake();
    let report = sync(&lake, &Source::Dir(src.path().into()), "2013-10", "2026-11")
        .await
        .unwrap();
    let months: Vec<String> = report
        .discovery
        .releases
        .iter()
        .map(|r| r.month.to_string())
        .collect();
    assert_eq!(months, ["2017-10", "2021-01", "2022-01"]);
}

async fn error_for(files: &[(&str, &[u8])]) -> String {
    let src = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        write(src.path(), name, bytes);
    }
    let (dir, lake) = local_lake();
    let err = sync(&lake, &Source::Dir(src.path().into()), "2013-10", "2026-11")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), gplake::ErrorKind::BadInput);
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
    err.to_string()
}

#[tokio::test]
async fn a_file_with_no_month_anywhere_is_named() {
    let err = error_for(&[(
        "downloads/gp-reg-patients-prac-sing-year-age.csv",
        b"practice_code,total_all\nA1,5\n",
    )])
    .await;
    assert!(
        err.contains("gp-reg-patients-prac-sing-year-age.csv") && err.contains("YYYY-MM"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreadable_extract_date_is_named_with_line_and_column() {
    let err = error_for(&[(
        "gp-reg-pat-prac-all.csv",
        b"PUBLICATION,EXTRACT_DATE,TYPE\r\nGP_PRAC_PAT_LIST,31/01/2021,GP\r\n",
    )])
    .await;
    assert!(
        err.contains("gp-reg-pat-prac-all.csv line 2, column EXTRACT_DATE")
            && err.contains("31/01/2021"),
        "{err}"
    );
}

#[tokio::test]
async fn a_corrupt_zip_is_named() {
    let err = error_for(&[(
        "gp-reg-pat-prac-all.zip",
        b"PK\x03\x04 this is not a zip at all",
    )])
    .await;
    assert!(
        err.contains("gp-reg-pat-prac-all.zip") && err.contains("not a readable ZIP"),
        "{err}"
    );
}

#[tokio::test]
async fn renamed_downloads_are_classified_by_header_and_other_files_are_listed_as_skipped() {
    let pop = Population::new(3, 8);
    let src = tempfile::tempdir().unwrap();
    let jan21 = release(&pop, (2021, 1)).unwrap();
    let renamed = |name: &str| match name {
        "gp-reg-pat-prac-all.csv" => "gp-reg-pat-prac-all (1).csv".to_string(),
        "gp-reg-pat-prac-quin-age.csv" => "patients by age, jan.csv".to_string(),
        "gp-reg-pat-prac-sing-age-male.csv" => "download.csv".to_string(),
        other => other.to_string(),
    };
    for f in &jan21.files {
        write(src.path(), &renamed(&f.name), &f.bytes);
    }
    write(src.path(), "Pre-Release Access List.xlsx", b"PK not really");
    write(src.path(), "methodology.pdf", b"%PDF-1.4");
    write(src.path(), "contacts.csv", b"Name,Role\nAda,Analyst\n");
    // A second way to a folder already read is skipped, not read twice.
    #[cfg(unix)]
    {
        std::fs::create_dir(src.path().join("notes")).unwrap();
        std::os::unix::fs::symlink(src.path().join("notes"), src.path().join("notes-link"))
            .unwrap();
    }
    let (_dir, lake) = local_lake();
    let report = sync(&lake, &Source::Dir(src.path().into()), "2021-01", "2021-01")
        .await
        .unwrap();
    let release = &report.discovery.releases[0];
    let family = |name: &str| {
        release
            .files
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.kind.family)
    };
    use gplake::formats::Family;
    assert_eq!(
        family("gp-reg-pat-prac-all (1).csv"),
        Some(Family::PracticeTotals)
    );
    assert_eq!(family("patients by age, jan.csv"), Some(Family::Quinary));
    assert_eq!(family("download.csv"), Some(Family::SingleAgeMale));
    assert_eq!(release.files.len(), jan21.files.len());
    let mut skipped: Vec<String> = report
        .discovery
        .skipped_files
        .iter()
        .map(|s| {
            let name = std::path::Path::new(&s.url).file_name().unwrap();
            format!("{} ({})", name.to_string_lossy(), s.reason)
        })
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            "Pre-Release Access List.xlsx (not a CSV or ZIP file)",
            "contacts.csv (its name and header fit no family of the series)",
            "methodology.pdf (not a CSV or ZIP file)",
            "notes-link (a link to a folder already read)",
        ]
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_loop_in_the_source_folder_is_an_error_naming_the_link() {
    let src = tempfile::tempdir().unwrap();
    let pop = Population::new(2, 4);
    let month = release(&pop, (2024, 5)).unwrap();
    let inner = src.path().join("2024-05");
    std::fs::create_dir(&inner).unwrap();
    for f in &month.files {
        write(&inner, &f.name, &f.bytes);
    }
    std::os::unix::fs::symlink(src.path(), inner.join("back-up")).unwrap();
    let (_dir, lake) = local_lake();
    let err = sync(&lake, &Source::Dir(src.path().into()), "2024-05", "2024-05")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("symbolic link"), "{text}");
    assert!(text.contains("back-up"), "{text}");
    assert!(text.contains("loops back to"), "{text}");
    assert_eq!(err.kind(), gplake::ErrorKind::BadInput);
    assert!(
        lake.list(&object_store::path::Path::from(""))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A quarter's LSOA ZIP unpacked by hand gives three CSVs (persons, males, females): parts of
/// one set, all read, not three sets of which only the persons file (subtotals) was read.
/// In April 2024 the NHAIS set's LSOA ZIP lies beside them (in `nhais/`): it holds every
/// part, so it belongs to the other set, and no LSOA key is read twice.
#[tokio::test]
async fn a_quarters_lsoa_csvs_unpacked_by_hand_are_all_read_once() {
    let pop = Population::new(3, 8);
    let src = tempfile::tempdir().unwrap();
    let releases: Vec<_> = [(2024, 4), (2026, 4)]
        .into_iter()
        .map(|m| release(&pop, m).unwrap())
        .collect();
    gplake_testkit::write_releases(src.path(), &releases).unwrap();
    for month in ["2024-04", "2026-04"] {
        unpack_lsoa_zips(&src.path().join(month));
    }
    let (_dir, lake) = local_lake();
    full_sync(&lake, &Source::Dir(src.path().into()), "2024-04", "2026-04")
        .await
        .unwrap();
    let lsoa = "SELECT snapshot_date, SUM(registered_population) AS n, COUNT(DISTINCT sex) AS sexes
        FROM fact_gp_registered_patients_lsoa GROUP BY snapshot_date";
    let practices = "SELECT snapshot_date, SUM(registered_population) AS n FROM practice_snapshot
        GROUP BY snapshot_date";
    let sql = format!(
        "SELECT CAST(p.snapshot_date AS VARCHAR), l.n = p.n, l.sexes FROM ({practices}) p
         LEFT JOIN ({lsoa}) l ON l.snapshot_date = p.snapshot_date ORDER BY 1"
    );
    assert_eq!(
        rows(&lake, &sql).await,
        ["2024-04-01\ttrue\t2", "2026-04-01\ttrue\t2"]
    );
    let kept_out = "SELECT COUNT(*) FROM quality WHERE NOT passed AND severity = 'error'";
    assert_eq!(rows(&lake, kept_out).await, ["0"]);
}

/// Replaces each LSOA ZIP directly in `folder` by its members, as a user unpacking it would.
fn unpack_lsoa_zips(folder: &std::path::Path) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.contains("lsoa") && name.ends_with(".zip")) {
            continue;
        }
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
        for i in 0..zip.len() {
            let mut member = zip.by_index(i).unwrap();
            let name = member.name().unwrap().to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut member, &mut bytes).unwrap();
            write(folder, &name, &bytes);
        }
        std::fs::remove_file(&path).unwrap();
    }
}
