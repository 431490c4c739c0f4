//! Reads just enough of a CSV or ZIP file to tell which month it is: its EXTRACT_DATE.
//!
//! Only the header and the first data row are read (of the first CSV member of a ZIP), so a
//! large file costs the same as a small one. An EXTRACT_DATE column that is present but
//! unreadable is an error naming the file, line and value; a file without the column is
//! `Ok(None)` and the caller falls back to the name.

use std::io::{BufRead, BufReader, Read, Seek};

use chrono::NaiveDate;

use crate::formats::extract_date::parse_extract_date;

/// Why a file's EXTRACT_DATE could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SniffError {
    /// The file could not be read at all.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The ZIP container is corrupt or holds no CSV.
    #[error("{file} is not a readable ZIP of CSV files: {reason}")]
    Zip {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The EXTRACT_DATE column holds a value in no known spelling.
    #[error(
        "{file} line {line}, column EXTRACT_DATE: unreadable date '{value}' (known spellings: 01-Apr-17, 01SEP2017, 01Jan2022, 2026-04-01)"
    )]
    BadDate {
        /// The file (and ZIP member).
        file: String,
        /// 1-based line number.
        line: u64,
        /// The raw value.
        value: String,
    },
}

/// The EXTRACT_DATE of a CSV or ZIP file on disk, if it has that column.
pub(crate) fn extract_date_of_file(
    path: &std::path::Path,
) -> Result<Option<NaiveDate>, SniffError> {
    let file_name = path.display().to_string();
    let io = |source| SniffError::Io {
        file: file_name.clone(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    if crate::formats::reader::is_zip(&mut file).map_err(io)? {
        extract_date_of_zip(file, &file_name)
    } else {
        extract_date_of_csv(BufReader::new(file), &file_name)
    }
}

/// The EXTRACT_DATE of the first CSV member of a ZIP.
pub(crate) fn extract_date_of_zip<R: Read + Seek>(
    reader: R,
    file_name: &str,
) -> Result<Option<NaiveDate>, SniffError> {
    let zip_err = |reason: String| SniffError::Zip {
        file: file_name.to_string(),
        reason,
    };
    let mut archive = zip::ZipArchive::new(reader).map_err(|e| zip_err(e.to_string()))?;
    let member = (0..archive.len())
        .find(|&i| {
            archive
                .by_index(i)
                .ok()
                .and_then(|f| {
                    f.name()
                        .ok()
                        .map(|n| n.to_ascii_lowercase().ends_with(".csv"))
                })
                .unwrap_or(false)
        })
        .ok_or_else(|| zip_err("no .csv member".into()))?;
    let entry = archive
        .by_index(member)
        .map_err(|e| zip_err(e.to_string()))?;
    let label = format!("{file_name}!{}", entry.name().unwrap_or_default());
    extract_date_of_csv(BufReader::new(entry), &label).map_err(|e| match e {
        SniffError::Io { source, .. } => zip_err(source.to_string()),
        other => other,
    })
}

/// The EXTRACT_DATE on the first data row of a CSV stream.
pub(crate) fn extract_date_of_csv<R: BufRead>(
    mut reader: R,
    file_name: &str,
) -> Result<Option<NaiveDate>, SniffError> {
    let io = |source| SniffError::Io {
        file: file_name.to_string(),
        source,
    };
    let mut bytes = Vec::new();
    reader.read_until(b'\n', &mut bytes).map_err(io)?;
    let header = super::reader::text(&bytes).into_owned();
    let header = header.trim_start_matches('\u{feff}');
    let Some(column) = split_line(header)
        .iter()
        .position(|h| h.eq_ignore_ascii_case("EXTRACT_DATE"))
    else {
        return Ok(None);
    };
    bytes.clear();
    reader.read_until(b'\n', &mut bytes).map_err(io)?;
    let row = super::reader::text(&bytes).into_owned();
    let value = split_line(&row).get(column).cloned().unwrap_or_default();
    parse_extract_date(&value)
        .map(Some)
        .ok_or_else(|| SniffError::BadDate {
            file: file_name.to_string(),
            line: 2,
            value,
        })
}

/// Splits one CSV line (minimal RFC 4180 quoting) into trimmed fields.
fn split_line(line: &str) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.trim_end_matches(['\r', '\n']).as_bytes());
    reader
        .records()
        .next()
        .and_then(Result::ok)
        .map(|r| r.iter().map(|f| f.trim().to_string()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_crlf_bom_and_quoted_rows() {
        let csv =
            "\u{feff}PUBLICATION,EXTRACT_DATE,NAME\r\nGP_PRAC_PAT_LIST,01JAN2021,\"A, B\"\r\n";
        let d = extract_date_of_csv(csv.as_bytes(), "x.csv").unwrap();
        assert_eq!(d, NaiveDate::from_ymd_opt(2021, 1, 1));
    }

    #[test]
    fn no_column_is_none_and_bad_value_is_an_error() {
        assert!(
            extract_date_of_csv("A,B\n1,2\n".as_bytes(), "x.csv")
                .unwrap()
                .is_none()
        );
        let err =
            extract_date_of_csv("EXTRACT_DATE\n31/01/2021\n".as_bytes(), "x.csv").unwrap_err();
        assert!(
            err.to_string()
                .contains("x.csv line 2, column EXTRACT_DATE"),
            "{err}"
        );
    }
}
