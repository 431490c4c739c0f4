//! Streaming CSV records out of a bronze file, CSV or ZIP, with line numbers.
//!
//! Records are read one at a time (`csv::ByteRecord`), fields trimmed, a UTF-8 BOM dropped,
//! CRLF and LF alike. ZIP members are read in name order, each decompressed as a stream and
//! bounded in size so a hostile archive cannot fill the disk or memory.

use std::io::{Read, Seek};
use std::path::Path;

use super::FormatError;

/// Largest decompressed member accepted (the biggest real CSV is ~40 MB).
const MAX_MEMBER_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Calls `each` with every CSV in the file at `path`: the file itself, or each `.csv` member
/// of a ZIP (labelled `name!member`).
pub fn each_csv(
    path: &Path,
    name: &str,
    mut each: impl FnMut(&str, &mut dyn Read) -> Result<(), FormatError>,
) -> Result<(), FormatError> {
    let io = |source| FormatError::Io {
        file: name.to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    if is_zip(&mut file).map_err(io)? {
        each_member(file, name, each)
    } else {
        each(name, &mut std::io::BufReader::new(file))
    }
}

/// True when the file starts with a ZIP local header; the file is left at its start.
pub fn is_zip(file: &mut std::fs::File) -> std::io::Result<bool> {
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic)?;
    file.rewind()?;
    Ok(n == 4 && magic == *b"PK\x03\x04")
}

fn each_member(
    file: std::fs::File,
    name: &str,
    mut each: impl FnMut(&str, &mut dyn Read) -> Result<(), FormatError>,
) -> Result<(), FormatError> {
    let zip_err = |reason: String| FormatError::Zip {
        file: name.to_string(),
        reason,
    };
    let mut archive =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| zip_err(e.to_string()))?;
    let mut members: Vec<(String, usize)> = (0..archive.len())
        .filter_map(|i| {
            let entry = archive.by_index(i).ok()?;
            let member = entry.name().ok()?.to_string();
            member
                .to_ascii_lowercase()
                .ends_with(".csv")
                .then_some((member, i))
        })
        .collect();
    if members.is_empty() {
        return Err(zip_err("no .csv member".into()));
    }
    members.sort();
    for (member, index) in members {
        let entry = archive
            .by_index(index)
            .map_err(|e| zip_err(e.to_string()))?;
        let mut bounded = std::io::BufReader::new(entry.take(MAX_MEMBER_BYTES));
        each(&format!("{name}!{member}"), &mut bounded)?;
    }
    Ok(())
}

/// CSV records with their header and line numbers.
///
/// Line numbers are counted here (header = line 1, one line per record): the publisher's
/// files never put line breaks inside fields, and the CSV reader's own count is off by one
/// on CRLF files.
pub struct Records<'a> {
    reader: csv::Reader<&'a mut dyn Read>,
    line: u64,
    /// The file (and member) label, for messages.
    pub label: String,
    /// The header names.
    pub header: Vec<String>,
}

impl<'a> Records<'a> {
    /// Reads the header of `input`.
    pub fn new(input: &'a mut dyn Read, label: &str) -> Result<Records<'a>, FormatError> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(input);
        let header = reader
            .byte_headers()
            .map_err(|e| csv_error(label, e, 1))?
            .iter()
            .map(|h| {
                String::from_utf8_lossy(h)
                    .trim_start_matches('\u{feff}')
                    .trim()
                    .to_string()
            })
            .collect();
        Ok(Records {
            reader,
            line: 1,
            label: label.to_string(),
            header,
        })
    }

    /// The next record and its 1-based line number, or `None` at the end.
    pub fn next(&mut self, record: &mut csv::ByteRecord) -> Result<Option<u64>, FormatError> {
        match self.reader.read_byte_record(record) {
            Ok(true) => {
                self.line += 1;
                Ok(Some(self.line))
            }
            Ok(false) => Ok(None),
            Err(e) => Err(csv_error(&self.label, e, self.line + 1)),
        }
    }
}

fn csv_error(label: &str, e: csv::Error, line: u64) -> FormatError {
    FormatError::Csv {
        file: label.to_string(),
        line,
        reason: e.to_string(),
    }
}

/// The record as text, for quarantine.
pub fn raw_text(record: &csv::ByteRecord) -> String {
    record
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect::<Vec<_>>()
        .join(",")
}
