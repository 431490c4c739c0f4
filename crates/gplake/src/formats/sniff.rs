//! Reads just enough of a CSV or ZIP file to tell which month it is (its EXTRACT_DATE) and,
//! when its name does not say, which family it is (its header and first rows).
//!
//! Only the header and the first data row are read (of the first CSV member of a ZIP), so a
//! large file costs the same as a small one. An EXTRACT_DATE column that is present but
//! unreadable is an error naming the file, line and value; a file without the column is
//! `Ok(None)` and the caller falls back to the name.

use std::io::{BufRead, BufReader, Read, Seek};

use chrono::NaiveDate;

use crate::formats::Family;
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

/// The first lines of a CSV file (or of the first CSV member of a ZIP): the header and up to
/// `rows` data rows, split into trimmed fields, with the label of what was read.
struct Head {
    label: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Head {
    fn of_file(path: &std::path::Path, rows: usize) -> Result<Head, SniffError> {
        let file_name = path.display().to_string();
        let io = |source| SniffError::Io {
            file: file_name.clone(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        if crate::formats::reader::is_zip(&mut file).map_err(io)? {
            Head::of_zip(file, &file_name, rows)
        } else {
            Head::of_csv(BufReader::new(file), &file_name, rows)
        }
    }

    fn of_zip<R: Read + Seek>(reader: R, file_name: &str, rows: usize) -> Result<Head, SniffError> {
        let zip_err = |reason: String| SniffError::Zip {
            file: file_name.to_string(),
            reason,
        };
        let mut archive = zip::ZipArchive::new(reader).map_err(|e| zip_err(e.to_string()))?;
        let is_csv = |f: zip::read::ZipFile<'_, R>| {
            f.name()
                .ok()
                .is_some_and(|n| n.to_ascii_lowercase().ends_with(".csv"))
        };
        let member = (0..archive.len())
            .find(|&i| archive.by_index(i).ok().is_some_and(is_csv))
            .ok_or_else(|| zip_err("no .csv member".into()))?;
        let entry = archive
            .by_index(member)
            .map_err(|e| zip_err(e.to_string()))?;
        let label = format!("{file_name}!{}", entry.name().unwrap_or_default());
        Head::of_csv(BufReader::new(entry), &label, rows).map_err(|e| match e {
            SniffError::Io { source, .. } => zip_err(source.to_string()),
            other => other,
        })
    }

    fn of_csv<R: BufRead>(mut reader: R, label: &str, rows: usize) -> Result<Head, SniffError> {
        let io = |source| SniffError::Io {
            file: label.to_string(),
            source,
        };
        let mut lines = Vec::new();
        let mut bytes = Vec::new();
        while lines.len() <= rows {
            bytes.clear();
            if reader.read_until(b'\n', &mut bytes).map_err(io)? == 0 {
                break;
            }
            let text = super::reader::text(&bytes).into_owned();
            lines.push(split_line(text.trim_start_matches('\u{feff}')));
        }
        let mut lines = lines.into_iter();
        Ok(Head {
            label: label.to_string(),
            header: lines.next().unwrap_or_default(),
            rows: lines.collect(),
        })
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
    }

    /// The values of column `name` in the rows read, upper case.
    fn values(&self, name: &str) -> Vec<String> {
        let Some(i) = self.column(name) else {
            return Vec::new();
        };
        self.rows
            .iter()
            .filter_map(|r| r.get(i))
            .map(|v| v.to_ascii_uppercase())
            .collect()
    }

    /// The EXTRACT_DATE on the first data row, if the file has that column.
    fn extract_date(&self) -> Result<Option<NaiveDate>, SniffError> {
        let Some(column) = self.column("EXTRACT_DATE") else {
            return Ok(None);
        };
        let value = self
            .rows
            .first()
            .and_then(|r| r.get(column))
            .cloned()
            .unwrap_or_default();
        parse_extract_date(&value)
            .map(Some)
            .ok_or_else(|| SniffError::BadDate {
                file: self.label.clone(),
                line: 2,
                value,
            })
    }

    /// The family the header (and the first rows' sexes, ages and organisation types) of a
    /// 2017-onwards file says it is; `None` when they fit no family.
    fn family(&self) -> Option<Family> {
        let has = |name: &str| self.column(name).is_some();
        if has("LSOA_CODE") {
            return Some(Family::Lsoa);
        }
        if has("PRACTICE_NAME") && has("PCN_CODE") && !has("NUMBER_OF_PATIENTS") {
            return Some(Family::Map);
        }
        if !has("NUMBER_OF_PATIENTS") || !has("SEX") {
            return None;
        }
        if has("AGE_GROUP_5") {
            return Some(Family::Quinary);
        }
        if !has("AGE") {
            return None;
        }
        let types = self.values("ORG_TYPE");
        if !types.is_empty() && types.iter().all(|t| t != "GP") {
            return Some(Family::SingleAgeRegions);
        }
        let (sexes, ages) = (self.values("SEX"), self.values("AGE"));
        let only = |values: &[String], v: &str| !values.is_empty() && values.iter().all(|x| x == v);
        if only(&ages, "ALL") && only(&sexes, "ALL") {
            return Some(Family::PracticeTotals);
        }
        match () {
            _ if only(&sexes, "MALE") => Some(Family::SingleAgeMale),
            _ if only(&sexes, "FEMALE") => Some(Family::SingleAgeFemale),
            _ if only(&sexes, "ALL") => Some(Family::SingleAgeAll),
            _ => None,
        }
    }
}

/// The EXTRACT_DATE of a CSV or ZIP file on disk, if it has that column.
pub(crate) fn extract_date_of_file(
    path: &std::path::Path,
) -> Result<Option<NaiveDate>, SniffError> {
    Head::of_file(path, 1)?.extract_date()
}

/// The family a CSV or ZIP file's header and first rows say it is (for files whose name does
/// not say: a browser's `name (1).csv`, a renamed download).
pub(crate) fn family_of_file(path: &std::path::Path) -> Result<Option<Family>, SniffError> {
    Ok(Head::of_file(path, 200)?.family())
}

/// The EXTRACT_DATE on the first data row of a CSV stream.
#[cfg(test)]
fn extract_date_of_csv<R: BufRead>(
    reader: R,
    file_name: &str,
) -> Result<Option<NaiveDate>, SniffError> {
    Head::of_csv(reader, file_name, 1)?.extract_date()
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
    fn the_header_and_first_rows_tell_the_family() {
        let family = |csv: &str| Head::of_csv(csv.as_bytes(), "x.csv", 200).unwrap().family();
        let long =
            "PUBLICATION,EXTRACT_DATE,ORG_TYPE,ORG_CODE,POSTCODE,SEX,AGE,NUMBER_OF_PATIENTS\n";
        assert_eq!(
            family(&format!(
                "{long}P,01JAN2021,GP,A1,X,MALE,0,5\nP,01JAN2021,GP,A1,X,MALE,1,6\n"
            )),
            Some(Family::SingleAgeMale)
        );
        assert_eq!(
            family(&format!("{long}P,01JAN2021,GP,A1,X,FEMALE,0,5\n")),
            Some(Family::SingleAgeFemale)
        );
        assert_eq!(
            family(&format!("{long}P,01JAN2021,GP,A1,X,ALL,ALL,5\n")),
            Some(Family::PracticeTotals)
        );
        assert_eq!(
            family(&format!("{long}P,01JAN2021,GP,A1,X,ALL,0,5\n")),
            Some(Family::SingleAgeAll)
        );
        assert_eq!(
            family(&format!("{long}P,01JAN2021,ICB,QHM,X,ALL,ALL,5\n")),
            Some(Family::SingleAgeRegions)
        );
        assert_eq!(
            family(
                "PUBLICATION,EXTRACT_DATE,ORG_TYPE,ORG_CODE,ONS_CODE,POSTCODE,SEX,AGE_GROUP_5,NUMBER_OF_PATIENTS\n"
            ),
            Some(Family::Quinary)
        );
        assert_eq!(
            family(
                "PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,PRACTICE_POSTCODE,PCN_CODE,PCN_NAME\n"
            ),
            Some(Family::Map)
        );
        assert_eq!(
            family("PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,LSOA_CODE,SEX,NUMBER_OF_PATIENTS\n"),
            Some(Family::Lsoa)
        );
        assert_eq!(family("Name,Role\nAda,Analyst\n"), None);
        assert_eq!(
            family(&format!(
                "{long}P,01JAN2021,GP,A1,X,MALE,0,5\nP,01JAN2021,GP,A1,X,FEMALE,0,5\n"
            )),
            None,
            "both sexes: not one family"
        );
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
