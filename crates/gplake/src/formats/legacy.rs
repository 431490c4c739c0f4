//! Pre-April-2017 wide files: one row per practice, one column per sex × age or band
//! (`MALE_0-4`…`FEMALE_95+`, or `male_0_1`…`female_95+`), with `TOTAL_*` columns. Each row is
//! unpivoted into count rows; the totals become subtotal rows for the checks. These files
//! carry no EXTRACT_DATE: the snapshot date comes from the release.

use super::columns::{Col, Header, WideColumn};
use super::reader::{Record, Records, raw_text};
use super::values::{AgeKey, OrgLevel, SexKey, parse_count};
use super::{CountRow, Family, FileContext, FileStats, FormatError, Quarantined};

/// Streams the unpivoted count rows of a wide file to `on_row`.
pub(crate) fn parse_wide(
    records: &mut Records<'_>,
    ctx: &FileContext,
    on_row: &mut dyn FnMut(&CountRow<'_>),
) -> Result<FileStats, FormatError> {
    let file = records.label.clone();
    let header = Header::resolve(&records.header, &ctx.aliases)?;
    let code = header.require(Col::Code, ctx.family, &file)?;
    let ages = wide_ages(&header, ctx.family, &file)?;
    if ages.is_empty() {
        // Totals alone would make a month without a single age row: never an empty month.
        return Err(FormatError::MissingColumn {
            file,
            column: "age columns (MALE_0-4 … FEMALE_95+, or male_0_1 … female_95+)".into(),
            family: ctx.family,
            era: "pre-2017 wide files (2013–2017)",
        });
    }
    let totals: Vec<(SexKey, usize)> = [
        (SexKey::All, Col::TotalAll),
        (SexKey::Male, Col::TotalMale),
        (SexKey::Female, Col::TotalFemale),
    ]
    .iter()
    .filter_map(|(s, c)| header.get(*c).map(|i| (*s, i)))
    .collect();
    let width = records.header.len();
    let mut stats = FileStats::for_header(records, ctx);
    let mut record = Record::new();
    while let Some(line) = records.next(&mut record)? {
        let field = |i: usize| super::reader::text(record.get(i).unwrap_or_default());
        let cells = ages.len() + totals.len();
        stats.rows_read += cells as u64;
        let quarantine = |stats: &mut FileStats, reason: String| {
            stats.quarantine(Quarantined {
                file: file.clone(),
                line,
                raw: raw_text(&record),
                reason,
            });
            stats.rows_quarantined += cells as u64 - 1;
        };
        if let Some(reason) = super::reader::width_problem(&record, width) {
            quarantine(&mut stats, reason);
            continue;
        }
        let base = CountRow {
            line,
            level: OrgLevel::Practice,
            code: field(code),
            ons: None,
            postcode: header
                .get(Col::Postcode)
                .map(field)
                .filter(|v| !v.is_empty()),
            sub_icb: header
                .get(Col::SubIcbCode)
                .map(field)
                .filter(|v| !v.is_empty()),
            sub_icb_ons: header
                .get(Col::SubIcbOnsCode)
                .map(field)
                .filter(|v| !v.is_empty()),
            sex: SexKey::All,
            age: AgeKey::All,
            count: 0,
            suppressed: false,
        };
        let cells_iter = ages
            .iter()
            .map(|(sex, age, i)| (*sex, *age, *i))
            .chain(totals.iter().map(|(s, i)| (*s, AgeKey::All, *i)));
        let mut rows = Vec::with_capacity(cells);
        for (sex, age, i) in cells_iter {
            let text = field(i);
            match parse_count(&text) {
                Some(count) => rows.push(CountRow {
                    sex,
                    age,
                    count,
                    ..base.clone()
                }),
                // A masked age cell is recorded as suppressed: never quarantined, never
                // guessed (the practice's list size comes from its total column).
                None if age != AgeKey::All && is_masked(&text) => rows.push(CountRow {
                    sex,
                    age,
                    suppressed: true,
                    ..base.clone()
                }),
                None => {
                    quarantine(
                        &mut stats,
                        format!(
                            "column {}: '{}' is not a non-negative whole number",
                            records.header[i],
                            field(i)
                        ),
                    );
                    rows.clear();
                    break;
                }
            }
        }
        for row in rows {
            stats.tally(&row);
            on_row(&row);
        }
    }
    stats.encoding = records.encoding_note();
    Ok(stats)
}

/// `*` or an empty cell: the publisher's mark for a small number withheld.
fn is_masked(text: &str) -> bool {
    matches!(text.trim(), "" | "*")
}

/// The sex and age (or band) of every wide column; a column that fits neither scheme stops
/// the file.
fn wide_ages(
    header: &Header,
    family: Family,
    file: &str,
) -> Result<Vec<(SexKey, AgeKey, usize)>, FormatError> {
    header
        .wide
        .iter()
        .map(|w: &WideColumn| {
            let sex = if w.male { SexKey::Male } else { SexKey::Female };
            let age = match family {
                Family::LegacySingleAge if w.from == w.to => Some(AgeKey::Year(w.from)),
                Family::LegacyQuinary if w.from == 95 => Some(AgeKey::Band(19)),
                // An open top band (`85+`): its own band, never split.
                Family::LegacyQuinary if w.to == 95 && w.from.is_multiple_of(5) => {
                    Some(AgeKey::OpenBand(w.from))
                }
                Family::LegacyQuinary if w.from.is_multiple_of(5) && w.to == w.from + 4 => {
                    Some(AgeKey::Band(w.from / 5))
                }
                _ => None,
            };
            age.map(|a| (sex, a, w.index))
                .ok_or_else(|| FormatError::UnknownColumn {
                    file: file.to_string(),
                    column: header.names[w.index].clone(),
                    family,
                    era: "pre-2017 wide files (2013–2017)",
                    alias_line: "none: no alias reads a wide age column of another shape; this layout needs a new gplake".into(),
                })
        })
        .collect()
}
