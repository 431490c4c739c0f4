//! Streaming CSV records out of a bronze file, CSV or ZIP, with line numbers.
//!
//! Records are read one at a time into a [`Record`] (plain lines split here, the rest of a
//! file from its first quoted or CR-only line by the `csv` crate, with the same result),
//! fields trimmed, a UTF-8 BOM dropped, CRLF and LF alike. ZIP members are read in name order, each decompressed as a stream and
//! bounded in size so a hostile archive cannot fill the disk or memory.

use std::borrow::Cow;
use std::io::{Read, Seek};

use super::FormatError;
pub(crate) use super::record::Record;
use super::record::{Lines, Split};

/// What a bronze file may hold before reading it stops with an error naming the limit: far
/// above any real release (the biggest real CSV is ~40 MB, its lines under 300 bytes, a ZIP
/// holds one or two members), so only a broken or hostile file meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    /// Largest decompressed ZIP member.
    pub max_member_bytes: u64,
    /// Largest decompressed-to-compressed ratio of a ZIP member (a "zip bomb" far exceeds it).
    pub max_member_ratio: u64,
    /// Most members in one ZIP.
    pub max_members: usize,
    /// Longest line: a newline-free stream cannot take the memory.
    pub max_line_bytes: u64,
}

impl Default for InputLimits {
    fn default() -> InputLimits {
        InputLimits {
            max_member_bytes: 2 << 30,
            max_member_ratio: 200,
            max_members: 64,
            max_line_bytes: 1024 * 1024,
        }
    }
}

/// Calls `each` with every CSV in `file`, read from its start: the file itself, or each
/// `.csv` member of a ZIP (labelled `name!member`).
pub(crate) fn each_csv(
    mut file: &std::fs::File,
    name: &str,
    limits: &InputLimits,
    mut each: impl FnMut(&str, &mut dyn Read) -> Result<(), FormatError>,
) -> Result<(), FormatError> {
    let io = |source| FormatError::Io {
        file: name.to_string(),
        source,
    };
    file.rewind().map_err(io)?;
    if is_zip(&mut file).map_err(io)? {
        each_member(file, name, limits, each)
    } else {
        each(
            name,
            &mut Bounded::new(file, u64::MAX, limits.max_line_bytes),
        )
    }
}

/// Bytes read from a file or a ZIP member at a time, into the buffer of [`Records`] (or the
/// CSV reader's) and no other: a buffered reader between them copied every byte once more.
const READ_BUFFER: usize = 256 * 1024;

/// A reader that fails — never cuts silently — past `left` bytes in all or `max_line` bytes
/// without a newline: a member bigger than any real file, or a line no real file has.
struct Bounded<R> {
    inner: R,
    left: u64,
    /// What `left` stands for, for the message.
    limit: String,
    max_line: u64,
    line: u64,
}

impl<R: Read> Bounded<R> {
    fn new(inner: R, left: u64, max_line: u64) -> Bounded<R> {
        Bounded {
            inner,
            left,
            limit: format!("{left} bytes decompressed"),
            max_line,
            line: 0,
        }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(format!(
                "larger than gplake accepts ({}): not read, rather than cut",
                self.limit
            )));
        }
        self.left -= n as u64;
        self.count_lines(&buf[..n])?;
        Ok(n)
    }
}

impl<R> Bounded<R> {
    /// Follows the length of the line being read across `bytes`, failing past `max_line`.
    /// Newlines are found with `memchr` (a byte-at-a-time loop cost 3 % of a month's build).
    fn count_lines(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut start = 0;
        for newline in memchr::memchr_iter(b'\n', bytes) {
            self.check_line(self.line + (newline - start) as u64)?;
            self.line = 0;
            start = newline + 1;
        }
        self.line += (bytes.len() - start) as u64;
        self.check_line(self.line)
    }

    fn check_line(&self, length: u64) -> std::io::Result<()> {
        if length > self.max_line {
            return Err(std::io::Error::other(format!(
                "a line longer than {} bytes: not a file of the series",
                self.max_line
            )));
        }
        Ok(())
    }
}

/// True when the file starts with a ZIP local header; the file is left at its start.
pub(crate) fn is_zip(file: &mut (impl Read + Seek)) -> std::io::Result<bool> {
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic)?;
    file.rewind()?;
    Ok(n == 4 && magic == *b"PK\x03\x04")
}

fn each_member(
    file: &std::fs::File,
    name: &str,
    limits: &InputLimits,
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
    if archive.len() > limits.max_members {
        return Err(zip_err(format!(
            "{} members, more than the limit of {}",
            archive.len(),
            limits.max_members
        )));
    }
    members.sort();
    for (member, index) in members {
        let entry = archive
            .by_index(index)
            .map_err(|e| zip_err(e.to_string()))?;
        each(
            &format!("{name}!{member}"),
            &mut member_reader(entry, limits),
        )?;
    }
    Ok(())
}

/// A member's reader, bounded by the smaller of the size limit and the ratio limit (the
/// compressed size is known from the archive's directory before any byte is inflated).
fn member_reader<'a, R: Read>(
    entry: zip::read::ZipFile<'a, R>,
    limits: &InputLimits,
) -> Bounded<zip::read::ZipFile<'a, R>> {
    let compressed = entry.compressed_size();
    let by_ratio = compressed.max(1).saturating_mul(limits.max_member_ratio);
    let (left, limit) = if by_ratio < limits.max_member_bytes {
        let ratio = limits.max_member_ratio;
        (
            by_ratio,
            format!("{ratio} times its {compressed} compressed bytes"),
        )
    } else {
        let max = limits.max_member_bytes;
        (max, format!("{max} bytes decompressed"))
    };
    let mut bounded = Bounded::new(entry, left, limits.max_line_bytes);
    bounded.limit = limit;
    bounded
}

/// CSV records with their header and line numbers.
///
/// Line numbers are counted here (header = line 1, one line per record): the publisher's
/// files never put line breaks inside fields, and the CSV reader's own count is off by one
/// on CRLF files.
pub(crate) struct Records<'a> {
    source: Source<'a>,
    line: u64,
    /// The file (and member) label, for messages.
    pub(crate) label: String,
    /// The header names.
    pub(crate) header: Vec<String>,
    /// Records with text that is not UTF-8 (read as Windows-1252), and the first one's line.
    not_utf8: (u64, u64),
}

/// Where records come from: lines split at commas while no line needs the CSV reader,
/// then the CSV reader to the end of the file.
enum Source<'a> {
    Plain(Lines<'a>),
    Csv(csv::Reader<Box<dyn Read + 'a>>, csv::ByteRecord),
    /// Only while the input moves from one to the other.
    Moving,
}

impl<'a> Records<'a> {
    /// Reads the header of `input`.
    pub(crate) fn new(input: &'a mut dyn Read, label: &str) -> Result<Records<'a>, FormatError> {
        Records::buffered(input, label, READ_BUFFER)
    }

    /// Reads the header of `input`, read `buffer` bytes at a time.
    fn buffered(
        input: &'a mut dyn Read,
        label: &str,
        buffer: usize,
    ) -> Result<Records<'a>, FormatError> {
        let mut records = Records {
            source: Source::Plain(Lines::new(input, buffer)),
            line: 0,
            label: label.to_string(),
            header: Vec::new(),
            not_utf8: (0, 0),
        };
        let mut header = Record::new();
        if records.read(&mut header)? {
            records.header = header
                .iter()
                .map(|h| text(h).trim_start_matches('\u{feff}').trim().to_string())
                .collect();
        }
        records.line = 1;
        Ok(records)
    }

    /// The next record and its 1-based line number, or `None` at the end.
    pub(crate) fn next(&mut self, record: &mut Record) -> Result<Option<u64>, FormatError> {
        if !self.read(record)? {
            return Ok(None);
        }
        self.line += 1;
        if record.needs_trim() {
            record.trim();
        }
        // The publisher's files are ASCII: `is_ascii` settles them a word at a time.
        let bytes = record.as_slice();
        if !bytes.is_ascii() && std::str::from_utf8(bytes).is_err() {
            if self.not_utf8.0 == 0 {
                self.not_utf8.1 = self.line;
            }
            self.not_utf8.0 += 1;
        }
        Ok(Some(self.line))
    }

    /// Reads the next record as it stands in the file (blank lines skipped, as the CSV
    /// reader skips them): false at the end.
    fn read(&mut self, record: &mut Record) -> Result<bool, FormatError> {
        loop {
            let line = self.line + 1;
            let split = match &mut self.source {
                Source::Csv(reader, read) => {
                    let more = reader.read_byte_record(read);
                    let more = more.map_err(|e| csv_error(&self.label, e, line))?;
                    record.set_from(read);
                    return Ok(more);
                }
                Source::Plain(lines) => lines.split(record),
                Source::Moving => return Ok(false),
            };
            match split.map_err(|e| csv_error(&self.label, e.into(), line))? {
                Split::Record => return Ok(true),
                Split::Blank => continue,
                Split::End => return Ok(false),
                Split::NeedsCsv => self.hand_to_csv(),
            }
        }
    }

    /// Hands the rest of the file, from the line just found, to the CSV reader.
    fn hand_to_csv(&mut self) {
        let Source::Plain(lines) = std::mem::replace(&mut self.source, Source::Moving) else {
            return;
        };
        let input: Box<dyn Read + 'a> = Box::new(lines.into_rest());
        // Read in 256 KiB at a time rather than 8 KiB: fewer calls into the file and the
        // decompressor for the same bytes.
        let reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(false)
            .buffer_capacity(READ_BUFFER)
            .from_reader(input);
        self.source = Source::Csv(reader, csv::ByteRecord::new());
    }
}

impl Records<'_> {
    /// One line for the quality results when some text was read as Windows-1252.
    pub(crate) fn encoding_note(&self) -> Option<String> {
        let (rows, first) = self.not_utf8;
        (rows > 0).then(|| {
            format!(
                "{} line {first}: {rows} rows have text that is not UTF-8, read as Windows-1252 (files saved by Windows tools)",
                self.label
            )
        })
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
pub(crate) fn raw_text(record: &Record) -> String {
    record
        .iter()
        .map(|f| text(f).into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

/// Why a record does not fit its header — fewer or more fields — or `None` when it fits.
/// Either way a field could have shifted into another column, so the row is not read.
pub(crate) fn width_problem(record: &Record, width: usize) -> Option<String> {
    let kind = match record.len() {
        n if n < width => "short",
        n if n > width => "long",
        _ => return None,
    };
    Some(format!(
        "{kind} row: {} fields where the header has {width}",
        record.len()
    ))
}

/// A field as text: UTF-8 when it is valid UTF-8 (so `é` stays `é`), else Windows-1252, the
/// encoding of files saved by Windows tools (a curly apostrophe is byte 0x92) — never `�`.
pub(crate) fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(valid) => Cow::Borrowed(valid),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| windows_1252(b)).collect()),
    }
}

/// One Windows-1252 byte as a character (0x80–0x9F differ from Latin-1; the five bytes the
/// code page leaves undefined map to the C1 controls, as WHATWG's decoder does).
fn windows_1252(byte: u8) -> char {
    const C1: [char; 32] = [
        '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}',
        '\u{8F}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}',
        '\u{2014}', '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}',
        '\u{178}',
    ];
    match byte {
        0x80..=0x9F => C1[usize::from(byte - 0x80)],
        _ => char::from(byte),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_stream_or_line_fails_instead_of_being_cut() {
        let read_all = |bytes: &[u8], left, line| {
            let mut out = Vec::new();
            Bounded::new(bytes, left, line)
                .read_to_end(&mut out)
                .map(|_| out)
        };
        assert_eq!(read_all(b"a,b\n1,2\n", 100, 10).unwrap(), b"a,b\n1,2\n");
        assert!(read_all(b"a,b\n1,2\n", 4, 10).is_err(), "too big");
        let err = read_all(b"a,b\n12345678901\n", 100, 10).unwrap_err();
        assert!(
            err.to_string().contains("a line longer than 10 bytes"),
            "{err}"
        );
    }

    fn zip_file(dir: &std::path::Path, members: &[(&str, Vec<u8>)]) -> std::path::PathBuf {
        let path = dir.join("test.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in members {
            zip.start_file(*name, options).unwrap();
            std::io::Write::write_all(&mut zip, bytes).unwrap();
        }
        zip.finish().unwrap();
        path
    }

    /// Reads every CSV of `path` to the end under `limits`: the error text, if any.
    fn read_under(path: &std::path::Path, limits: &InputLimits) -> Result<u64, String> {
        let mut total = 0u64;
        let file = std::fs::File::open(path).unwrap();
        each_csv(&file, "f.zip", limits, |_, r| {
            let mut out = Vec::new();
            r.read_to_end(&mut out).map_err(|source| FormatError::Io {
                file: "f.zip".into(),
                source,
            })?;
            total += out.len() as u64;
            Ok(())
        })
        .map(|()| total)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn each_zip_limit_is_one_error_naming_the_file_and_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let line = b"PRACTICE_CODE,NUMBER_OF_PATIENTS\nA81001,1234\n".to_vec();
        let limits = InputLimits::default();

        let many: Vec<(String, Vec<u8>)> = (0..65)
            .map(|i| (format!("m{i:02}.csv"), line.clone()))
            .collect();
        let many: Vec<(&str, Vec<u8>)> =
            many.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        let err = read_under(&zip_file(dir.path(), &many), &limits).unwrap_err();
        assert!(
            err.contains("f.zip") && err.contains("65 members, more than the limit of 64"),
            "{err}"
        );

        // Zeros compress about a thousandfold: far past 200 times.
        let bomb = zip_file(dir.path(), &[("a.csv", vec![b'0'; 4 << 20])]);
        let err = read_under(&bomb, &limits).unwrap_err();
        assert!(
            err.contains("f.zip") && err.contains("200 times its"),
            "{err}"
        );
        let relaxed = InputLimits {
            max_member_ratio: 100_000,
            max_line_bytes: 8 << 20,
            ..limits
        };
        assert_eq!(read_under(&bomb, &relaxed).unwrap(), 4 << 20);

        let capped = InputLimits {
            max_member_bytes: 1 << 20,
            ..relaxed
        };
        let err = read_under(&bomb, &capped).unwrap_err();
        assert!(
            err.contains(&format!("{} bytes decompressed", 1 << 20)),
            "{err}"
        );

        let long = zip_file(
            dir.path(),
            &[("a.csv", [b"x".repeat(2 << 20), b"\n".to_vec()].concat())],
        );
        let err = read_under(&long, &relaxed.clone()).map(|_| ()).err();
        assert!(err.is_none(), "8 MiB lines allowed here");
        let err = read_under(
            &long,
            &InputLimits {
                max_member_ratio: 100_000,
                ..limits
            },
        )
        .unwrap_err();
        assert!(err.contains("a line longer than 1048576 bytes"), "{err}");
    }

    /// A header, and each record's line and fields.
    type Parsed = (Vec<String>, Vec<(u64, Vec<Vec<u8>>)>);

    /// Header, then each record's line and fields, as the CSV reader alone reads them
    /// (how every file was read before the plain-line splitter).
    fn by_csv_alone(bytes: &[u8]) -> Parsed {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
        let header = reader
            .byte_headers()
            .unwrap()
            .iter()
            .map(|h| text(h).trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        let mut rows = Vec::new();
        let mut record = csv::ByteRecord::new();
        let mut line = 1;
        while reader.read_byte_record(&mut record).unwrap() {
            line += 1;
            record.trim();
            rows.push((line, record.iter().map(<[u8]>::to_vec).collect()));
        }
        (header, rows)
    }

    fn by_records(bytes: &[u8], buffer: usize) -> Parsed {
        let mut input: &[u8] = bytes;
        let mut records = Records::buffered(&mut input, "f.csv", buffer).unwrap();
        let mut rows = Vec::new();
        let mut record = Record::new();
        let mut not_utf8 = 0;
        while let Some(line) = records.next(&mut record).unwrap() {
            not_utf8 += u64::from(std::str::from_utf8(record.as_slice()).is_err());
            rows.push((line, record.iter().map(<[u8]>::to_vec).collect()));
        }
        // Every record that is not UTF-8 is counted for the encoding note, and no other.
        assert_eq!(records.not_utf8.0, not_utf8, "records counted as not UTF-8");
        (records.header.clone(), rows)
    }

    #[test]
    fn plain_lines_and_the_csv_fallback_read_as_the_csv_reader_does() {
        let cases: [&[u8]; 9] = [
            b"A,B\n1,2\n3,4\n",
            b"A,B\r\n1,2\r\n3,4",
            b"\xef\xbb\xbfA, B \n 1 ,2\n\n\n3,4,5\n6\n",
            b"A,B\n1,2\n\"x,y\",3\n4,5\n",
            b"\"A\",B\n1,2\n",
            b"A,B\r1,2\r3,4\r\n5,6\n",
            b"A,B\n1,\"a\"\"b\"\n,\n",
            b"",
            b"\n\nA\n\r\n1\n",
        ];
        for case in cases {
            for buffer in [1, 2, 3, 5, 64, READ_BUFFER] {
                assert_eq!(
                    by_records(case, buffer),
                    by_csv_alone(case),
                    "{:?} read {buffer} bytes at a time",
                    String::from_utf8_lossy(case)
                );
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn any_bytes_read_as_the_csv_reader_reads_them(
            bytes in proptest::collection::vec(
                proptest::sample::select(b"a1 ,\"\r\n\t\xe9\xc3\xa9".to_vec()), 0..200),
            buffer in 1usize..40,
        ) {
            proptest::prop_assert_eq!(by_records(&bytes, buffer), by_csv_alone(&bytes));
        }
    }

    #[test]
    fn utf8_stays_and_windows_1252_is_decoded() {
        assert_eq!(text("CAFÉ".as_bytes()), "CAFÉ");
        assert_eq!(text(b"ST MARY\x92S SURGERY"), "ST MARY\u{2019}S SURGERY");
        assert_eq!(text(b"CAF\xC9"), "CAFÉ");
        assert_eq!(text(b"\x80 5"), "\u{20AC} 5");
    }
}
