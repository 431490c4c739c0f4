//! What is known of the publisher's files, and how to read them.
//!
//! Families and naming eras from names ([`family`]); EXTRACT_DATE spellings
//! ([`extract_date`]); one alias registry for headers ([`columns`]) and one for values
//! ([`values`]); streaming readers of CSV and ZIP ([`reader`]); and one parser per shape:
//! long count files ([`long`]), the map ([`map`]), LSOA ([`lsoa`]), pre-2017 wide files
//! ([`legacy`]). Parsers stream rows to the caller and return [`FileStats`]; a row that cannot
//! be read is quarantined with its line and reason.
//!
//! The rule for what is new: a file is stopped only when a figure gplake publishes could be
//! wrong — a required column missing (or, most likely, renamed: the unknown column is named),
//! an unknown value in a column that feeds a figure. An unknown *extra* column cannot change
//! a figure: it is set aside and reported as a warning naming the file, line and column
//! ([`FileStats::warnings`]).

pub mod aliases;
pub(crate) mod columns;
pub(crate) mod extract_date;
pub mod family;
pub(crate) mod legacy;
pub(crate) mod long;
pub(crate) mod lsoa;
pub(crate) mod map;
pub(crate) mod reader;
mod record;
pub use reader::InputLimits;
pub(crate) mod sniff;
pub mod values;

use serde::Serialize;
use std::borrow::Cow;

use crate::month::Month;

pub use aliases::{Aliases, AliasesError};
pub use extract_date::parse_extract_date;
pub use family::{Container, Family, FileKind, NamingEra, classify, is_data_file, month_from_name};
pub use sniff::SniffError;
pub use values::{AgeKey, OrgLevel, SexKey};

/// A file that cannot be read as its family: the whole file stops.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// A header not in the alias registry.
    #[error(
        "{file}: unknown column '{column}' for a {family:?} file; the header looks like {era}; if it is a renamed column, add this line to an aliases file and run with --aliases FILE: {alias_line}"
    )]
    UnknownColumn {
        /// The file (and member).
        file: String,
        /// The column as published.
        column: String,
        /// The family expected.
        family: Family,
        /// The era the header resembles.
        era: &'static str,
        /// The aliases line that would read it as the missing column.
        alias_line: String,
    },
    /// A column the family needs is absent.
    #[error("{file}: no {column} column for a {family:?} file; the header looks like {era}")]
    MissingColumn {
        /// The file.
        file: String,
        /// The canonical column.
        column: String,
        /// The family expected.
        family: Family,
        /// The era the header resembles.
        era: &'static str,
    },
    /// A practice-level file without a single practice row: its practice label may have
    /// changed, and every practice figure of the file would be lost.
    #[error("{file}: no practice (ORG_TYPE GP) rows at all{}; if the publisher renamed the practice label, add it to an aliases file and run with --aliases FILE: [org_types] \"{}\" = \"GP\"", if unknown.is_empty() { String::new() } else { format!(" (unknown ORG_TYPE labels: {unknown})") }, unknown.split(", ").next().filter(|u| !u.is_empty()).unwrap_or("NEW_LABEL"))]
    NoPracticeRows {
        /// The file.
        file: String,
        /// The unknown labels met, comma-separated.
        unknown: String,
    },
    /// A code value not in the value registry.
    #[error("{file} line {line}, column {column}: unknown value '{value}'")]
    UnknownValue {
        /// The file.
        file: String,
        /// 1-based line.
        line: u64,
        /// The column.
        column: String,
        /// The value.
        value: String,
    },
    /// EXTRACT_DATE is unreadable or names another month.
    #[error("{file} line {line}, column EXTRACT_DATE: '{value}' {problem} (release month {month})")]
    ExtractDate {
        /// The file.
        file: String,
        /// 1-based line.
        line: u64,
        /// The value.
        value: String,
        /// What is wrong.
        problem: &'static str,
        /// The release month.
        month: Month,
    },
    /// The CSV itself is broken (bad quoting, invalid UTF-8 in a header).
    #[error("{file} line {line}: {reason}")]
    Csv {
        /// The file.
        file: String,
        /// 1-based line.
        line: u64,
        /// The CSV reader's reason.
        reason: String,
    },
    /// The ZIP container is corrupt.
    #[error("{file} is not a readable ZIP of CSV files: {reason}")]
    Zip {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading failed.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// What a parser needs to know of the file it reads.
#[derive(Debug, Clone)]
pub struct FileContext {
    /// The release month.
    pub month: Month,
    /// The family the file belongs to.
    pub family: Family,
    /// The user's aliases in force.
    pub aliases: Aliases,
}

/// One count as published: an organisation, a sex, an age or band, a number. Its text
/// borrows the record it was read from (a copy is made only to decode a non-UTF-8 field), so
/// the millions of rows of a month cost no allocation each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountRow<'a> {
    /// 1-based line in the file.
    pub line: u64,
    /// Practice or an organisation above it.
    pub level: OrgLevel,
    /// Practice or organisation code.
    pub code: Cow<'a, str>,
    /// ONS code, for organisation rows.
    pub ons: Option<Cow<'a, str>>,
    /// Practice postcode, when the file has it.
    pub postcode: Option<Cow<'a, str>>,
    /// The practice's sub-ICB (CCG) code, when the file has it.
    pub sub_icb: Option<Cow<'a, str>>,
    /// Its ONS code.
    pub sub_icb_ons: Option<Cow<'a, str>>,
    /// Sex (ALL for subtotals).
    pub sex: SexKey,
    /// Age, band, or ALL.
    pub age: AgeKey,
    /// The count.
    pub count: u64,
    /// The publisher masked the cell (`*` or blank in a pre-2017 wide file): `count` is 0
    /// and means unknown, never zero.
    pub suppressed: bool,
}

impl CountRow<'_> {
    /// The row with its text copied, to keep after its record is gone.
    pub fn into_owned(self) -> CountRow<'static> {
        let own = |t: Option<Cow<'_, str>>| t.map(|t| Cow::Owned(t.into_owned()));
        CountRow {
            line: self.line,
            level: self.level,
            code: Cow::Owned(self.code.into_owned()),
            ons: own(self.ons),
            postcode: own(self.postcode),
            sub_icb: own(self.sub_icb),
            sub_icb_ons: own(self.sub_icb_ons),
            sex: self.sex,
            age: self.age,
            count: self.count,
            suppressed: self.suppressed,
        }
    }

    /// True for a practice leaf row (not ALL, not an organisation aggregate).
    pub fn is_leaf(&self) -> bool {
        self.level == OrgLevel::Practice && self.sex != SexKey::All && self.age != AgeKey::All
    }

    /// True for an organisation's row of one sex and one age or band.
    pub fn is_org_leaf(&self) -> bool {
        self.level != OrgLevel::Practice && self.sex != SexKey::All && self.age != AgeKey::All
    }
}

/// One LSOA count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsoaRow {
    /// 1-based line.
    pub line: u64,
    /// Practice code.
    pub practice: String,
    /// Practice name, when given.
    pub practice_name: Option<String>,
    /// LSOA code as published (`E01…`, `W01…`, `NO2011`, `CLOSED`).
    pub lsoa: String,
    /// Sex (ALL in the all-persons member).
    pub sex: SexKey,
    /// The count.
    pub count: u64,
}

/// A practice's attributes from the map file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PracticeAttrs {
    /// Line in the map.
    pub line: u64,
    /// Practice code.
    pub code: String,
    /// Name.
    pub name: Option<String>,
    /// Postcode.
    pub postcode: Option<String>,
    /// PCN code (`U` = unallocated).
    pub pcn_code: Option<String>,
    /// PCN name.
    pub pcn_name: Option<String>,
    /// Sub-ICB (CCG) code.
    pub sub_icb_code: Option<String>,
    /// Its ONS code.
    pub sub_icb_ons_code: Option<String>,
    /// Its name.
    pub sub_icb_name: Option<String>,
    /// ICB (STP) code.
    pub icb_code: Option<String>,
    /// Its ONS code.
    pub icb_ons_code: Option<String>,
    /// Its name.
    pub icb_name: Option<String>,
    /// Region code (Y56…).
    pub region_code: Option<String>,
    /// Region ONS code.
    pub region_ons_code: Option<String>,
    /// Region name.
    pub region_name: Option<String>,
    /// GP system supplier (2026 →).
    pub supplier: Option<String>,
}

/// A row that could not be read, kept with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantined {
    /// The file (and member).
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// The row's text.
    pub raw: String,
    /// Why.
    pub reason: String,
}

/// Accounting of one file: `rows_read = rows_leaf + rows_zero + rows_subtotal + rows_quarantined`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileStats {
    /// Count cells read (a wide row holds many).
    pub rows_read: u64,
    /// Practice leaf rows with a count above zero (what facts store).
    pub rows_leaf: u64,
    /// Leaf rows with a zero count (not stored: the publisher stopped writing them).
    pub rows_zero: u64,
    /// ALL rows and organisation aggregates (read for the checks, not stored).
    pub rows_subtotal: u64,
    /// Rows that could not be read.
    pub rows_quarantined: u64,
    /// The quarantined rows.
    #[serde(skip)]
    pub quarantined: Vec<Quarantined>,
    /// What gplake could not use in the file but that cannot change a figure (an unknown
    /// extra column), one line each naming file, line and column.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Set when some of the file's text was not UTF-8 and was read as Windows-1252.
    #[serde(skip)]
    pub encoding: Option<String>,
}

impl FileStats {
    /// Empty stats carrying a warning for each column of the header gplake does not know.
    fn for_header(records: &reader::Records<'_>, ctx: &FileContext) -> FileStats {
        let label = records.label.as_str();
        FileStats {
            warnings: columns::Header::resolve(&records.header, &ctx.aliases)
                .map(|h| h.unknown_warnings(label))
                .unwrap_or_default(),
            ..FileStats::default()
        }
    }

    fn tally(&mut self, row: &CountRow<'_>) {
        match () {
            _ if !row.is_leaf() => self.rows_subtotal += 1,
            _ if row.suppressed => self.rows_leaf += 1,
            _ if row.count == 0 => self.rows_zero += 1,
            _ => self.rows_leaf += 1,
        }
    }

    fn quarantine(&mut self, q: Quarantined) {
        self.rows_quarantined += 1;
        self.quarantined.push(q);
    }

    /// True when every row read is accounted for.
    pub fn balances(&self) -> bool {
        self.rows_read
            == self.rows_leaf + self.rows_zero + self.rows_subtotal + self.rows_quarantined
    }
}

/// Checks EXTRACT_DATE values against the release month, parsing each distinct value once.
pub(crate) struct DateCheck {
    month: Month,
    last_ok: String,
}

impl DateCheck {
    pub(crate) fn new(month: Month) -> DateCheck {
        DateCheck {
            month,
            last_ok: String::new(),
        }
    }

    pub(crate) fn check(&mut self, value: &str, file: &str, line: u64) -> Result<(), FormatError> {
        if value == self.last_ok {
            return Ok(());
        }
        let err = |problem| FormatError::ExtractDate {
            file: file.to_string(),
            line,
            value: value.to_string(),
            problem,
            month: self.month,
        };
        let date =
            parse_extract_date(value).ok_or_else(|| err("is not a date in any known spelling"))?;
        if Month::of(date) != self.month {
            return Err(err("belongs to another month"));
        }
        self.last_ok = value.to_string();
        Ok(())
    }
}
