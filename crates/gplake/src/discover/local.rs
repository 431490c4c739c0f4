//! Discovery over a folder of files downloaded by hand (`--source DIR`).
//!
//! Any layout: each file's month comes from its own EXTRACT_DATE (ZIPs are opened to read
//! it), else from a month in its name (`-sep-17`, `-01-2014`), else from a folder name
//! (`2024-05`, `may-2024`, `snapshot_year=2024/snapshot_month=05`), else it is an error naming
//! the file. Nothing is guessed. A file whose name says nothing is classified by its header;
//! spreadsheets, PDFs and files of no known family are listed as skipped.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use url::Url;

use super::{Discovery, Release, ReleaseFile, SkippedLink, unique_name};
use crate::formats::sniff::{SniffError, extract_date_of_file, family_of_file};
use crate::formats::{Family, FileKind, classify, month_from_name};
use crate::month::{MONTH_NAMES, Month};

/// A problem with a folder of hand-downloaded files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalSourceError {
    /// The folder does not exist or cannot be listed.
    #[error("cannot read source folder {dir}: {source}")]
    Unreadable {
        /// The folder.
        dir: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's content could not be read (corrupt ZIP, bad EXTRACT_DATE…).
    #[error(transparent)]
    Content(#[from] SniffError),
    /// A symbolic link leads back to a folder that contains it: walking it would never end.
    #[error(
        "symbolic link {link} loops back to {target}, which contains it: remove the link, or give --source a folder without it"
    )]
    SymlinkLoop {
        /// The link, as found under the source folder.
        link: String,
        /// The folder it leads to.
        target: String,
    },
    /// Nothing tells which month a file belongs to.
    #[error(
        "cannot tell the month of {file}: it has no EXTRACT_DATE column and no month in its name or folder; put it in a folder named YYYY-MM"
    )]
    NoMonth {
        /// The file.
        file: String,
    },
}

/// Finds the releases of months `from..=to` among the data files under `dir`. Files that are
/// not release data (spreadsheets, PDFs, notes, CSVs of no known family) are listed as
/// skipped, never an error.
pub fn discover_dir(dir: &Path, from: Month, to: Month) -> Result<Discovery, LocalSourceError> {
    let mut walk = Walk::default();
    walk.folder(dir)?;
    walk.files.sort();
    let mut by_month: BTreeMap<Month, Vec<(PathBuf, FileKind)>> = BTreeMap::new();
    for file in walk.files {
        let Some(kind) = kind_of(&file)? else {
            walk.skipped.push(skipped(
                &file,
                "its name and header fit no family of the series",
            ));
            continue;
        };
        let month = month_of_file(dir, &file)?;
        if (from..=to).contains(&month) {
            by_month.entry(month).or_default().push((file, kind));
        }
    }
    let releases = by_month
        .into_iter()
        .map(|(month, files)| release_of(dir, month, files))
        .collect();
    Ok(Discovery {
        releases,
        skipped_files: walk.skipped,
        ..Discovery::default()
    })
}

/// What a file is: by its name, else (a browser's `name (1).csv`, a renamed download) by its
/// header and first rows; `None` when neither says.
fn kind_of(file: &Path) -> Result<Option<FileKind>, LocalSourceError> {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let mut kind = classify(name);
    if kind.family == Family::Unknown {
        match family_of_file(file)? {
            Some(family) => kind.family = family,
            None => return Ok(None),
        }
    }
    Ok(Some(kind))
}

fn skipped(file: &Path, reason: &str) -> SkippedLink {
    SkippedLink {
        url: file.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The files under a folder: CSV and ZIP candidates, and the rest (skipped). Each folder is
/// read once: a second link to a folder already read is skipped (its files would count
/// twice), and a link to a folder that contains it is a loop, an error naming the link.
#[derive(Default)]
struct Walk {
    files: Vec<PathBuf>,
    skipped: Vec<SkippedLink>,
    seen: HashSet<PathBuf>,
    /// The real paths of the folders being read, outermost first.
    ancestors: Vec<PathBuf>,
}

impl Walk {
    fn folder(&mut self, dir: &Path) -> Result<(), LocalSourceError> {
        let unreadable = |source| LocalSourceError::Unreadable {
            dir: dir.display().to_string(),
            source,
        };
        let real = std::fs::canonicalize(dir).map_err(unreadable)?;
        if self.ancestors.contains(&real) {
            return Err(LocalSourceError::SymlinkLoop {
                link: dir.display().to_string(),
                target: real.display().to_string(),
            });
        }
        if !self.seen.insert(real.clone()) {
            self.skipped
                .push(skipped(dir, "a link to a folder already read"));
            return Ok(());
        }
        self.ancestors.push(real);
        let entries = self.entries(dir);
        self.ancestors.pop();
        entries
    }

    fn entries(&mut self, dir: &Path) -> Result<(), LocalSourceError> {
        let unreadable = |source| LocalSourceError::Unreadable {
            dir: dir.display().to_string(),
            source,
        };
        let mut paths = std::fs::read_dir(dir)
            .map_err(unreadable)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<PathBuf>, _>>()
            .map_err(unreadable)?;
        // In name order, so which of two ways to one folder is read is always the same.
        paths.sort();
        for path in paths {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') {
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if path.is_dir() {
                self.folder(&path)?;
            } else if lower.ends_with(".csv") || lower.ends_with(".zip") {
                self.files.push(path);
            } else {
                self.skipped.push(skipped(&path, "not a CSV or ZIP file"));
            }
        }
        Ok(())
    }
}

/// The month of a file: its EXTRACT_DATE, else its name, else its folders. A file whose
/// content cannot be read is still placed by its name or folder when they say the month
/// (the build then names what is wrong with it, keeping out only what it feeds); with
/// nothing else to go on, the unreadable content is the error. An EXTRACT_DATE that is there
/// but unreadable is always an error: it may name another month.
fn month_of_file(root: &Path, file: &Path) -> Result<Month, LocalSourceError> {
    let sniffed = extract_date_of_file(file);
    if let Ok(Some(date)) = sniffed {
        return Ok(Month::of(date));
    }
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let folders = file.parent().and_then(|p| p.strip_prefix(root).ok());
    let named = month_from_name(name).or_else(|| folders.and_then(month_from_folders));
    match (named, sniffed) {
        (_, Err(e @ SniffError::BadDate { .. })) => Err(e.into()),
        (Some(month), _) => Ok(month),
        (None, Err(e)) => Err(e.into()),
        (None, Ok(_)) => Err(LocalSourceError::NoMonth {
            file: file.display().to_string(),
        }),
    }
}

/// `2024-05`, `may-2024` or `snapshot_year=2024/snapshot_month=05`, nearest folder first.
fn month_from_folders(folders: &Path) -> Option<Month> {
    let names: Vec<&str> = folders.iter().filter_map(|s| s.to_str()).collect();
    let year = names
        .iter()
        .find_map(|n| n.strip_prefix("snapshot_year=")?.parse().ok());
    let month = names
        .iter()
        .find_map(|n| n.strip_prefix("snapshot_month=")?.parse().ok());
    if let (Some(y), Some(m)) = (year, month) {
        return Month::new(y, m);
    }
    names.iter().rev().find_map(|name| {
        name.parse::<Month>().ok().or_else(|| {
            let (mon, year) = name
                .to_ascii_lowercase()
                .split_once('-')
                .map(|(a, b)| (a.to_string(), b.to_string()))?;
            let index = MONTH_NAMES.iter().position(|n| *n == mon)?;
            Month::new(year.parse().ok()?, index as u32 + 1)
        })
    })
}

fn release_of(root: &Path, month: Month, files: Vec<(PathBuf, FileKind)>) -> Release {
    let mut release = Release {
        month,
        page_url: file_url(root).to_string(),
        published: None,
        files: Vec::new(),
        skipped: Vec::new(),
    };
    for (path, kind) in files {
        let original_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let url = file_url(&path);
        let name = unique_name(&release.files, &original_name, &url);
        release.files.push(ReleaseFile {
            name,
            kind,
            original_name,
            url,
            link_text: String::new(),
        });
    }
    release
}

fn file_url(path: &Path) -> Url {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    Url::from_file_path(&absolute).expect("absolute paths make file URLs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_give_months() {
        let m = |s: &str| month_from_folders(Path::new(s)).map(|m| m.to_string());
        assert_eq!(m("2024-05").as_deref(), Some("2024-05"));
        assert_eq!(m("downloads/May-2024").as_deref(), Some("2024-05"));
        assert_eq!(
            m("snapshot_year=2016/snapshot_month=01").as_deref(),
            Some("2016-01")
        );
        assert_eq!(m("misc/stuff"), None);
    }
}
