//! The long count files (2017 →): practice totals, quinary, single-age male/female/all and
//! regions. One parser, because their shape is one shape: an organisation, a sex, an age or
//! band, a count — only the age column and the presence of `ORG_TYPE` differ.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::aliases::Aliases;
use super::columns::{Col, Header};
use super::reader::{Record, Records, raw_text};
use super::values::{AgeKey, OrgLevel, SexKey, parse_count, plain_count};
use super::{CountRow, Family, FileContext, FileStats, FormatError, Quarantined};

/// Where the columns of a long file are.
struct Layout {
    code: usize,
    sex: usize,
    age: usize,
    count: usize,
    org_type: Option<usize>,
    ons: Option<usize>,
    postcode: Option<usize>,
    sub_icb: Option<usize>,
    sub_icb_ons: Option<usize>,
    extract_date: Option<usize>,
    banded: bool,
    width: usize,
}

/// Streams the count rows of a long file to `on_row`; unparseable rows are quarantined.
pub(crate) fn parse_counts(
    records: &mut Records<'_>,
    ctx: &FileContext,
    on_row: &mut dyn FnMut(&CountRow<'_>),
) -> Result<FileStats, FormatError> {
    let layout = layout(records, ctx)?;
    let mut stats = FileStats::for_header(records, ctx);
    let mut dates = super::DateCheck::new(ctx.month);
    let mut record = Record::new();
    let mut repeats = Repeats::default();
    let mut unknown_levels: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut practice_rows = 0u64;
    while let Some(line) = records.next(&mut record)? {
        stats.rows_read += 1;
        // A row too short to have its ORG_TYPE is read as a practice's, and `row` sets it
        // aside for its width.
        let org_type = layout.org_type.and_then(|i| record.get(i));
        let level = match org_type {
            Some(org_type) => repeats.org_level(org_type, &ctx.aliases),
            None => Some(OrgLevel::Practice),
        };
        let Some(level) = level else {
            // An organisation row of a kind gplake does not know: it cannot change a practice
            // figure, so it is set aside (and its level left unreconciled), with a warning.
            stats.rows_subtotal += 1;
            let label = super::reader::text(org_type.unwrap_or_default());
            let label = label.trim().to_string();
            unknown_levels.entry(label).or_insert((line, 0)).1 += 1;
            continue;
        };
        let at = Position {
            line,
            file: &records.label,
        };
        match row(
            &record,
            level,
            &layout,
            at,
            &mut dates,
            &mut repeats,
            &ctx.aliases,
        )? {
            Ok(row) => {
                practice_rows += u64::from(row.level == OrgLevel::Practice);
                stats.tally(&row);
                on_row(&row);
            }
            Err(reason) => stats.quarantine(Quarantined {
                file: records.label.clone(),
                line,
                raw: raw_text(&record),
                reason,
            }),
        }
    }
    let label = records.label.as_str();
    for (level, (line, rows)) in &unknown_levels {
        stats.warnings.push(format!(
            "{label} line {line}: ORG_TYPE '{level}' is not known to gplake; its {rows} rows were not read and that level is not reconciled"
        ));
    }
    if ctx.family.is_practice_level() && practice_rows == 0 {
        return Err(FormatError::NoPracticeRows {
            file: label.to_string(),
            unknown: unknown_levels
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    stats.encoding = records.encoding_note();
    Ok(stats)
}

/// The parsed values of the fields a file repeats row after row, by their last spelling:
/// ORG_TYPE and SEX keep one spelling for dozens to millions of rows, and trimming and
/// comparing each against every known spelling, twice for ORG_TYPE, took about 2.5 % of a
/// build's CPU.
#[derive(Default)]
struct Repeats {
    org_type: Option<(Vec<u8>, Option<OrgLevel>)>,
    sex: Option<(Vec<u8>, Option<SexKey>)>,
}

impl Repeats {
    /// The level an `ORG_TYPE` names; `None` for a label gplake does not know.
    fn org_level(&mut self, bytes: &[u8], aliases: &Aliases) -> Option<OrgLevel> {
        last_or(&mut self.org_type, bytes, |text| aliases.org_level(text))
    }

    fn sex(&mut self, bytes: &[u8]) -> Option<SexKey> {
        last_or(&mut self.sex, bytes, SexKey::parse)
    }
}

/// `parse(bytes)`, or the value kept in `last` when `bytes` are the spelling it was parsed
/// from.
fn last_or<T: Copy>(
    last: &mut Option<(Vec<u8>, T)>,
    bytes: &[u8],
    parse: impl FnOnce(&str) -> T,
) -> T {
    match last {
        Some((spelling, value)) if spelling.as_slice() == bytes => *value,
        _ => {
            let value = parse(&super::reader::text(bytes));
            *last = Some((bytes.to_vec(), value));
            value
        }
    }
}

/// Where a row is, for messages.
#[derive(Clone, Copy)]
struct Position<'a> {
    line: u64,
    file: &'a str,
}

fn layout(records: &Records<'_>, ctx: &FileContext) -> Result<Layout, FormatError> {
    let file = records.label.as_str();
    let header = Header::resolve(&records.header, &ctx.aliases)?;
    let banded = ctx.family == Family::Quinary;
    let age_col = if banded { Col::AgeBand } else { Col::Age };
    Ok(Layout {
        code: header.require(Col::Code, ctx.family, file)?,
        sex: header.require(Col::Sex, ctx.family, file)?,
        age: header.require(age_col, ctx.family, file)?,
        count: header.require(Col::Count, ctx.family, file)?,
        org_type: header.get(Col::OrgType),
        ons: header.get(Col::OnsCode),
        postcode: header.get(Col::Postcode),
        sub_icb: header.get(Col::SubIcbCode),
        sub_icb_ons: header.get(Col::SubIcbOnsCode),
        extract_date: header.get(Col::ExtractDate),
        banded,
        width: records.header.len(),
    })
}

/// One record of `level`: `Ok(Ok(row))`, `Ok(Err(reason))` to quarantine, or `Err` to
/// stop the file.
fn row<'r>(
    record: &'r Record,
    level: OrgLevel,
    l: &Layout,
    at: Position<'_>,
    dates: &mut super::DateCheck,
    repeats: &mut Repeats,
    aliases: &Aliases,
) -> Result<Result<CountRow<'r>, String>, FormatError> {
    if let Some(reason) = super::reader::width_problem(record, l.width) {
        return Ok(Err(reason));
    }
    let bytes = |i: usize| record.get(i).unwrap_or_default();
    // The publisher's records are ASCII: checked once whole, their fields are sliced as
    // text rather than each checked again.
    let whole = std::str::from_utf8(record.as_slice()).ok();
    let in_whole = |i: usize| whole?.get(record.range(i)?);
    let field =
        |i: usize| in_whole(i).unwrap_or_else(|| std::str::from_utf8(bytes(i)).unwrap_or(""));
    let opt = |i: Option<usize>| {
        let i = i?;
        let text = match in_whole(i) {
            Some(text) => Cow::Borrowed(text),
            None => super::reader::text(record.get(i)?),
        };
        Some(text).filter(|v| !v.is_empty())
    };
    if let Some(i) = l.extract_date {
        dates.check(field(i), at.file, at.line)?;
    }
    let unknown = |column: &str, value: &str| FormatError::UnknownValue {
        file: at.file.to_string(),
        line: at.line,
        column: column.to_string(),
        value: value.to_string(),
    };
    let sex = repeats
        .sex(bytes(l.sex))
        .ok_or_else(|| unknown("SEX", field(l.sex)))?;
    let age = age(bytes(l.age), l.banded, aliases).ok_or_else(|| {
        let column = if l.banded { "AGE_GROUP_5" } else { "AGE" };
        unknown(column, field(l.age))
    })?;
    let Some(count) = plain_count(bytes(l.count)).or_else(|| parse_count(field(l.count))) else {
        return Ok(Err(format!(
            "column NUMBER_OF_PATIENTS: '{}' is not a non-negative whole number",
            field(l.count)
        )));
    };
    let code = field(l.code);
    if code.is_empty() {
        return Ok(Err("column ORG_CODE: empty".into()));
    }
    Ok(Ok(CountRow {
        line: at.line,
        level,
        code: Cow::Borrowed(code),
        ons: opt(l.ons),
        postcode: opt(l.postcode),
        sub_icb: opt(l.sub_icb),
        sub_icb_ons: opt(l.sub_icb_ons),
        sex,
        age,
        count,
        suppressed: false,
    }))
}

/// An age or a band: a plain one read from its bytes, any other by the full parsers.
fn age(bytes: &[u8], banded: bool, aliases: &Aliases) -> Option<AgeKey> {
    match banded {
        true => AgeKey::plain_band(bytes).or_else(|| aliases.band(&super::reader::text(bytes))),
        false => AgeKey::plain_year(bytes).or_else(|| aliases.year(&super::reader::text(bytes))),
    }
}
