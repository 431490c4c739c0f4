//! The list sizes the series rules read from `practice_snapshot`: read a month at a time, in
//! month order, straight from each month's data files. The rules pair each month with the
//! one before, so two months' sizes are held at a time whatever the history's length (a
//! query of every practice-month held them all: 234,000 rows and a table of sizes per month
//! at 36 months), and no query is planned for them.

use std::collections::{BTreeMap, HashMap};

use deltalake::arrow::array::{Array, AsArray, Int64Array, StringViewArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Int64Type};
use deltalake::arrow::record_batch::RecordBatch;
use foldhash::fast::FixedState;
use futures::{StreamExt, TryStreamExt};

use crate::catalog::PRACTICE_SNAPSHOT;
use crate::check::series::Jump;
use crate::delta::{DeltaError, MonthFiles};
use crate::lake::Lake;
use crate::month::Month;

/// The columns read: the month is the file's partition.
const COLUMNS: [&str; 2] = ["practice_code", "registered_population"];

/// Months whose files are read while an earlier one is summed.
const MONTHS_AHEAD: usize = 4;

/// A list moves by more than this many patients…
const MOVED_BY: i64 = 500;
/// …and by more than this fraction of the month before (as `moved * FRACTION > before`).
const FRACTION: i64 = 5;

/// What the series rules read: each month's national total (0 for a month whose sizes are
/// all unknown, as SQL's sum of them), and the practices whose list moved by more than 500
/// patients and a fifth of the month before, by month and practice code.
#[derive(Debug, Default)]
pub(super) struct Sizes {
    pub(super) totals: BTreeMap<Month, i64>,
    pub(super) jumps: Vec<Jump>,
}

/// The sizes of `practice_snapshot` at `version` (none when there is no version to read).
pub(super) async fn read(lake: &Lake, version: Option<u64>) -> Result<Sizes, DeltaError> {
    let mut folding = Folding::default();
    let files = &MonthFiles::open(lake, &PRACTICE_SNAPSHOT, version).await?;
    let mut read = futures::stream::iter(files.months())
        .map(|date| async move { Ok::<_, DeltaError>((date, files.read(date, &COLUMNS).await?)) })
        .buffered(MONTHS_AHEAD);
    while let Some((date, batches)) = read.try_next().await? {
        folding.add(Month::of(date), &batches);
    }
    Ok(folding.finish())
}

/// A practice's size in one month, by practice code.
type MonthSizes = HashMap<Box<str>, i64, FixedState>;

/// The sizes summed so far: months must be added in order.
#[derive(Default)]
struct Folding {
    totals: BTreeMap<Month, i64>,
    jumps: Vec<Jump>,
    /// The month being added to, and its sizes so far.
    current: Option<(Month, MonthSizes)>,
    /// The month before it that was read (not necessarily the calendar month before).
    before: Option<(Month, MonthSizes)>,
}

impl Folding {
    /// Adds rows of `month`, which is no earlier than any month added before.
    fn add(&mut self, month: Month, batches: &[RecordBatch]) {
        if self.current.as_ref().is_none_or(|(m, _)| *m != month) {
            self.close();
            self.current = Some((month, MonthSizes::default()));
        }
        let Some((_, sizes)) = self.current.as_mut() else {
            return;
        };
        for batch in batches.iter().filter(|b| b.num_rows() > 0) {
            let (codes, values) = (codes_of(batch), sizes_of(batch));
            let total = self.totals.entry(month).or_insert(0);
            for i in 0..batch.num_rows() {
                let size = values.is_valid(i).then(|| values.value(i));
                *total += size.unwrap_or(0);
                if let (Some(size), true) = (size, codes.is_valid(i)) {
                    sizes.insert(codes.value(i).into(), size);
                }
            }
        }
    }

    /// The current month is whole: its practices' jumps from the calendar month before.
    fn close(&mut self) {
        let Some((month, sizes)) = self.current.take() else {
            return;
        };
        if let Some((_, before)) = self.before.as_ref().filter(|(m, _)| *m == month.prev()) {
            for (code, &after) in &sizes {
                let Some(&before) = before.get(code) else {
                    continue;
                };
                let moved = (after - before).abs();
                if moved > MOVED_BY && moved * FRACTION > before {
                    self.jumps.push(Jump {
                        month,
                        practice: code.to_string(),
                        before,
                        after,
                    });
                }
            }
        }
        self.before = Some((month, sizes));
    }

    fn finish(mut self) -> Sizes {
        self.close();
        self.jumps
            .sort_by(|a, b| (a.month, &a.practice).cmp(&(b.month, &b.practice)));
        Sizes {
            totals: self.totals,
            jumps: self.jumps,
        }
    }
}

/// The batch's practice codes (all unknown when the file has none).
fn codes_of(batch: &RecordBatch) -> StringViewArray {
    batch
        .column_by_name(COLUMNS[0])
        .and_then(|c| cast(c, &DataType::Utf8View).ok())
        .map(|c| c.as_string_view().clone())
        .unwrap_or_else(|| StringViewArray::new_null(batch.num_rows()))
}

/// The batch's sizes (all unknown when the file has none).
fn sizes_of(batch: &RecordBatch) -> Int64Array {
    batch
        .column_by_name(COLUMNS[1])
        .and_then(|c| cast(c, &DataType::Int64).ok())
        .map(|c| c.as_primitive::<Int64Type>().clone())
        .unwrap_or_else(|| Int64Array::new_null(batch.num_rows()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::NaiveDate;
    use deltalake::arrow::array::StringArray;
    use deltalake::arrow::datatypes::{Field, Schema};

    use super::*;

    /// A practice's size in a month: practice code, size.
    type Row<'a> = (Option<&'a str>, Option<i64>);

    fn batch(rows: &[Row]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("practice_code", DataType::Utf8, true),
            Field::new("registered_population", DataType::Int64, true),
        ]);
        let columns: Vec<deltalake::arrow::array::ArrayRef> = vec![
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
        ];
        RecordBatch::try_new(Arc::new(schema), columns).unwrap()
    }

    fn month(y: i32, m: u32) -> Month {
        Month::of(NaiveDate::from_ymd_opt(y, m, 1).unwrap())
    }

    #[test]
    fn each_practice_is_paired_with_its_calendar_month_before_as_the_rule_says() {
        let mut folding = Folding::default();
        folding.add(
            month(2024, 1),
            &[batch(&[
                (Some("A"), Some(1000)),
                (Some("B"), Some(1000)),
                (Some("C"), Some(10000)),
                (Some("D"), Some(1000)),
                (Some("E"), None), // unknown size: pairs with nothing
            ])],
        );
        // February in two files, as a month's partition may hold.
        folding.add(
            month(2024, 2),
            &[batch(&[
                (Some("A"), Some(1501)),  // +501 on 1000: a jump
                (Some("B"), Some(1500)),  // +500: not more than 500
                (Some("C"), Some(11999)), // +1999 on 10000: not a fifth
            ])],
        );
        folding.add(
            month(2024, 2),
            &[batch(&[
                (Some("D"), Some(400)), // -600 on 1000: a jump
                (None, Some(7)),        // no code: counted, never paired
            ])],
        );
        folding.add(
            month(2024, 3),
            &[batch(&[(Some("E"), Some(5000)), (Some("A"), None)])],
        );
        // April missing: May has no month before to pair with.
        folding.add(month(2024, 5), &[batch(&[(Some("A"), Some(9000))])]);
        let sizes = folding.finish();
        let totals: Vec<(Month, i64)> = sizes.totals.into_iter().collect();
        assert_eq!(
            totals,
            [
                (month(2024, 1), 13000),
                (month(2024, 2), 15407),
                (month(2024, 3), 5000),
                (month(2024, 5), 9000)
            ]
        );
        let jumps: Vec<(Month, &str, i64, i64)> = sizes
            .jumps
            .iter()
            .map(|j| (j.month, j.practice.as_str(), j.before, j.after))
            .collect();
        assert_eq!(
            jumps,
            [
                (month(2024, 2), "A", 1000, 1501),
                (month(2024, 2), "D", 1000, 400)
            ]
        );
    }

    #[test]
    fn a_month_whose_sizes_are_all_unknown_totals_nothing_but_is_there_and_an_empty_file_is_not() {
        let mut folding = Folding::default();
        folding.add(month(2024, 1), &[batch(&[(Some("A"), None)])]);
        folding.add(month(2024, 2), &[batch(&[])]);
        let sizes = folding.finish();
        assert_eq!(
            sizes.totals.into_iter().collect::<Vec<_>>(),
            [(month(2024, 1), 0)]
        );
        assert!(sizes.jumps.is_empty());
    }

    #[test]
    fn a_file_without_the_columns_counts_its_rows_as_unknown() {
        let schema = Schema::new(vec![Field::new("other", DataType::Int64, true)]);
        let other = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int64Array::from(vec![Some(3), Some(4)]))],
        )
        .unwrap();
        let mut folding = Folding::default();
        folding.add(month(2024, 1), &[other]);
        let sizes = folding.finish();
        assert_eq!(
            sizes.totals.into_iter().collect::<Vec<_>>(),
            [(month(2024, 1), 0)]
        );
    }
}
