//! `practice_list_size_monthly`: each practice's list size per month, its change from the
//! month before and its quality flags. After a first derivation only the months whose rows
//! can differ are derived again — months whose `practice_snapshot` changed, the months after
//! them (their change from last month) and months whose flags changed — and written by
//! replacing the files that hold them in one commit; the rest of the table stays as it is.
//! A sync that adds one month therefore adds one month's file.
//!
//! Each month's rows are made from that month's `practice_snapshot` files, read straight
//! from the store in month order, the month before's sizes and the month's flags: what is
//! held follows a month's practices (about 6,500), not a span's, and no query is planned
//! for the rows (a 12-month span joined to itself through DataFusion held 20-25 MiB more
//! than the derivation around it, and set a 36-month sync's peak).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use deltalake::arrow::array::{Array, ArrayRef, AsArray, Date32Array, Int64Array, StringArray};
use deltalake::arrow::compute::{cast, concat_batches, filter, is_not_null};
use deltalake::arrow::datatypes::Int64Type;
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::record_batch::RecordBatch;
use foldhash::fast::FixedState;
use futures::Stream;

use crate::batch::days;
use crate::catalog::{PRACTICE_LIST_SIZE, PRACTICE_SNAPSHOT};
use crate::check::series::SERIES_RULES;
use crate::delta::{self, DeltaError, MonthFiles};
use crate::lake::Lake;
use crate::month::Month;
use crate::session::{self, Session, date_list};

/// What the list sizes' current version may keep.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    /// The version of `practice_list_size_monthly` to keep rows of (the current one).
    pub(crate) version: u64,
    /// The months whose `practice_snapshot` changed since that version was derived.
    pub(crate) snapshot_changed: BTreeSet<NaiveDate>,
}

/// What rebuilding the list sizes did.
#[derive(Debug, Clone)]
pub(crate) struct Rebuilt {
    /// The version the table is at.
    pub(crate) version: u64,
    /// The months derived again, the others being kept; `None` when all were.
    pub(crate) months: Option<Vec<NaiveDate>>,
}

/// Brings `practice_list_size_monthly` in step with `practice_snapshot` at `snapshot` (the
/// version the session pins) and the session's `quality`, keeping what `kept` allows.
pub(crate) async fn rebuild(
    lake: &Lake,
    session: &Session,
    snapshot: Option<u64>,
    kept: Option<&Kept>,
) -> Result<Rebuilt, DeltaError> {
    let snapshot = &MonthFiles::open(lake, &PRACTICE_SNAPSHOT, snapshot).await?;
    if let Some(kept) = kept
        && let Some(rebuilt) = rebuild_months(lake, session, snapshot, kept).await?
    {
        return Ok(rebuilt);
    }
    let version = rebuild_whole(lake, session, snapshot).await?;
    Ok(Rebuilt {
        version,
        months: None,
    })
}

/// Derives every month again, a span at a time, into files that replace all of the
/// table's in one commit; returns the version written.
async fn rebuild_whole(
    lake: &Lake,
    session: &Session,
    snapshot: &MonthFiles,
) -> Result<u64, DeltaError> {
    let def = PRACTICE_LIST_SIZE;
    let clock = std::time::Instant::now();
    let months = snapshot.months().collect();
    let select = |span| list_sizes(snapshot, session, span);
    let version = super::write_whole(lake, def, &months, select).await?;
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        "list sizes: written whole"
    );
    Ok(version)
}

/// Derives again only the months whose rows can differ; `None` when the kept version's
/// files cannot say which months they hold, or would then be in too many pieces.
async fn rebuild_months(
    lake: &Lake,
    session: &Session,
    snapshot: &MonthFiles,
    kept: &Kept,
) -> Result<Option<Rebuilt>, DeltaError> {
    let def = PRACTICE_LIST_SIZE;
    let clock = std::time::Instant::now();
    let Some(mut table) = delta::open_version(lake, &def, Some(kept.version)).await? else {
        return Ok(None);
    };
    session.pin(lake, &def, Some(kept.version)).await?;
    let mut months = with_following(&kept.snapshot_changed, &snapshot.months().collect());
    months.extend(reflagged(session).await?);
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        "list sizes: reflagged"
    );
    let select = |span| list_sizes(snapshot, session, span);
    let Some((version, months)) = super::write_months(&mut table, def, months, select).await?
    else {
        return Ok(None);
    };
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        months = months.len(),
        "list sizes: written"
    );
    Ok(Some(Rebuilt {
        version,
        months: Some(months.into_iter().collect()),
    }))
}

/// The months, and each one's next month in `present` (whose change from last month it
/// feeds).
fn with_following(
    months: &BTreeSet<NaiveDate>,
    present: &BTreeSet<NaiveDate>,
) -> BTreeSet<NaiveDate> {
    let next = months
        .iter()
        .map(|d| Month::of(*d).next().first_day())
        .filter(|d| present.contains(d));
    months.iter().copied().chain(next).collect()
}

/// The months in which some practice's flags now differ from those the kept version holds
/// (a month checked again, or the series checks' new results). Read against the kept rows
/// themselves, not the snapshot's practice-months: the two are the same in every month
/// whose snapshot is unchanged, and the others are derived again whatever this says. One
/// file to read, not one per month of the history.
async fn reflagged(session: &Session) -> Result<BTreeSet<NaiveDate>, DeltaError> {
    dates(session, &reflag_sql()).await
}

fn reflag_sql() -> String {
    format!(
        "WITH {}
SELECT DISTINCT CAST(b.snapshot_date AS VARCHAR) FROM practice_list_size_monthly b
LEFT JOIN flags f ON f.snapshot_date = b.snapshot_date AND f.subject = b.practice_code
WHERE f.flags IS DISTINCT FROM b.quality_flags",
        flags_sql()
    )
}

/// The dates (as text) in the first column of what `sql` selects.
async fn dates(session: &Session, sql: &str) -> Result<BTreeSet<NaiveDate>, DeltaError> {
    let batches = session::collect(session, Some(&PRACTICE_LIST_SIZE), sql).await?;
    let mut months = BTreeSet::new();
    for b in &batches {
        let dates = delta::text_column(b, 0);
        months.extend(
            (0..b.num_rows())
                .filter(|&i| !dates.is_null(i))
                .filter_map(|i| NaiveDate::parse_from_str(dates.value(i), "%Y-%m-%d").ok()),
        );
    }
    Ok(months)
}

/// The columns of `practice_snapshot` a list size is made of, in the list sizes' order
/// after the month.
const FROM_SNAPSHOT: [&str; 10] = [
    "practice_code",
    "practice_name",
    "pcn_code",
    "sub_icb_code",
    "icb_code",
    "region_code",
    "registered_population",
    "male",
    "female",
    "total_from",
];

/// Where the practice code and the list size are in the list sizes' columns.
const CODE: usize = 1;
const SIZE: usize = 7;

/// The columns a month's sizes are read from, for the change of the month after.
const SIZES: [&str; 2] = ["practice_code", "registered_population"];

/// Each practice's known list size in a month, by practice code.
type Sizes = HashMap<Box<str>, i64, FixedState>;

/// Each practice's quality flags in a month, by practice code.
type Flags = HashMap<Box<str>, Box<str>, FixedState>;

/// The list sizes of the months of `span` from `snapshot` (the version the session pins), a
/// batch a month in month order.
async fn list_sizes<'a>(
    snapshot: &'a MonthFiles,
    session: &Session,
    span: BTreeSet<NaiveDate>,
) -> Result<impl Stream<Item = Result<RecordBatch, DeltaError>> + use<'a>, DeltaError> {
    let rows = Rows {
        flags: flags_of(session, &span).await?,
        snapshot,
        months: span.into_iter(),
        before: None,
    };
    Ok(futures::stream::try_unfold(rows, |mut rows| async move {
        Ok(rows.next().await?.map(|batch| (batch, rows)))
    }))
}

/// The rows of `month`, as [`list_sizes_of`] makes them from its files, and its sizes.
async fn month_rows(
    snapshot: &MonthFiles,
    month: NaiveDate,
    before: &Sizes,
    flags: &Flags,
) -> Result<(RecordBatch, Sizes), DeltaError> {
    let def = PRACTICE_LIST_SIZE;
    let mut sizes = Sizes::default();
    let mut made = Vec::new();
    for batch in snapshot.read(month, &FROM_SNAPSHOT).await? {
        let batch = list_sizes_of(&batch, month, before, flags)
            .map_err(|a| session::delta_err(Some(&def), a.into()))?;
        sizes.extend(sizes_of(&batch, CODE, SIZE));
        made.push(batch);
    }
    let batch = concat_batches(&def.arrow_schema(), &made)
        .map_err(|a| session::delta_err(Some(&def), a.into()))?;
    Ok((batch, sizes))
}

/// Each practice's known size in `month` (none when the table does not hold it).
async fn month_sizes(snapshot: &MonthFiles, month: NaiveDate) -> Result<Sizes, DeltaError> {
    let batches = snapshot.read(month, &SIZES).await?;
    Ok(batches.iter().flat_map(|b| sizes_of(b, 0, 1)).collect())
}

/// The list sizes of a span's months being made, a month at a time in month order: what is
/// held is the month before's sizes and the span's flags.
struct Rows<'a> {
    snapshot: &'a MonthFiles,
    months: std::collections::btree_set::IntoIter<NaiveDate>,
    flags: HashMap<NaiveDate, Flags>,
    /// The month made last, and its sizes.
    before: Option<(NaiveDate, Sizes)>,
}

impl Rows<'_> {
    /// The next month's rows; `None` when every month is made.
    async fn next(&mut self) -> Result<Option<RecordBatch>, DeltaError> {
        let Some(month) = self.months.next() else {
            return Ok(None);
        };
        let previous = Month::of(month).prev().first_day();
        let before = match self.before.take() {
            Some((date, sizes)) if date == previous => sizes,
            _ => month_sizes(self.snapshot, previous).await?,
        };
        let flags = self.flags.remove(&month).unwrap_or_default();
        let (batch, sizes) = month_rows(self.snapshot, month, &before, &flags).await?;
        self.before = Some((month, sizes));
        Ok(Some(batch))
    }
}

/// The list sizes of one batch of `month`'s `practice_snapshot` rows (read in
/// [`FROM_SNAPSHOT`]'s columns; a column a file lacks is null): each practice with a known
/// size, its change from `before` (the calendar month before's sizes; NULL when the practice
/// has none there) and its `flags` (NULL when it failed no rule).
fn list_sizes_of(
    batch: &RecordBatch,
    month: NaiveDate,
    before: &Sizes,
    flags: &Flags,
) -> Result<RecordBatch, ArrowError> {
    let def = PRACTICE_LIST_SIZE;
    let schema = def.arrow_schema();
    let rows = batch.num_rows();
    let column = |name: &str, i: usize| -> Result<ArrayRef, ArrowError> {
        let to = schema.field(i).data_type();
        match batch.column_by_name(name) {
            Some(c) => cast(c, to),
            None => Ok(deltalake::arrow::array::new_null_array(to, rows)),
        }
    };
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Date32Array::from(vec![days(month); rows]))];
    for (i, name) in FROM_SNAPSHOT.iter().enumerate() {
        columns.push(column(name, i + 1)?);
    }
    let known = is_not_null(&columns[SIZE])?;
    let mut columns = columns
        .iter()
        .map(|c| filter(c, &known))
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    let (codes, sizes) = (
        columns[CODE].as_string::<i32>(),
        columns[SIZE].as_primitive::<Int64Type>(),
    );
    let change: Int64Array = (0..codes.len())
        .map(|i| Some(sizes.value(i) - before.get(codes.value(i))?))
        .collect();
    let flagged: StringArray = (0..codes.len())
        .map(|i| flags.get(codes.value(i)).map(|f| f.as_ref()))
        .collect();
    columns.push(Arc::new(change));
    columns.push(Arc::new(flagged));
    RecordBatch::try_new(schema, columns)
}

/// Each row's size by its practice code, from columns `code` and `size` of `batch`, for the
/// rows with both.
fn sizes_of(batch: &RecordBatch, code: usize, size: usize) -> Vec<(Box<str>, i64)> {
    let (codes, sizes) = (
        delta::text_column(batch, code),
        delta::int_column(batch, size),
    );
    (0..batch.num_rows())
        .filter(|&i| codes.is_valid(i) && sizes.is_valid(i))
        .map(|i| (codes.value(i).into(), sizes.value(i)))
        .collect()
}

/// The flags of the months of `span`, by month and practice.
async fn flags_of(
    session: &Session,
    span: &BTreeSet<NaiveDate>,
) -> Result<HashMap<NaiveDate, Flags>, DeltaError> {
    let sql = format!(
        "WITH {} SELECT CAST(snapshot_date AS VARCHAR), subject, flags FROM flags WHERE snapshot_date IN ({})",
        flags_sql(),
        date_list(span)
    );
    let mut by_month: HashMap<NaiveDate, Flags> = HashMap::new();
    for batch in session::collect(session, Some(&PRACTICE_LIST_SIZE), &sql).await? {
        let (dates, subjects, flags) = (
            delta::text_column(&batch, 0),
            delta::text_column(&batch, 1),
            delta::text_column(&batch, 2),
        );
        for i in (0..batch.num_rows()).filter(|&i| flags.is_valid(i) && subjects.is_valid(i)) {
            let Ok(date) = NaiveDate::parse_from_str(dates.value(i), "%Y-%m-%d") else {
                continue;
            };
            by_month
                .entry(date)
                .or_default()
                .insert(subjects.value(i).into(), flags.value(i).into());
        }
    }
    Ok(by_month)
}

/// `flags`: per month and subject, the rules it failed in its month's latest build and in
/// the latest series checks (recorded apart, at another time), comma-separated in order.
fn flags_sql() -> String {
    let series: Vec<String> = SERIES_RULES
        .iter()
        .map(|r| format!("'{}'", r.as_str()))
        .collect();
    FLAGS.replace("{series}", &series.join(", "))
}

const FLAGS: &str = "latest AS (SELECT snapshot_date, MAX(checked_at) AS at FROM quality WHERE snapshot_date IS NOT NULL AND rule NOT IN ({series}) GROUP BY snapshot_date),
last_series AS (SELECT MAX(checked_at) AS at FROM quality WHERE rule IN ({series})),
current AS (
  SELECT q.snapshot_date, q.subject, q.rule FROM quality q JOIN latest l ON q.snapshot_date = l.snapshot_date AND q.checked_at = l.at
  WHERE NOT q.passed AND q.subject IS NOT NULL AND q.rule NOT IN ({series})
  UNION ALL
  SELECT q.snapshot_date, q.subject, q.rule FROM quality q JOIN last_series s ON q.checked_at = s.at
  WHERE NOT q.passed AND q.subject IS NOT NULL AND q.rule IN ({series})),
flags AS (
  SELECT snapshot_date, subject, array_to_string(array_sort(array_agg(DISTINCT rule)), ',') AS flags
  FROM current GROUP BY snapshot_date, subject)";

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_month_and_the_next_held_are_derived_again() {
        let present = BTreeSet::from([day("2025-12-01"), day("2026-01-01")]);
        let months = with_following(&BTreeSet::from([day("2025-12-01")]), &present);
        assert_eq!(
            months.into_iter().collect::<Vec<_>>(),
            [day("2025-12-01"), day("2026-01-01")]
        );
        let last = with_following(&BTreeSet::from([day("2026-01-01")]), &present);
        assert_eq!(last.into_iter().collect::<Vec<_>>(), [day("2026-01-01")]);
    }
}
