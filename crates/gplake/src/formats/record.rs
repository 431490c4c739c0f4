//! One CSV record as bytes and field spans, and the splitter that reads plain lines into it.
//!
//! Nearly every line the publisher writes is plain: no quotes, ended by LF or CRLF. Such a
//! line is split at its commas in one pass and copied once, which costs a fraction of the
//! CSV reader's state machine (the largest single cost of a build, with a copy per field).
//! The first line that is not plain is left unread, for the CSV reader to take the rest of
//! the input from its start: a line start is a clean start for it.

use std::io::Read;
use std::ops::Range;

/// A record: its bytes and each field's span in them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Record {
    bytes: Vec<u8>,
    fields: Vec<(usize, usize)>,
}

impl Record {
    pub(crate) fn new() -> Record {
        Record::default()
    }

    /// The number of fields.
    pub(crate) fn len(&self) -> usize {
        self.fields.len()
    }

    /// Field `i`.
    pub(crate) fn get(&self, i: usize) -> Option<&[u8]> {
        self.range(i).map(|r| &self.bytes[r])
    }

    /// Field `i`'s span in [`Record::as_slice`].
    pub(crate) fn range(&self, i: usize) -> Option<Range<usize>> {
        self.fields.get(i).map(|&(from, to)| from..to)
    }

    /// The bytes every field is a span of (with or without separators between them).
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// The fields in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.fields.iter().map(|&(from, to)| &self.bytes[from..to])
    }

    /// True when a field starts or ends with ASCII whitespace.
    pub(crate) fn needs_trim(&self) -> bool {
        self.iter().any(|field| {
            field.first().is_some_and(u8::is_ascii_whitespace)
                || field.last().is_some_and(u8::is_ascii_whitespace)
        })
    }

    /// Drops ASCII whitespace from both ends of every field (as the CSV reader's trim does).
    pub(crate) fn trim(&mut self) {
        for (from, to) in &mut self.fields {
            let field = &self.bytes[*from..*to];
            let trimmed = field.trim_ascii();
            let start = trimmed.as_ptr() as usize - field.as_ptr() as usize;
            *from += start;
            *to = *from + trimmed.len();
        }
    }

    /// Takes the CSV reader's record.
    pub(crate) fn set_from(&mut self, csv: &csv::ByteRecord) {
        self.bytes.clear();
        self.bytes.extend_from_slice(csv.as_slice());
        self.fields.clear();
        let spans = (0..csv.len()).filter_map(|i| csv.range(i));
        self.fields.extend(spans.map(|r| (r.start, r.end)));
    }
}

/// What [`Lines::split`] found.
pub(crate) enum Split {
    /// A record, split at its commas.
    Record,
    /// An empty line (the CSV reader skips them).
    Blank,
    /// The end of the input.
    End,
    /// A line with a quote or a lone carriage return: left unread for the CSV reader.
    NeedsCsv,
}

/// The plain lines of an input, read a buffer at a time.
pub(crate) struct Lines<'a> {
    input: &'a mut dyn Read,
    buf: Vec<u8>,
    /// The first byte not yet returned.
    start: usize,
    /// The end of the bytes read.
    end: usize,
    eof: bool,
}

/// What one scan of the buffered bytes found.
enum Scan {
    /// A line of this many bytes, then this many bytes of line end.
    Line(usize, usize),
    /// No line end in the bytes buffered.
    Incomplete,
    NeedsCsv,
}

/// Bytes that stop the scan's inner loop.
const SPECIAL: [bool; 256] = {
    let mut special = [false; 256];
    special[b',' as usize] = true;
    special[b'\n' as usize] = true;
    special[b'\r' as usize] = true;
    special[b'"' as usize] = true;
    special
};

impl<'a> Lines<'a> {
    pub(crate) fn new(input: &'a mut dyn Read, buffer: usize) -> Lines<'a> {
        Lines {
            input,
            buf: vec![0; buffer.max(2)],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The input from the first byte not yet returned, for the CSV reader.
    pub(crate) fn into_rest(self) -> impl Read + 'a {
        let rest = self.buf[self.start..self.end].to_vec();
        std::io::Cursor::new(rest).chain(self.input)
    }

    /// Splits the next line into `record`, unless it needs the CSV reader.
    pub(crate) fn split(&mut self, record: &mut Record) -> std::io::Result<Split> {
        loop {
            let bytes = &self.buf[self.start..self.end];
            match scan(bytes, self.eof, &mut record.fields) {
                Scan::Line(0, 0) => return Ok(Split::End),
                Scan::Line(0, ending) => {
                    self.start += ending;
                    return Ok(Split::Blank);
                }
                Scan::Line(length, ending) => {
                    record.bytes.clear();
                    record.bytes.extend_from_slice(&bytes[..length]);
                    self.start += length + ending;
                    return Ok(Split::Record);
                }
                Scan::NeedsCsv => return Ok(Split::NeedsCsv),
                Scan::Incomplete => self.fill()?,
            }
        }
    }

    /// Moves the unreturned bytes to the front and reads more after them (the buffer grows
    /// only for a line longer than it, which the input's line limit bounds).
    fn fill(&mut self) -> std::io::Result<()> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            return Ok(());
        }
    }
}

/// Finds the first line of `bytes` and the spans of its fields. At the end of the input
/// (`eof`) the bytes left are a line without an end.
fn scan(bytes: &[u8], eof: bool, fields: &mut Vec<(usize, usize)>) -> Scan {
    fields.clear();
    let mut field = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !SPECIAL[usize::from(bytes[i])] {
            i += 1;
            continue;
        }
        match bytes[i] {
            b',' => {
                fields.push((field, i));
                field = i + 1;
            }
            b'\n' => return line(fields, field, i, 1),
            b'\r' => match bytes.get(i + 1) {
                Some(b'\n') => return line(fields, field, i, 2),
                None if eof => return line(fields, field, i, 1),
                None => return Scan::Incomplete,
                Some(_) => return Scan::NeedsCsv,
            },
            _ => return Scan::NeedsCsv,
        }
        i += 1;
    }
    match eof {
        true => line(fields, field, bytes.len(), 0),
        false => Scan::Incomplete,
    }
}

/// A line of `length` bytes whose last field starts at `field`, ended by `ending` bytes.
fn line(fields: &mut Vec<(usize, usize)>, field: usize, length: usize, ending: usize) -> Scan {
    if length == 0 {
        fields.clear();
    } else {
        fields.push((field, length));
    }
    Scan::Line(length, ending)
}
