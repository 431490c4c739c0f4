//! LSOA files: long (`PRACTICE_CODE, PRACTICE_NAME, LSOA_CODE, SEX, NUMBER_OF_PATIENTS`, the
//! count once spelled `Number of Patients`) inside quarterly ZIPs, and the pre-2017 tall file
//! (`Male Patients, Female Patients, All Patients`). Special codes (`NO2011`, `CLOSED`) and
//! Welsh LSOAs are kept as published.

use super::columns::{Col, Header};
use super::reader::{Record, Records, raw_text};
use super::values::{SexKey, parse_count};
use super::{FileContext, FileStats, FormatError, LsoaRow, Quarantined};

/// Streams the LSOA rows of one CSV (long or tall) to `on_row`.
pub(crate) fn parse_lsoa(
    records: &mut Records<'_>,
    ctx: &FileContext,
    on_row: &mut dyn FnMut(LsoaRow),
) -> Result<FileStats, FormatError> {
    let file = records.label.clone();
    let header = Header::resolve(&records.header, &ctx.aliases)?;
    let code = header.require(Col::Code, ctx.family, &file)?;
    let lsoa = header.require(Col::Lsoa, ctx.family, &file)?;
    let tall = header.get(Col::MalePatients).is_some();
    let counts: Vec<(SexKey, usize)> = if tall {
        vec![
            (
                SexKey::Male,
                header.require(Col::MalePatients, ctx.family, &file)?,
            ),
            (
                SexKey::Female,
                header.require(Col::FemalePatients, ctx.family, &file)?,
            ),
            (
                SexKey::All,
                header.require(Col::AllPatients, ctx.family, &file)?,
            ),
        ]
    } else {
        vec![(SexKey::All, header.require(Col::Count, ctx.family, &file)?)]
    };
    let sex_col = if tall {
        None
    } else {
        Some(header.require(Col::Sex, ctx.family, &file)?)
    };
    let width = records.header.len();
    let mut dates = super::DateCheck::new(ctx.month);
    let mut stats = FileStats::for_header(records, ctx);
    let mut record = Record::new();
    while let Some(line) = records.next(&mut record)? {
        stats.rows_read += 1;
        let field = |i: usize| super::reader::text(record.get(i).unwrap_or_default()).into_owned();
        let bad = |reason: String| Quarantined {
            file: file.clone(),
            line,
            raw: raw_text(&record),
            reason,
        };
        if let Some(reason) = super::reader::width_problem(&record, width) {
            stats.quarantine(bad(reason));
            continue;
        }
        if let Some(d) = header.get(Col::ExtractDate) {
            dates.check(&field(d), &file, line)?;
        }
        let mut parsed = Vec::new();
        for (sex, col) in &counts {
            let sex = match sex_col {
                Some(s) => SexKey::parse(&field(s)).ok_or_else(|| FormatError::UnknownValue {
                    file: file.clone(),
                    line,
                    column: "SEX".into(),
                    value: field(s),
                })?,
                None => *sex,
            };
            match parse_count(&field(*col)) {
                Some(count) => parsed.push((sex, count)),
                None => {
                    parsed.clear();
                    stats.quarantine(bad(format!(
                        "column {}: '{}' is not a non-negative whole number",
                        records.header[*col],
                        field(*col)
                    )));
                    break;
                }
            }
        }
        if parsed.is_empty() {
            continue;
        }
        let name = header
            .get(Col::PracticeName)
            .map(field)
            .filter(|n| !n.is_empty());
        for (sex, count) in parsed {
            let row = LsoaRow {
                line,
                practice: field(code),
                practice_name: name.clone(),
                lsoa: field(lsoa),
                sex,
                count,
            };
            if sex == SexKey::All {
                stats.rows_subtotal += 1
            } else if count == 0 {
                stats.rows_zero += 1
            } else {
                stats.rows_leaf += 1
            }
            on_row(row);
        }
        if tall {
            // One tall line holds three counts: account for it once.
            stats.rows_read += 2;
        }
    }
    stats.encoding = records.encoding_note();
    Ok(stats)
}
