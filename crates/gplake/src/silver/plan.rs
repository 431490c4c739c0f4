//! Which bronze files a month's silver is built from.
//!
//! Each family (and LSOA vintage) contributes one set. When a release offers two (April
//! 2024: NHAIS and PDS), the PDS set is used — the source every month after it comes from —
//! and the other is kept in bronze and reported. A reissued `_v2` file wins over its
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
}

/// Chooses one set of files per family.
pub(crate) fn choose(manifest: &Manifest) -> Plan {
    let mut used: Vec<&ManifestFile> = Vec::new();
    let mut unused: Vec<&ManifestFile> = Vec::new();
    let mut duplicates = 0;
    for file in &manifest.files {
        let family = file.kind.family;
        if matches!(family, Family::Unknown | Family::SingleAgeAll) || file.withdrawn.is_some() {
            unused.push(file);
            continue;
        }
        let same = |f: &&&ManifestFile| {
            f.kind.family == family && f.kind.lsoa_vintage == file.kind.lsoa_vintage
        };
        match used.iter().position(|f| same(&f)) {
            None => used.push(file),
            Some(i) => {
                duplicates += 1;
                if better(file, used[i]) {
                    unused.push(std::mem::replace(&mut used[i], file));
                } else {
                    unused.push(file);
                }
            }
        }
    }
    let marked = used.iter().any(|f| is_pds(f)) || unused.iter().any(|f| is_nhais(f));
    let source_set = match duplicates {
        0 => "single set".to_string(),
        n if marked => format!("PDS ({n} files of the NHAIS set kept in bronze, not used)"),
        n => format!("first set ({n} files of another set kept in bronze, not used)"),
    };
    Plan {
        used: used.into_iter().map(chosen).collect(),
        unused: unused
            .into_iter()
            .map(|f| (f.name.clone(), f.kind.family, f.current.sha256.clone()))
            .collect(),
        source_set,
    }
}

/// The link text or the source path names the data source.
fn says(f: &ManifestFile, word: &str) -> bool {
    f.link_text.to_ascii_uppercase().contains(word)
        || f.current.source_url.to_ascii_uppercase().contains(word)
}

fn is_pds(f: &ManifestFile) -> bool {
    says(f, "PDS")
}

fn is_nhais(f: &ManifestFile) -> bool {
    says(f, "NHAIS")
}

/// Not NHAIS, then PDS, then the highest `_vN`, then the plain (not disambiguated) name.
fn better(a: &ManifestFile, b: &ManifestFile) -> bool {
    let rank = |f: &ManifestFile| {
        (
            !is_nhais(f),
            is_pds(f),
            f.kind.version.unwrap_or(1),
            !f.name.contains('~'),
        )
    };
    rank(a) > rank(b)
}

fn chosen(f: &ManifestFile) -> Chosen {
    Chosen {
        name: f.name.clone(),
        path: f.current.path.clone(),
        family: f.kind.family,
        sha256: f.current.sha256.clone(),
        lsoa_vintage: f.kind.lsoa_vintage,
    }
}

/// A digest of the month's current bronze: a change means the month must be rebuilt.
pub(crate) fn fingerprint(manifest: &Manifest) -> String {
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
    parts.sort();
    hex::encode(Sha256::digest(parts.join("\n").as_bytes()))
}
