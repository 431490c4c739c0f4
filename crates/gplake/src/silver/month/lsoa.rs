//! A quarter's LSOA rows, taken one at a time as the file is parsed: summed for the checks,
//! written, and a repeated key recorded with both its lines. Nothing holds a file's rows: a
//! published LSOA file has a million of them, which gathered before writing (with four
//! `String`s a row for the repeat check) would have taken hundreds of MiB.

use crate::batch::Val;
use crate::check::evidence::{Aggregates, Codes, FastMap};
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

/// The line each (practice, LSOA, sex, vintage) key was first read on. A published file
/// lists a practice's rows together, so the keys of the practice being read are looked up
/// in a small map, and set aside as a plain list once its run of rows ends: 16 bytes a key,
/// where one map over the month's two million keys took 150 MiB (more while it grew). A
/// practice whose rows come back later (a file in another order) has its keys in a map
/// again, for good: checked as exactly, at the map's cost, and never listed twice.
#[derive(Default)]
pub(super) struct LsoaKeys {
    practices: Codes,
    lsoas: Codes,
    run: Option<Run>,
    closed: FastMap<RunKey, Closed>,
}

/// Whose rows a run is: practice id, sex, vintage.
type RunKey = (u32, SexKey, u16);

/// The rows of one practice, sex and vintage read one after another: each LSOA's first line.
struct Run {
    key: RunKey,
    first: FastMap<u32, u64>,
    /// True when the practice's rows came back after another's: kept as a map.
    came_back: bool,
}

/// The keys of a run that ended: (LSOA id, first line); or, for a practice whose rows came
/// back, the map itself.
enum Closed {
    Listed(Box<[(u32, u64)]>),
    Map(FastMap<u32, u64>),
}

impl LsoaKeys {
    /// Records the row's key and returns `None` the first time; afterwards, the line the
    /// key was first read on.
    fn first_line(&mut self, row: &LsoaRow, vintage: u16) -> Option<u64> {
        let practice = self.practices.id(&row.practice);
        let lsoa = self.lsoas.id(&row.lsoa);
        let run = self.run_of((practice, row.sex, vintage));
        match run.first.entry(lsoa) {
            std::collections::hash_map::Entry::Occupied(first) => Some(*first.get()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(row.line);
                None
            }
        }
    }

    /// The run of `key`: the current one, or a new one holding what earlier runs of the
    /// same key read (the current one set aside).
    fn run_of(&mut self, key: RunKey) -> &mut Run {
        if self.run.as_ref().is_none_or(|r| r.key != key) {
            self.close_run();
            let (first, came_back) = match self.closed.remove(&key) {
                None => (FastMap::default(), false),
                Some(Closed::Listed(keys)) => (keys.iter().copied().collect(), true),
                Some(Closed::Map(first)) => (first, true),
            };
            self.run = Some(Run {
                key,
                first,
                came_back,
            });
        }
        self.run.as_mut().expect("a run")
    }

    /// Sets the current run's keys aside.
    fn close_run(&mut self) {
        let Some(run) = self.run.take() else {
            return;
        };
        let closed = if run.came_back {
            Closed::Map(run.first)
        } else {
            Closed::Listed(run.first.into_iter().collect())
        };
        self.closed.insert(run.key, closed);
    }
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
    if row.count > 0 {
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
        ])?;
    }
    // Summed after writing, so the row's practice code moves into the key, not copied.
    *agg.lsoa_leaf
        .entry((row.practice, row.sex, file.vintage))
        .or_default() += row.count;
    Ok(())
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

    #[test]
    fn a_practice_whose_rows_come_back_later_is_checked_against_its_earlier_ones() {
        let mut keys = LsoaKeys::default();
        let (m, f) = (SexKey::Male, SexKey::Female);
        assert_eq!(keys.first_line(&row("A1", "E01", m, 2), 2011), None);
        assert_eq!(keys.first_line(&row("A1", "E02", m, 3), 2011), None);
        assert_eq!(keys.first_line(&row("B2", "E01", m, 4), 2011), None);
        assert_eq!(keys.first_line(&row("A1", "E03", m, 5), 2011), None);
        // A1's first run was set aside when B2's began: its keys are still found.
        assert_eq!(keys.first_line(&row("A1", "E02", m, 6), 2011), Some(3));
        assert_eq!(keys.first_line(&row("C3", "E01", m, 7), 2011), None);
        // A1's two runs, each set aside: both found, and other sexes and vintages apart.
        assert_eq!(keys.first_line(&row("A1", "E03", m, 8), 2011), Some(5));
        assert_eq!(keys.first_line(&row("A1", "E01", m, 9), 2011), Some(2));
        assert_eq!(keys.first_line(&row("A1", "E01", f, 10), 2011), None);
        assert_eq!(keys.first_line(&row("A1", "E01", m, 11), 2021), None);
        assert_eq!(keys.first_line(&row("B2", "E01", m, 12), 2011), Some(4));
    }

    #[test]
    fn a_file_in_lsoa_order_is_checked_as_exactly() {
        // Every row a run of its own: each practice comes back for every LSOA.
        let mut keys = LsoaKeys::default();
        let m = SexKey::Male;
        let mut line = 1;
        for lsoa in ["E01", "E02", "E03"] {
            for practice in ["A1", "B2", "C3"] {
                line += 1;
                assert_eq!(keys.first_line(&row(practice, lsoa, m, line), 2011), None);
            }
        }
        assert_eq!(keys.first_line(&row("B2", "E01", m, 11), 2011), Some(3));
        assert_eq!(keys.first_line(&row("C3", "E03", m, 12), 2011), Some(10));
        assert_eq!(keys.first_line(&row("A1", "E02", m, 13), 2011), Some(5));
        assert_eq!(keys.first_line(&row("A1", "E04", m, 14), 2011), None);
    }
}
