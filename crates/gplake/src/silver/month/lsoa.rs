//! A quarter's LSOA rows, taken one at a time as the file is parsed: summed for the checks,
//! written, and a repeated key recorded with both its lines. Nothing holds a file's rows: a
//! published LSOA file has a million of them, which gathered before writing (with four
//! `String`s a row for the repeat check) would have taken hundreds of MiB.

use crate::batch::Val;
use crate::check::evidence::{Aggregates, FastMap};
use crate::delta::DeltaError;
use crate::formats::{LsoaRow, SexKey};
use crate::silver::sink::Sink;

/// Where the rows being taken come from.
pub(super) struct LsoaFile<'a> {
    pub(super) date: chrono::NaiveDate,
    pub(super) label: &'a str,
    pub(super) sha256: &'a str,
    pub(super) vintage: u16,
}

/// The line each (practice, LSOA, sex, vintage) key was first read on, under small ids for
/// the codes: about 20 bytes a key where four `String`s took 150.
#[derive(Default)]
pub(super) struct LsoaKeys {
    practices: FastMap<String, u32>,
    lsoas: FastMap<String, u32>,
    first: FastMap<(u32, u32, SexKey, u16), u64>,
}

impl LsoaKeys {
    /// Records the row's key and returns `None` the first time; afterwards, the line the
    /// key was first read on.
    fn first_line(&mut self, row: &LsoaRow, vintage: u16) -> Option<u64> {
        let practice = id(&mut self.practices, &row.practice);
        let lsoa = id(&mut self.lsoas, &row.lsoa);
        match self.first.entry((practice, lsoa, row.sex, vintage)) {
            std::collections::hash_map::Entry::Occupied(first) => Some(*first.get()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(row.line);
                None
            }
        }
    }
}

fn id(ids: &mut FastMap<String, u32>, code: &str) -> u32 {
    if let Some(&id) = ids.get(code) {
        return id;
    }
    let id = u32::try_from(ids.len()).expect("fewer than 4 billion codes");
    ids.insert(code.to_string(), id);
    id
}

/// Takes one row: persons rows are subtotals of the male and female ones and are left out;
/// a repeated key is recorded (both lines) and not summed again; a zero count is summed
/// (the check compares it) but not written.
pub(super) fn take(
    row: LsoaRow,
    file: &LsoaFile<'_>,
    keys: &mut LsoaKeys,
    agg: &mut Aggregates,
    sink: &mut Sink,
) -> Result<(), DeltaError> {
    if row.sex == SexKey::All {
        return Ok(());
    }
    if let Some(first) = keys.first_line(&row, file.vintage) {
        agg.lsoa_dups
            .push((row.practice, row.lsoa, first, row.line));
        return Ok(());
    }
    *agg.lsoa_leaf
        .entry((row.practice.clone(), row.sex, file.vintage))
        .or_default() += row.count;
    if row.count == 0 {
        return Ok(());
    }
    sink.push(&[
        Val::Date(file.date),
        Val::Text(Some(&row.practice)),
        Val::Text(row.practice_name.as_deref()),
        Val::Text(Some(&row.lsoa)),
        Val::Int(i64::from(file.vintage)),
        Val::Text(Some(row.sex.label())),
        Val::Int(row.count as i64),
        Val::Text(Some(file.label)),
        Val::Text(Some(file.sha256)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(practice: &str, lsoa: &str, sex: SexKey, line: u64) -> LsoaRow {
        LsoaRow {
            line,
            practice: practice.into(),
            practice_name: None,
            lsoa: lsoa.into(),
            sex,
            count: 1,
        }
    }

    #[test]
    fn a_key_is_first_read_once_per_practice_lsoa_sex_and_vintage() {
        let mut keys = LsoaKeys::default();
        let m = SexKey::Male;
        assert_eq!(keys.first_line(&row("A1", "E01", m, 2), 2011), None);
        assert_eq!(keys.first_line(&row("A1", "E02", m, 3), 2011), None);
        assert_eq!(keys.first_line(&row("B2", "E01", m, 4), 2011), None);
        assert_eq!(
            keys.first_line(&row("A1", "E01", SexKey::Female, 5), 2011),
            None
        );
        assert_eq!(keys.first_line(&row("A1", "E01", m, 6), 2021), None);
        assert_eq!(keys.first_line(&row("A1", "E01", m, 7), 2011), Some(2));
        assert_eq!(
            keys.first_line(&row("A1", "E01", m, 8), 2011),
            Some(2),
            "the first stays"
        );
    }
}
