//! Discovery over a folder of files downloaded by hand (`--source DIR`).
//!
//! Any layout: each file's month comes from its own EXTRACT_DATE (ZIPs are opened to read
//! it), else from a month in its name (`-sep-17`, `-01-2014`), else from a folder name
//! (`2024-05`, `may-2024`, `snapshot_year=2024/snapshot_month=05`), else it is an error naming
//! the file. Nothing is guessed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use url::Url;

use super::{Discovery, Release, ReleaseFile, unique_name};
use crate::formats::sniff::{SniffError, extract_date_of_file};
use crate::formats::{classify, is_data_file, month_from_name};
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
    /// Nothing tells which month a file belongs to.
    #[error(
        "cannot tell the month of {file}: it has no EXTRACT_DATE column and no month in its name or folder; put it in a folder named YYYY-MM"
    )]
    NoMonth {
        /// The file.
        file: String,
    },
}

/// Finds the releases of months `from..=to` among the data files under `dir`.
pub fn discover_dir(dir: &Path, from: Month, to: Month) -> Result<Discovery, LocalSourceError> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mut by_month: BTreeMap<Month, Vec<PathBuf>> = BTreeMap::new();
    for file in files {
        let month = month_of_file(dir, &file)?;
        if (from..=to).contains(&month) {
            by_month.entry(month).or_default().push(file);
        }
    }
    let releases = by_month
        .into_iter()
        .map(|(month, files)| release_of(dir, month, files))
        .collect();
    Ok(Discovery {
        releases,
        ..Discovery::default()
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LocalSourceError> {
    let unreadable = |source| LocalSourceError::Unreadable {
        dir: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_data_file(name) {
            out.push(path);
        }
    }
    Ok(())
}

fn month_of_file(root: &Path, file: &Path) -> Result<Month, LocalSourceError> {
    if let Some(date) = extract_date_of_file(file)? {
        return Ok(Month::of(date));
    }
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if let Some(month) = month_from_name(name) {
        return Ok(month);
    }
    let folders = file.parent().and_then(|p| p.strip_prefix(root).ok());
    folders
        .and_then(month_from_folders)
        .ok_or_else(|| LocalSourceError::NoMonth {
            file: file.display().to_string(),
        })
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

fn release_of(root: &Path, month: Month, files: Vec<PathBuf>) -> Release {
    let mut release = Release {
        month,
        page_url: file_url(root).to_string(),
        published: None,
        files: Vec::new(),
        skipped: Vec::new(),
    };
    for path in files {
        let original_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let url = file_url(&path);
        let name = unique_name(&release.files, &original_name, &url);
        release.files.push(ReleaseFile {
            name,
            kind: classify(&original_name),
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
