//! Which bronze files a month's silver is built from.
//!
//! Each family (and LSOA vintage) contributes one file. When a release offers two sets (April
//! 2024: NHAIS and PDS), one whole set is used, never families from two: the PDS set — the
//! source every month after it comes from — as its link text, folder or file names say, and
//! the other is kept in bronze and reported. A reissued `_v2` file wins over its
//! original. Files of no known family, files their page withdrew, and the persons
//! single-age file (the facts come from the male and female files), are not used.

use sha2::{Digest, Sha256};

use crate::fetch::{Manifest, ManifestFile};
use crate::formats::Family;

/// A file chosen for the build.
#[derive(Debug, Clone)]
pub(crate) struct Chosen {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) family: Family,
    pub(crate) sha256: String,
    pub(crate) size: u64,
    pub(crate) lsoa_vintage: Option<u16>,
}

/// The month's plan.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) used: Vec<Chosen>,
    /// `(name, family, sha256)` of files kept in bronze but not used.
    pub(crate) unused: Vec<(String, Family, String)>,
    /// Which set was used when there was a choice.
    pub(crate) source_set: String,
    /// Set when the release offered two sets and nothing in the files said which is PDS.
    pub(crate) unconfirmed: Option<String>,
}

/// Chooses one set of files. Reissues (`_v2`, `(revised)`) first replace their originals;
/// then, when a family still appears more than once, the release offers several sets (the
/// k-th file of each family, in page order, belongs to set k), and one whole set is used —
/// never families from two sets.
pub(crate) fn choose(manifest: &Manifest) -> Plan {
    let mut unused: Vec<&ManifestFile> = Vec::new();
    let mut sets: Vec<Vec<&ManifestFile>> = Vec::new();
    for file in &manifest.files {
        let family = file.kind.family;
        let superseded = manifest
            .files
            .iter()
            .any(|f| same_family(f, file) && version(f) > version(file));
        if matches!(family, Family::Unknown | Family::SingleAgeAll)
            || file.withdrawn.is_some()
            || superseded
        {
            unused.push(file);
            continue;
        }
        match sets
            .iter()
            .position(|s| !s.iter().any(|f| same_family(f, file)))
        {
            Some(k) => sets[k].push(file),
            None => sets.push(vec![file]),
        }
    }
    let (chosen, source_set, unconfirmed) = pick(&sets);
    for (k, set) in sets.iter().enumerate() {
        if k != chosen {
            unused.extend(set.iter().copied());
        }
    }
    Plan {
        used: sets
            .get(chosen)
            .into_iter()
            .flatten()
            .map(|f| chosen_file(f))
            .collect(),
        unused: unused
            .into_iter()
            .map(|f| (f.name.clone(), f.kind.family, f.current.sha256.clone()))
            .collect(),
        source_set,
        unconfirmed,
    }
}

/// The set to use: the one marked PDS, else the one not marked NHAIS; with no marks at all,
/// the first, and a warning that the choice could not be confirmed.
fn pick(sets: &[Vec<&ManifestFile>]) -> (usize, String, Option<String>) {
    if sets.len() <= 1 {
        return (0, "single set".into(), None);
    }
    let marked = |k: usize, f: fn(&ManifestFile) -> bool| sets[k].iter().any(|x| f(x));
    let others = |k: usize| {
        sets.iter()
            .enumerate()
            .filter(|(i, _)| *i != k)
            .map(|(_, s)| s.len())
            .sum::<usize>()
    };
    if let Some(k) = (0..sets.len()).find(|&k| marked(k, is_pds) && !marked(k, is_nhais)) {
        let label = format!(
            "PDS ({} files of the NHAIS set kept in bronze, not used)",
            others(k)
        );
        return (k, label, None);
    }
    let not_nhais: Vec<usize> = (0..sets.len()).filter(|&k| !marked(k, is_nhais)).collect();
    if let ([k], true) = (not_nhais.as_slice(), not_nhais.len() < sets.len()) {
        let label = format!(
            "PDS ({} files of the NHAIS set kept in bronze, not used)",
            others(*k)
        );
        return (*k, label, None);
    }
    let label = format!(
        "first set ({} files of another set kept in bronze, not used)",
        others(0)
    );
    let warning = format!(
        "the release offers {} sets of files and neither their names, links nor folders say which is PDS: the first listed set was used (PDS is the source from April 2024)",
        sets.len()
    );
    (0, label, Some(warning))
}

/// True when the two files give the same figures: the same family (and LSOA vintage), and
/// for LSOA the same part of the quarter's figures, a file of every part overlapping each.
fn same_family(a: &ManifestFile, b: &ManifestFile) -> bool {
    let parts_overlap = match (lsoa_part(a), lsoa_part(b)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    a.kind.family == b.kind.family && a.kind.lsoa_vintage == b.kind.lsoa_vintage && parts_overlap
}

/// Which of a quarter's LSOA figures a file holds, by its name: `all`, `male` or `female`
/// for one of the three CSVs the published ZIP holds (`gp-reg-pat-prac-lsoa-all.csv`,
/// `-male.csv`, `-female.csv`), `None` for a file of all three (the ZIP itself) or one that
/// is not LSOA. Unpacked into a folder or mirrored one by one, the three CSVs are parts of
/// one set: taken for three sets, only the persons file was read, and its rows are
/// subtotals, so the LSOA table got no row at all.
fn lsoa_part(f: &ManifestFile) -> Option<&'static str> {
    if f.kind.family != Family::Lsoa {
        return None;
    }
    let name = f.original_name.to_ascii_lowercase();
    let stem = name
        .rsplit_once('.')
        .map_or(name.as_str(), |(stem, _)| stem);
    let tokens: Vec<&str> = stem.split(['-', '_', ' ']).collect();
    let named =
        |word: &str| tokens.contains(&word) || tokens.contains(&format!("{word}s").as_str());
    let parts: Vec<&'static str> = ["all", "male", "female"]
        .into_iter()
        .filter(|part| named(part))
        .collect();
    match parts.as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

fn version(f: &ManifestFile) -> u32 {
    f.kind.version.unwrap_or(1)
}

/// The link text, the source path or the file's own name names the data source.
fn says(f: &ManifestFile, word: &str) -> bool {
    [&f.link_text, &f.current.source_url, &f.original_name]
        .iter()
        .any(|t| t.to_ascii_uppercase().contains(word))
}

fn is_pds(f: &ManifestFile) -> bool {
    says(f, "PDS")
}

fn is_nhais(f: &ManifestFile) -> bool {
    says(f, "NHAIS")
}

fn chosen_file(f: &ManifestFile) -> Chosen {
    Chosen {
        name: f.name.clone(),
        path: f.current.path.clone(),
        family: f.kind.family,
        sha256: f.current.sha256.clone(),
        size: f.current.size,
        lsoa_vintage: f.kind.lsoa_vintage,
    }
}

/// A digest of the month's current bronze and of the files its plan leaves unused: a
/// change in either means the month must be rebuilt (a month whose files were all used
/// keeps the digest it had before the unused ones were counted in).
pub(crate) fn fingerprint(manifest: &Manifest) -> String {
    fingerprint_of(manifest, &choose(manifest))
}

/// [`fingerprint`], with the plan already chosen for `manifest`.
pub(crate) fn fingerprint_of(manifest: &Manifest, plan: &Plan) -> String {
    let mut parts: Vec<String> = manifest
        .files
        .iter()
        .map(|f| {
            let withdrawn = if f.withdrawn.is_some() {
                ":withdrawn"
            } else {
                ""
            };
            format!("{}:{}{withdrawn}", f.name, f.current.sha256)
        })
        .collect();
    parts.extend(
        plan.unused
            .iter()
            .map(|(name, _, _)| format!("unused:{name}")),
    );
    parts.sort();
    hex::encode(Sha256::digest(parts.join("\n").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::FileRevision;
    use crate::formats::classify;

    fn file(name: &str, link_text: &str) -> ManifestFile {
        let original = name.split('~').next().unwrap_or(name).to_string();
        ManifestFile {
            name: name.to_string(),
            original_name: original.clone(),
            kind: classify(&original),
            link_text: link_text.to_string(),
            current: FileRevision {
                revision: 1,
                path: name.to_string(),
                source_url: format!("https://files.digital.nhs.uk/x/{original}"),
                page_url: "https://digital.nhs.uk/x/april-2024".into(),
                published: None,
                etag: None,
                last_modified: None,
                size: 1,
                sha256: format!("sha-{name}"),
                fetched_at: chrono::DateTime::UNIX_EPOCH,
                replaced_at: None,
            },
            revisions: Vec::new(),
            withdrawn: None,
        }
    }

    fn plan(files: Vec<ManifestFile>) -> Plan {
        let mut m = Manifest::new(
            crate::month::Month::new(2024, 4).unwrap(),
            "https://digital.nhs.uk/x/april-2024",
            chrono::DateTime::UNIX_EPOCH,
        );
        m.files = files;
        choose(&m)
    }

    fn used(p: &Plan) -> Vec<&str> {
        p.used.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn the_lsoa_csvs_of_a_quarter_unpacked_are_one_set_not_three() {
        let lsoa = [
            "gp-reg-pat-prac-lsoa-all.csv",
            "gp-reg-pat-prac-lsoa-male.csv",
            "gp-reg-pat-prac-lsoa-female.csv",
        ];
        let mut files = vec![file("gp-reg-pat-prac-all.csv", "")];
        files.extend(lsoa.map(|name| file(name, "")));
        let p = plan(files);
        assert_eq!(used(&p)[1..], lsoa);
        assert_eq!(p.source_set, "single set");
        assert!(p.unused.is_empty() && p.unconfirmed.is_none());
        // The published ZIP holds all three parts; a second ZIP of the same vintage is a
        // second set, as before.
        let zips = [
            "gp-reg-pat-prac-lsoa-male-female-Jul-23.zip",
            "gp-reg-pat-prac-lsoa-all-females-males.zip",
        ];
        let p = plan(zips.iter().map(|name| file(name, "")).collect());
        assert_eq!(used(&p), [zips[0]]);
        assert_eq!(p.unused.len(), 1);
        // April 2024: the PDS set's CSVs unpacked beside the NHAIS set's ZIP. The ZIP holds
        // every part, so it overlaps each CSV and belongs to the other set.
        let mut files = vec![file("gp-reg-pat-prac-all.csv", "")];
        files.extend(lsoa.map(|name| file(name, "")));
        files.push(file("gp-reg-pat-prac-all~nhais.csv", "NHAIS totals"));
        files.push(file(
            "gp-reg-pat-prac-lsoa-male-female-Apr-24~nhais.zip",
            "NHAIS LSOA",
        ));
        let p = plan(files);
        assert_eq!(used(&p)[1..], lsoa);
        let unused: Vec<&str> = p.unused.iter().map(|(name, _, _)| name.as_str()).collect();
        assert_eq!(
            unused,
            [
                "gp-reg-pat-prac-all~nhais.csv",
                "gp-reg-pat-prac-lsoa-male-female-Apr-24~nhais.zip"
            ]
        );
    }

    #[test]
    fn a_month_with_unused_files_is_fingerprinted_with_them() {
        let month = |files: Vec<ManifestFile>| {
            let mut m = Manifest::new(
                crate::month::Month::new(2024, 4).unwrap(),
                "https://digital.nhs.uk/x/april-2024",
                chrono::DateTime::UNIX_EPOCH,
            );
            m.files = files;
            m
        };
        let all_used = month(vec![file("gp-reg-pat-prac-all.csv", "")]);
        let mut parts = vec![format!(
            "gp-reg-pat-prac-all.csv:sha-gp-reg-pat-prac-all.csv"
        )];
        let digest = |parts: &[String]| hex::encode(Sha256::digest(parts.join("\n").as_bytes()));
        assert_eq!(
            fingerprint(&all_used),
            digest(&parts),
            "unchanged when all are used"
        );
        let second = file("gp-reg-pat-prac-all~2.csv", "");
        let two_sets = month(vec![file("gp-reg-pat-prac-all.csv", ""), second]);
        parts.push("gp-reg-pat-prac-all~2.csv:sha-gp-reg-pat-prac-all~2.csv".into());
        parts.push("unused:gp-reg-pat-prac-all~2.csv".into());
        parts.sort();
        assert_eq!(fingerprint(&two_sets), digest(&parts));
    }

    #[test]
    fn a_reissue_replaces_its_original_within_one_set() {
        for v2 in [
            "gp-reg-pat-prac-map_v2.csv",
            "gp-reg-pat-prac-map-v2.csv",
            "gp-reg-pat-prac-map (revised).csv",
        ] {
            let p = plan(vec![
                file("gp-reg-pat-prac-map.csv", ""),
                file("gp-reg-pat-prac-all.csv", ""),
                file(v2, ""),
            ]);
            assert_eq!(used(&p), ["gp-reg-pat-prac-all.csv", v2], "{v2}");
            assert_eq!(p.source_set, "single set");
        }
    }

    #[test]
    fn a_set_marked_only_on_some_files_is_never_mixed() {
        // Only the second set's map says PDS: the whole second set is used.
        let p = plan(vec![
            file("gp-reg-pat-prac-all.csv", "Totals"),
            file("gp-reg-pat-prac-map.csv", "Mapping"),
            file("gp-reg-pat-prac-all~B.csv", "Totals"),
            file("gp-reg-pat-prac-map~B.csv", "Mapping (PDS)"),
        ]);
        assert_eq!(
            used(&p),
            ["gp-reg-pat-prac-all~B.csv", "gp-reg-pat-prac-map~B.csv"]
        );
        assert!(p.unconfirmed.is_none());
        // A withdrawn file is never used.
        let mut files = vec![
            file("gp-reg-pat-prac-all.csv", ""),
            file("gp-reg-pat-prac-map.csv", ""),
        ];
        files[1].withdrawn = Some(chrono::DateTime::UNIX_EPOCH);
        assert_eq!(used(&plan(files)), ["gp-reg-pat-prac-all.csv"]);
    }
}
