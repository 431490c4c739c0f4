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
use crate::catalog::{PRACTICE_LIST_SIZE, PRACTICE_SNAPSHOT, QUALITY};
use crate::check::series::SERIES_RULES;
use crate::delta::{self, DeltaError, MonthFiles};
use crate::lake::Lake;
use crate::memory::Release;
use crate::month::Month;
use crate::session::{self, Session};

/// What the list sizes' current version may keep.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    /// The version of `practice_list_size_monthly` to keep rows of (the current one).
    pub(crate) version: u64,
    /// The months whose `practice_snapshot` changed since that version was derived.
    pub(crate) snapshot_changed: BTreeSet<NaiveDate>,
}

/// The versions of the tables the list sizes are made from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceVersions {
    /// `practice_snapshot`'s (the version the session pins; none to read when `None`).
    pub(crate) snapshot: Option<u64>,
    /// `quality`'s, with the latest series checks recorded.
    pub(crate) quality: u64,
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
/// version the session pins) and `quality` at `quality`, keeping what `kept` allows.
pub(crate) async fn rebuild(
    lake: &Lake,
    session: &Session,
    versions: SourceVersions,
    kept: Option<&Kept>,
    release: Release,
) -> Result<Rebuilt, DeltaError> {
    let snapshot = &MonthFiles::open(lake, &PRACTICE_SNAPSHOT, versions.snapshot).await?;
    let flags = &flags(lake, versions.quality).await?;
    if let Some(kept) = kept
        && let Some(rebuilt) = rebuild_months(lake, session, snapshot, flags, kept, release).await?
    {
        return Ok(rebuilt);
    }
    let version = rebuild_whole(lake, snapshot, flags, release).await?;
    Ok(Rebuilt {
        version,
        months: None,
    })
}

/// Derives every month again, a span at a time, into files that replace all of the
/// table's in one commit; returns the version written.
async fn rebuild_whole(
    lake: &Lake,
    snapshot: &MonthFiles,
    flags: &MonthFlags,
    release: Release,
) -> Result<u64, DeltaError> {
    let def = PRACTICE_LIST_SIZE;
    let clock = std::time::Instant::now();
    let months = snapshot.months().collect();
    let select = |span| async move { Ok(list_sizes(snapshot, flags, span)) };
    let version = super::write_whole(lake, def, &months, select, release).await?;
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
    flags: &MonthFlags,
    kept: &Kept,
    release: Release,
) -> Result<Option<Rebuilt>, DeltaError> {
    let def = PRACTICE_LIST_SIZE;
    let clock = std::time::Instant::now();
    let Some(mut table) = delta::open_version(lake, &def, Some(kept.version)).await? else {
        return Ok(None);
    };
    session.pin(lake, &def, Some(kept.version)).await?;
    let mut months = with_following(&kept.snapshot_changed, &snapshot.months().collect());
    months.extend(reflagged(session, flags).await?);
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        "list sizes: reflagged"
    );
    let select = |span| async move { Ok(list_sizes(snapshot, flags, span)) };
    let written = super::write_months(&mut table, def, months, select, release).await?;
    let Some((version, months)) = written else {
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
/// whose snapshot is unchanged, and the others are derived again whatever this says. Only
/// the kept rows with flags are read, and the unflagged rows of the practices `flags`
/// flags, not the whole history's rows.
async fn reflagged(
    session: &Session,
    flags: &MonthFlags,
) -> Result<BTreeSet<NaiveDate>, DeltaError> {
    let mut months = BTreeSet::new();
    let mut seen: BTreeSet<(NaiveDate, &str)> = BTreeSet::new();
    let flagged = "SELECT CAST(snapshot_date AS VARCHAR), practice_code, quality_flags FROM practice_list_size_monthly WHERE quality_flags IS NOT NULL";
    for batch in session::collect(session, Some(&PRACTICE_LIST_SIZE), flagged).await? {
        let (dates, codes, held) = (text(&batch, 0), text(&batch, 1), text(&batch, 2));
        for i in (0..batch.num_rows()).filter(|&i| codes.is_valid(i) && held.is_valid(i)) {
            let Some(date) = date_of(&dates, i) else {
                continue;
            };
            match flags
                .get(&date)
                .and_then(|f| f.get_key_value(codes.value(i)))
            {
                Some((code, now)) if now.as_ref() == held.value(i) => {
                    seen.insert((date, code.as_ref()));
                }
                _ => {
                    months.insert(date);
                }
            }
        }
    }
    let unseen: BTreeSet<(NaiveDate, &str)> = flags
        .iter()
        .flat_map(|(date, f)| f.keys().map(|code| (*date, code.as_ref())))
        .filter(|key| !seen.contains(key))
        .collect();
    months.extend(unflagged_rows(session, &unseen).await?);
    Ok(months)
}

/// The months of `wanted` (month and practice) whose kept rows hold no flags.
async fn unflagged_rows(
    session: &Session,
    wanted: &BTreeSet<(NaiveDate, &str)>,
) -> Result<BTreeSet<NaiveDate>, DeltaError> {
    let mut months = BTreeSet::new();
    if wanted.is_empty() {
        return Ok(months);
    }
    let codes: BTreeSet<String> = wanted
        .iter()
        .map(|(_, code)| format!("'{}'", code.replace('\'', "''")))
        .collect();
    let codes: Vec<String> = codes.into_iter().collect();
    let sql = format!(
        "SELECT CAST(snapshot_date AS VARCHAR), practice_code FROM practice_list_size_monthly WHERE quality_flags IS NULL AND practice_code IN ({})",
        codes.join(", ")
    );
    for batch in session::collect(session, Some(&PRACTICE_LIST_SIZE), &sql).await? {
        let (dates, found) = (text(&batch, 0), text(&batch, 1));
        for i in (0..batch.num_rows()).filter(|&i| found.is_valid(i)) {
            let Some(date) = date_of(&dates, i) else {
                continue;
            };
            if wanted.contains(&(date, found.value(i))) {
                months.insert(date);
            }
        }
    }
    Ok(months)
}

/// Row `i` of `dates` (dates as text) as a date.
fn date_of(dates: &StringArray, i: usize) -> Option<NaiveDate> {
    let text = dates.is_valid(i).then(|| dates.value(i))?;
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// Column `i` of `batch` as text.
fn text(batch: &RecordBatch, i: usize) -> StringArray {
    delta::text_column(batch, i)
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

/// The list sizes of the months of `span` from `snapshot` (the version the session pins)
/// and `flags`, a batch a month in month order.
fn list_sizes<'a>(
    snapshot: &'a MonthFiles,
    flags: &'a MonthFlags,
    span: BTreeSet<NaiveDate>,
) -> impl Stream<Item = Result<RecordBatch, DeltaError>> + use<'a> {
    let rows = Rows {
        flags,
        snapshot,
        months: span.into_iter(),
        before: None,
    };
    futures::stream::try_unfold(rows, |mut rows| async move {
        Ok(rows.next().await?.map(|batch| (batch, rows)))
    })
}

/// The rows of `month`, as [`list_sizes_of`] makes them from its files, and its sizes.
async fn month_rows(
    snapshot: &MonthFiles,
    month: NaiveDate,
    before: &Sizes,
    flags: Option<&Flags>,
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
/// held is the month before's sizes.
struct Rows<'a> {
    snapshot: &'a MonthFiles,
    months: std::collections::btree_set::IntoIter<NaiveDate>,
    flags: &'a MonthFlags,
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
        let flags = self.flags.get(&month);
        let (batch, sizes) = month_rows(self.snapshot, month, &before, flags).await?;
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
    flags: Option<&Flags>,
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
        .map(|i| flags?.get(codes.value(i)).map(|f| f.as_ref()))
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

/// The columns of `quality` the flags are worked out from.
const QUALITY_READ: [&str; 5] = ["snapshot_date", "subject", "rule", "passed", "checked_at"];

/// Each month's flags, by practice.
type MonthFlags = HashMap<NaiveDate, Flags>;

/// One row of `quality`, as the flags read it.
#[derive(Debug, Clone, Copy)]
struct Checked<'b> {
    date: Option<NaiveDate>,
    subject: Option<&'b str>,
    rule: &'b str,
    passed: bool,
    at: i64,
}

/// Every month's flags, by practice: the rules each practice failed in its month's latest
/// build and in the latest series checks (recorded apart, at another time), comma-separated
/// in order. Read from `quality` at `version` straight from its files, a few thousand rows,
/// and worked out here: as SQL (the latest checks per month joined back, then an aggregate
/// of sorted rule names) it was planned once per span of list sizes, and even a plain scan
/// through the session planned one over the table's many small files, for rows read once.
async fn flags(lake: &Lake, version: u64) -> Result<MonthFlags, DeltaError> {
    let batches = delta::read_whole(lake, &QUALITY, version, &QUALITY_READ).await?;
    let columns: Vec<_> = batches
        .iter()
        .map(|b| {
            let passed = b
                .column_by_name("passed")
                .and_then(|p| p.as_boolean_opt().cloned());
            (
                delta::text_named(b, "snapshot_date"),
                delta::text_named(b, "subject"),
                delta::text_named(b, "rule"),
                passed,
                delta::int_named(b, "checked_at"),
            )
        })
        .collect();
    let rows = columns
        .iter()
        .flat_map(|(dates, subjects, rules, passed, at)| {
            (0..dates.len())
                .filter(|&i| rules.is_valid(i) && at.is_valid(i))
                .map(move |i| Checked {
                    date: date_of(dates, i),
                    subject: subjects.is_valid(i).then(|| subjects.value(i)),
                    rule: rules.value(i),
                    passed: passed.as_ref().is_none_or(|p| !p.is_valid(i) || p.value(i)),
                    at: at.value(i),
                })
        });
    Ok(failed_in_latest(rows))
}

/// The flags `rows` give: each practice-month's rules failed in the latest checks of its
/// month, and in the latest series checks.
fn failed_in_latest<'b>(rows: impl Iterator<Item = Checked<'b>> + Clone) -> MonthFlags {
    let series = |rule: &str| SERIES_RULES.iter().any(|r| r.as_str() == rule);
    let mut latest: HashMap<NaiveDate, i64> = HashMap::new();
    let mut last_series = None;
    for row in rows.clone() {
        if series(row.rule) {
            last_series = last_series.max(Some(row.at));
        } else if let Some(date) = row.date {
            let at = latest.entry(date).or_insert(row.at);
            *at = (*at).max(row.at);
        }
    }
    let mut failed: HashMap<NaiveDate, HashMap<&str, BTreeSet<&str>>> = HashMap::new();
    for row in rows.filter(|r| !r.passed) {
        let (Some(date), Some(subject)) = (row.date, row.subject) else {
            continue;
        };
        let current = match series(row.rule) {
            true => last_series == Some(row.at),
            false => latest.get(&date) == Some(&row.at),
        };
        if current {
            let rules = failed.entry(date).or_default().entry(subject).or_default();
            rules.insert(row.rule);
        }
    }
    let joined = |rules: BTreeSet<&str>| rules.into_iter().collect::<Vec<_>>().join(",");
    failed
        .into_iter()
        .map(|(date, by)| {
            let by = by.into_iter().map(|(s, r)| (s.into(), joined(r).into()));
            (date, by.collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn flags_are_the_rules_failed_in_the_latest_checks_of_the_month_and_of_the_series() {
        let (jan, feb) = (Some(day("2026-01-01")), Some(day("2026-02-01")));
        let row = |date, subject, rule, passed, at| Checked {
            date,
            subject,
            rule,
            passed,
            at,
        };
        let rows = vec![
            // January built twice: only the second build's failures count.
            row(jan, Some("P1"), "small_practice", false, 1),
            row(jan, Some("P1"), "unique_keys", false, 5),
            row(jan, Some("P1"), "bands_sum_to_all", false, 5),
            row(jan, Some("P2"), "unique_keys", true, 5),
            row(jan, None, "national_total", false, 5),
            // February built once, and its checks passed.
            row(feb, Some("P1"), "small_practice", true, 3),
            // The series checks, recorded twice: only the latest count, whenever the month
            // was built.
            row(feb, Some("P2"), "practice_month_over_month", false, 4),
            row(feb, Some("P1"), "practice_month_over_month", false, 9),
            row(jan, Some("P1"), "practice_month_over_month", false, 9),
        ];
        let flags = failed_in_latest(rows.into_iter());
        let of = |date: Option<NaiveDate>, code: &str| {
            flags
                .get(&date.unwrap())
                .and_then(|f| f.get(code))
                .map(|f| f.to_string())
        };
        assert_eq!(
            of(jan, "P1").as_deref(),
            Some("bands_sum_to_all,practice_month_over_month,unique_keys")
        );
        assert_eq!(of(jan, "P2"), None);
        assert_eq!(of(feb, "P1").as_deref(), Some("practice_month_over_month"));
        assert_eq!(of(feb, "P2"), None, "an earlier series check");
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
