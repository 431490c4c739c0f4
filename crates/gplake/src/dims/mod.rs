//! The dimensions, derived from `practice_snapshot` whenever it moved on (the build pipeline
//! records the version each was derived from): `dim_practice` and `dim_organisation` as SCD
//! type 2 (a new version whenever anything published about the practice or organisation
//! changes), and the static `dim_age_band`.
//!
//! When only months after the latest one the current versions describe changed, those
//! versions are extended by the new months alone ([`prior`]): the SCD2 rule needs no more
//! of the past than each practice's and organisation's versions and whether the practice was
//! ever mapped, so adding a month costs the same on a long history as on a short one. The
//! result is the same, row for row, as deriving every month again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, StringArray, StringViewArray,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Date32Type};
use deltalake::arrow::record_batch::RecordBatch;
use foldhash::fast::FixedState;

use crate::batch::{Batcher, Val};
use crate::catalog::{DIM_AGE_BAND, DIM_ORGANISATION, DIM_PRACTICE, PRACTICE_SNAPSHOT};
use crate::delta::{self, DeltaError, MonthFiles};
use crate::formats::values::{band_label, year_label};
use crate::lake::Lake;
use crate::month::Month;
use crate::session::Session;

mod prior;

use prior::Prior;

/// Practice attribute columns, in `dim_practice` order after `practice_code`.
const ATTRS: [&str; 13] = [
    "practice_name",
    "practice_postcode",
    "pcn_code",
    "pcn_name",
    "sub_icb_code",
    "sub_icb_ons_code",
    "sub_icb_name",
    "icb_code",
    "icb_ons_code",
    "icb_name",
    "region_code",
    "region_ons_code",
    "region_name",
];

type Attrs = Vec<Option<String>>;

/// One practice-month as published. Rows are read in practice and month order, and a
/// practice's attributes rarely change, so consecutive months with the same ones share one
/// `Arc`: the whole history costs a few pointers per practice-month, not thirteen strings.
#[derive(Clone)]
struct Seen {
    month: Month,
    code: Arc<str>,
    attrs: Arc<Attrs>,
    from_map: bool,
}

/// The dims' current versions, which a derivation may extend by the months changed since
/// instead of deriving every month again.
#[derive(Debug, Clone)]
pub(crate) struct Extend {
    /// The latest month the current versions describe.
    pub(crate) through: NaiveDate,
    /// The months of `practice_snapshot` changed since they were derived: all later than
    /// `through`, or extending them would be wrong.
    pub(crate) months: BTreeSet<NaiveDate>,
    /// Each dimension's current version, which holds them.
    pub(crate) versions: BTreeMap<String, u64>,
    /// The practices without a month from a map up to `through`, as recorded with the
    /// versions (`None`: not recorded, found from the snapshot).
    pub(crate) never_mapped: Option<BTreeSet<String>>,
}

/// What bringing the dims up to date did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rebuilt {
    /// Dimension → the version it is at now (written, or kept).
    pub(crate) versions: BTreeMap<String, u64>,
    /// The latest month the dims describe (`None` when `practice_snapshot` is empty).
    pub(crate) through: Option<NaiveDate>,
    /// The practices without a month from a map up to `through`: what a later extension
    /// needs of the months before it, so that it need not scan them.
    pub(crate) never_mapped: Option<BTreeSet<String>>,
}

/// The dims as derived, to be written.
struct Dims {
    practices: RecordBatch,
    organisations: RecordBatch,
    through: Option<Month>,
}

/// Brings every dimension up to date with the session's `practice_snapshot`, extending the
/// current versions when `extend` allows, deriving every month otherwise; pins each in the
/// session as it now is.
pub(crate) async fn rebuild(
    lake: &Lake,
    session: &Session,
    snapshot: Option<u64>,
    extend: Option<&Extend>,
) -> Result<Rebuilt, DeltaError> {
    if let Some(e) = extend.filter(|e| e.months.is_empty()) {
        return keep(lake, session, e).await;
    }
    let clock = std::time::Instant::now();
    let snapshot = Snapshot::open(lake, snapshot).await?;
    let (months, prior) = match extend {
        Some(e) => (e.months.clone(), Some(prior::read(lake, session, e).await?)),
        None => (snapshot.months(), None),
    };
    tracing::debug!(ms = clock.elapsed().as_millis() as u64, "dims: read");
    let (dims, never_mapped) = span_by_span(&snapshot, &months, prior).await?;
    tracing::debug!(ms = clock.elapsed().as_millis() as u64, "dims: versions");
    let age_bands = extend.and_then(|e| e.versions.get(DIM_AGE_BAND.name).copied());
    let mut versions = BTreeMap::new();
    for (def, batch) in [
        (DIM_PRACTICE, Some(dims.practices)),
        (DIM_ORGANISATION, Some(dims.organisations)),
        // Static: kept whenever there is a version to keep.
        (DIM_AGE_BAND, age_bands.is_none().then(age_bands_batch)),
    ] {
        let version = match batch {
            Some(batch) => delta::overwrite(lake, &def, vec![batch]).await?,
            None => age_bands.unwrap_or_default(),
        };
        session.pin(lake, &def, Some(version)).await?;
        tracing::debug!(
            ms = clock.elapsed().as_millis() as u64,
            table = def.name,
            "dims: written"
        );
        versions.insert(def.name.to_string(), version);
    }
    Ok(Rebuilt {
        versions,
        through: dims.through.map(Month::first_day),
        never_mapped,
    })
}

/// Nothing the dims describe changed: they stay at their current versions.
async fn keep(lake: &Lake, session: &Session, extend: &Extend) -> Result<Rebuilt, DeltaError> {
    for def in [DIM_PRACTICE, DIM_ORGANISATION, DIM_AGE_BAND] {
        let version = extend.versions.get(def.name).copied();
        session.pin(lake, &def, version).await?;
    }
    Ok(Rebuilt {
        versions: extend.versions.clone(),
        through: Some(extend.through),
        never_mapped: extend.never_mapped.clone(),
    })
}

/// Months read at once. Every span's versions extend those of the spans before it, which
/// gives the same versions as all months read together (the SCD2 rule reads no more of the
/// past than the versions), so a whole derivation holds one span's practice-months and
/// the versions, not the whole history's. Three, not twelve: a 36-month sync's dims then
/// peak at 45-57 MiB of anonymous memory, not 67-73 (a span's practice-months are the
/// derivation's largest transient, and by twelve the dims were a peak of the whole sync),
/// for about 90 ms more (300 ms against 210; each span extends the versions again).
const SPAN: usize = 3;

/// The columns of `practice_snapshot` the dims read, after its month.
fn snapshot_columns() -> impl Iterator<Item = &'static str> {
    ["practice_code", "attributes_from"]
        .into_iter()
        .chain(ATTRS)
}

/// `practice_snapshot` as the derivation pins it, read a month's files at a time straight
/// from the store: no query is planned for it, and a month's rows are read as its files
/// hold them, text as text (a span's rows through DataFusion were held as views, sixteen
/// bytes a value beside the text).
struct Snapshot(MonthFiles);

impl Snapshot {
    /// The table at `version` (none to read when `None`).
    async fn open(lake: &Lake, version: Option<u64>) -> Result<Snapshot, DeltaError> {
        Ok(Snapshot(
            MonthFiles::open(lake, &PRACTICE_SNAPSHOT, version).await?,
        ))
    }

    /// The months it holds.
    fn months(&self) -> BTreeSet<NaiveDate> {
        self.0.months().collect()
    }

    /// The rows of `months`: the month's date, then [`snapshot_columns`].
    async fn read(&self, months: &BTreeSet<NaiveDate>) -> Result<Vec<RecordBatch>, DeltaError> {
        let columns: Vec<&str> = snapshot_columns().collect();
        let mut out = Vec::new();
        for date in months {
            let batches = self.0.read(*date, &columns).await?;
            out.extend(batches.iter().map(|batch| dated(*date, batch)));
        }
        Ok(out)
    }
}

/// A column of `date`, then `batch`'s [`snapshot_columns`] (a column the file lacks is all
/// null, as the table reads it).
fn dated(date: NaiveDate, batch: &RecordBatch) -> RecordBatch {
    use deltalake::arrow::array::new_null_array;
    use deltalake::arrow::datatypes::{Field, Schema};
    let rows = batch.num_rows();
    let day = crate::batch::days(date);
    let mut fields = vec![Field::new("snapshot_date", DataType::Date32, true)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Date32Array::from(vec![day; rows]))];
    for name in snapshot_columns() {
        let column = batch
            .column_by_name(name)
            .cloned()
            .unwrap_or_else(|| new_null_array(&DataType::Utf8, rows));
        fields.push(Field::new(name, column.data_type().clone(), true));
        columns.push(column);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .expect("columns of one length, typed as they are")
}

/// The dims of `prior` (none when `None`) extended by `months`, a span at a time, and the
/// practices never mapped up to their last month.
async fn span_by_span(
    snapshot: &Snapshot,
    months: &BTreeSet<NaiveDate>,
    mut prior: Option<Prior>,
) -> Result<(Dims, Option<BTreeSet<String>>), DeltaError> {
    let months: Vec<NaiveDate> = months.iter().copied().collect();
    let mut dims = None;
    for span in months.chunks(SPAN) {
        let span: BTreeSet<NaiveDate> = span.iter().copied().collect();
        let batches = snapshot.read(&span).await?;
        // On the runtime's worker, though grouping is CPU: a span's practice-months are the
        // derivation's largest transient (about 50 MB by twelve months), and on a blocking
        // thread, which ends once idle, the allocator kept pages of it that later steps did
        // not reuse (36-month syncs: gold's steps at 44-48 MiB anon against 35-42, and
        // `block_in_place` as the blocking thread). A whole derivation runs its chains one at
        // a time, and extending the dims by a month takes a few milliseconds, so little
        // waits on the worker meanwhile.
        let (span_dims, next) = step(&batches, prior);
        drop(batches);
        dims = Some(span_dims);
        prior = next;
    }
    let never_mapped = prior.map(Prior::into_never_mapped);
    Ok((dims.unwrap_or_else(|| dims_of(&[], None)), never_mapped))
}

/// One span: the dims of `prior` extended by the span's rows, and those dims as the prior
/// of the next span.
fn step(batches: &[RecordBatch], prior: Option<Prior>) -> (Dims, Option<Prior>) {
    let seen = by_practice(batches);
    let dims = dims_from(&seen, prior.as_ref());
    let never_mapped = prior::never_mapped_after(prior.as_ref(), &seen);
    drop(prior);
    let next = dims.through.map(|through| {
        let (practices, organisations) = (dims.practices.clone(), dims.organisations.clone());
        Prior::new(through, &[practices], &[organisations], never_mapped)
    });
    (dims, next)
}

/// The dims of the snapshot query's rows, extending `prior` when given.
fn dims_of(batches: &[RecordBatch], prior: Option<&Prior>) -> Dims {
    dims_from(&by_practice(batches), prior)
}

/// The dims of the practice-months `seen`, extending `prior` when given.
fn dims_from(seen: &[Seen], prior: Option<&Prior>) -> Dims {
    let through = seen
        .iter()
        .map(|s| s.month)
        .chain(prior.map(|p| p.through))
        .max();
    let (practices, organisations) = match prior {
        Some(p) => (
            practice_versions(&p.with_practice_months(seen), through),
            organisation_versions(seen, p.organisation_months(), through),
        ),
        None => (
            practice_versions(seen, through),
            organisation_versions(seen, Vec::new(), through),
        ),
    };
    Dims {
        practices,
        organisations,
        through,
    }
}

/// Every practice-month of the snapshot query's rows, in practice and month order.
/// The rows are read month by month, each month's as the session holds them, so the
/// attributes are read column by column as they lie in memory: read practice by practice,
/// each of a row's values was a jump across the whole history's batches. No SQL sort of
/// every column either.
fn by_practice(batches: &[RecordBatch]) -> Vec<Seen> {
    let columns: Vec<Columns> = batches.iter().map(Columns::of).collect();
    let mut ids: HashMap<&str, usize, FixedState> = HashMap::default();
    let mut practices: Vec<Practice> = Vec::new();
    let order = in_month_order(&columns);
    // Most practices appear in every month: room for that many, so no vector doubles.
    let months = order.chunk_by(|x, y| x.0 == y.0).count();
    for (month, b, row) in order {
        let cols = &columns[b];
        let Some(code) = cols.text[0].get(row) else {
            continue;
        };
        let id = *ids.entry(code).or_insert_with(|| {
            practices.push(Practice::new(code, months));
            practices.len() - 1
        });
        let p = &mut practices[id];
        let value = |i: usize| cols.text[2 + i].get(row);
        // Compared with the practice's previous row where it lies, not with the owned copy
        // of its attributes: a practice sits at about the same row every month, so these
        // reads follow the columns in order instead of jumping across the heap.
        let attrs = match p.last.take() {
            Some((l, pb, prow))
                if (0..ATTRS.len()).all(|i| columns[pb].text[2 + i].get(prow) == value(i)) =>
            {
                l
            }
            _ => Arc::new(
                (0..ATTRS.len())
                    .map(|i| value(i).map(str::to_string))
                    .collect(),
            ),
        };
        p.months.push(Seen {
            month,
            code: Arc::clone(&p.code),
            from_map: cols.text[1].get(row) == Some("map"),
            attrs: Arc::clone(&attrs),
        });
        p.last = Some((attrs, b, row));
    }
    practices.sort_unstable_by(|a, b| a.code.cmp(&b.code));
    let mut out = Vec::with_capacity(practices.iter().map(|p| p.months.len()).sum());
    for p in practices {
        out.extend(p.months);
    }
    out
}

/// Every row with a month, as (month, batch, row): by month, and within a month in the
/// order held (a stable sort).
fn in_month_order(columns: &[Columns]) -> Vec<(Month, usize, usize)> {
    let mut order: Vec<(Month, usize, usize)> = columns
        .iter()
        .enumerate()
        .flat_map(|(b, cols)| {
            let months = cols.months.iter().enumerate();
            months.filter_map(move |(r, month)| Some(((*month)?, b, r)))
        })
        .collect();
    order.sort_by_key(|(month, _, _)| *month);
    order
}

/// One practice's months as read so far, and the attributes of the last one with the batch
/// and row they were read from.
struct Practice {
    code: Arc<str>,
    last: Option<(Arc<Attrs>, usize, usize)>,
    months: Vec<Seen>,
}

impl Practice {
    fn new(code: &str, months: usize) -> Practice {
        Practice {
            code: Arc::from(code),
            last: None,
            months: Vec::with_capacity(months),
        }
    }
}

/// One batch of the snapshot query: the month of each row, the other columns as text.
struct Columns {
    /// `None` where the date is missing.
    months: Vec<Option<Month>>,
    /// The query's other columns, from `practice_code` on, as text.
    text: Vec<Text>,
}

impl Columns {
    fn of(batch: &RecordBatch) -> Columns {
        Columns {
            months: months_of(&dates_of(batch.column(0))),
            text: (1..batch.num_columns())
                .map(|i| Text::of(batch, i))
                .collect(),
        }
    }
}

/// A date column as dates (all missing when it cannot be read as dates).
fn dates_of(column: &ArrayRef) -> Date32Array {
    cast(column, &DataType::Date32)
        .map(|a| a.as_primitive::<Date32Type>().clone())
        .unwrap_or_else(|_| Date32Array::new_null(column.len()))
}

/// The month of each date. A batch holds one month's rows, so a date is converted once
/// per run of equal dates, not once per row.
fn months_of(dates: &Date32Array) -> Vec<Option<Month>> {
    let mut last: Option<(i32, Option<Month>)> = None;
    (0..dates.len())
        .map(|row| {
            if dates.is_null(row) {
                return None;
            }
            let day = dates.value(row);
            match last {
                Some((d, month)) if d == day => month,
                _ => {
                    let month = dates.value_as_date(row).map(Month::of);
                    last = Some((day, month));
                    month
                }
            }
        })
        .collect()
}

/// A text column as the session gives it (views or offsets), read without copying.
enum Text {
    View(StringViewArray),
    Plain(StringArray),
}

impl Text {
    fn of(batch: &RecordBatch, i: usize) -> Text {
        match batch.column(i).data_type() {
            DataType::Utf8View => Text::View(batch.column(i).as_string_view().clone()),
            _ => Text::Plain(delta::text_column(batch, i)),
        }
    }

    fn get(&self, row: usize) -> Option<&str> {
        match self {
            Text::View(a) => (!a.is_null(row)).then(|| a.value(row)),
            Text::Plain(a) => (!a.is_null(row)).then(|| a.value(row)),
        }
    }
}

/// A version: attributes, first month, and the month after the last one seen.
struct Version<T> {
    attrs: T,
    from: Month,
    last: Month,
}

/// Consecutive runs of equal attributes, in month order.
fn versions<'a, T: PartialEq + Clone + 'a>(
    rows: impl Iterator<Item = (Month, &'a T)>,
) -> Vec<Version<T>> {
    let mut out: Vec<Version<T>> = Vec::new();
    for (month, attrs) in rows {
        match out.last_mut() {
            Some(v) if &v.attrs == attrs => v.last = month,
            _ => out.push(Version {
                attrs: attrs.clone(),
                from: month,
                last: month,
            }),
        }
    }
    out
}

fn valid_to<T>(versions: &[Version<T>], i: usize, latest: Option<Month>) -> Option<NaiveDate> {
    match versions.get(i + 1) {
        Some(next) => Some(next.from.first_day()),
        None if Some(versions[i].last) == latest => None,
        None => Some(versions[i].last.next().first_day()),
    }
}

fn practice_versions(seen: &[Seen], latest: Option<Month>) -> RecordBatch {
    let mut b = Batcher::new(DIM_PRACTICE);
    // `seen` is in practice and month order: each practice's months are one run.
    for rows in seen.chunk_by(|x, y| Arc::ptr_eq(&x.code, &y.code) || x.code == y.code) {
        let code = &*rows[0].code;
        // Months without a map carry fewer attributes: use them only for practices never mapped.
        let mapped = rows.iter().any(|r| r.from_map);
        let vs = versions(
            rows.iter()
                .filter(|r| r.from_map || !mapped)
                // Equal months share one `Arc`, which compares by pointer first.
                .map(|r| (r.month, &r.attrs)),
        );
        for (i, v) in vs.iter().enumerate() {
            let to = valid_to(&vs, i, latest);
            let mut values: Vec<Val<'_>> = vec![Val::Text(Some(code))];
            values.extend(v.attrs.iter().map(|a| Val::Text(a.as_deref())));
            values.extend([
                Val::Date(v.from.first_day()),
                Val::OptDate(to),
                Val::Bool(to.is_none()),
            ]);
            b.push(&values);
        }
    }
    b.finish()
}

/// An organisation level: its name and the indices into [`ATTRS`] of its code, name, ONS
/// code and parent code.
type Level = (&'static str, usize, usize, Option<usize>, Option<usize>);
const LEVELS: [Level; 4] = [
    ("PCN", 2, 3, None, Some(4)),
    ("SUB_ICB", 4, 6, Some(5), Some(7)),
    ("ICB", 7, 9, Some(8), Some(10)),
    ("REGION", 10, 12, Some(11), None),
];

/// An organisation's name, ONS code and parent as published in one month.
type Named<'a> = [Option<&'a str>; 3];

/// The organisations' versions from the practice-months `seen` and, before them, the months
/// `prior` stands for.
fn organisation_versions<'a>(
    seen: &'a [Seen],
    prior: Vec<OrgMonth<'a>>,
    latest: Option<Month>,
) -> RecordBatch {
    let (months, mut orgs) = names_by_month(seen, prior);
    orgs.sort_unstable_by_key(|(key, _)| *key);
    let mut b = Batcher::new(DIM_ORGANISATION);
    for ((level, code), slots) in orgs {
        let named = slots.iter().zip(&months);
        let vs = versions(named.filter_map(|(a, m)| a.as_ref().map(|a| (*m, a))));
        for (i, v) in vs.iter().enumerate() {
            let to = valid_to(&vs, i, latest);
            b.push(&[
                Val::Text(Some(level)),
                Val::Text(Some(code)),
                Val::Text(v.attrs[0]),
                Val::Text(v.attrs[1]),
                Val::Text(v.attrs[2]),
                Val::Date(v.from.first_day()),
                Val::OptDate(to),
                Val::Bool(to.is_none()),
            ]);
        }
    }
    b.finish()
}

/// Each organisation's name, ONS code and parent in every month, as the month's first mapped
/// practice (in code order) gave them, or as `prior` gives them for earlier months:
/// (org_type, code) → one slot per month of the history (the months returned first).
/// `seen` is in practice and month order, so the first practice to fill a slot is the first
/// in code order; and a practice's months with the same attributes share one `Arc`, so its
/// organisations are looked up once per change of attributes, not once per month.
fn names_by_month<'a>(
    seen: &'a [Seen],
    prior: Vec<OrgMonth<'a>>,
) -> (Vec<Month>, Vec<OrgMonths<'a>>) {
    let all = || {
        seen.iter()
            .map(|s| s.month)
            .chain(prior.iter().map(|p| p.1))
    };
    let (Some(first), Some(last)) = (all().min(), all().max()) else {
        return (Vec::new(), Vec::new());
    };
    let months: Vec<Month> = Month::range(first, last).collect();
    let ordinal = |m: Month| {
        ((m.year() - first.year()) * 12 + m.month() as i32 - first.month() as i32) as usize
    };
    let mut orgs = Orgs {
        index: HashMap::default(),
        named: Vec::new(),
        months: months.len(),
    };
    for (key, month, names) in prior {
        let i = orgs.slot(key);
        orgs.named[i].1[ordinal(month)] = Some(names);
    }
    let mut current: (*const Attrs, Vec<(usize, Named<'a>)>) = (std::ptr::null(), Vec::new());
    for s in seen.iter().filter(|s| s.from_map) {
        if current.0 != Arc::as_ptr(&s.attrs) {
            let named = organisations_of(&s.attrs).into_iter();
            let named = named.map(|(key, names)| (orgs.slot(key), names));
            current = (Arc::as_ptr(&s.attrs), named.collect());
        }
        let slot = ordinal(s.month);
        for (i, names) in &current.1 {
            orgs.named[*i].1[slot].get_or_insert(*names);
        }
    }
    (months, orgs.named)
}

/// The organisations named so far, each with one slot per month of the history.
struct Orgs<'a> {
    index: HashMap<OrgKey<'a>, usize, FixedState>,
    named: Vec<OrgMonths<'a>>,
    months: usize,
}

impl<'a> Orgs<'a> {
    /// The index of `key`'s slots, added empty when first named.
    fn slot(&mut self, key: OrgKey<'a>) -> usize {
        *self.index.entry(key).or_insert_with(|| {
            self.named.push((key, vec![None; self.months]));
            self.named.len() - 1
        })
    }
}

/// An organisation: its level and code.
type OrgKey<'a> = (&'a str, &'a str);

/// What one month named an organisation.
type OrgMonth<'a> = (OrgKey<'a>, Month, Named<'a>);

/// An organisation and what each month of the history named it (`None`: not named).
type OrgMonths<'a> = (OrgKey<'a>, Vec<Option<Named<'a>>>);

/// The organisations a practice's attributes name, each with its name, ONS code and parent.
fn organisations_of(attrs: &Attrs) -> Vec<(OrgKey<'_>, Named<'_>)> {
    LEVELS
        .iter()
        .filter_map(|&(level, code, name, ons, parent)| {
            let c = attrs[code].as_deref()?;
            let pick = |i: Option<usize>| i.and_then(|i| attrs[i].as_deref());
            Some((
                (level, c),
                [attrs[name].as_deref(), pick(ons), pick(parent)],
            ))
        })
        .collect()
}

fn age_bands_batch() -> RecordBatch {
    let mut b = Batcher::new(DIM_AGE_BAND);
    for age in 0..=95u8 {
        let band = (age / 5).min(19);
        let ten = if age >= 90 {
            "90+".to_string()
        } else {
            format!("{}-{}", age / 10 * 10, age / 10 * 10 + 9)
        };
        b.push(&[
            Val::Text(Some(year_label(age))),
            Val::Int(i64::from(age)),
            Val::Text(Some(band_label(band))),
            Val::Text(Some(&ten)),
            Val::Int(i64::from(band)),
        ]);
    }
    // Open top bands of some pre-2017 files: rows of their own, never split.
    for from in [85u8, 90] {
        let label = format!("{from}+");
        b.push(&[
            Val::Text(Some(&label)),
            Val::Int(i64::from(from)),
            Val::Text(Some(&label)),
            Val::Text(Some(&label)),
            Val::Int(i64::from(from / 5)),
        ]);
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One batch of the snapshot query: (month, code, from, practice name) per row, the
    /// other attributes empty. The name column is given as views in `views` batches.
    fn batch(rows: &[(&str, &str, &str, Option<&str>)], views: bool) -> RecordBatch {
        let days = |m: &str| crate::batch::days(m.parse::<Month>().expect("month").first_day());
        let mut columns: Vec<(String, ArrayRef)> = vec![
            (
                "snapshot_date".into(),
                Arc::new(Date32Array::from_iter_values(
                    rows.iter().map(|r| days(r.0)),
                )),
            ),
            (
                "practice_code".into(),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            ),
            (
                "attributes_from".into(),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            ),
        ];
        let names: ArrayRef = if views {
            Arc::new(StringViewArray::from_iter(rows.iter().map(|r| r.3)))
        } else {
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.3)))
        };
        columns.push((ATTRS[0].into(), names));
        for name in &ATTRS[1..] {
            let empty = StringArray::from_iter(rows.iter().map(|_| None::<&str>));
            columns.push((name.to_string(), Arc::new(empty)));
        }
        RecordBatch::try_from_iter(columns).expect("a batch")
    }

    #[test]
    fn practice_months_come_in_practice_and_month_order_sharing_unchanged_attributes() {
        // Batches out of month order, one of them holding two months, names as views in one.
        let batches = [
            batch(
                &[
                    ("2024-03", "B1", "map", Some("Old Surgery")),
                    ("2024-03", "A1", "map", Some("Alpha")),
                ],
                false,
            ),
            batch(
                &[
                    ("2024-01", "B1", "map", Some("Old Surgery")),
                    ("2024-01", "A1", "map", Some("Alpha")),
                    ("2024-02", "A1", "age_file", Some("Alpha")),
                ],
                true,
            ),
            batch(&[("2024-02", "B1", "map", Some("New Surgery Name"))], false),
        ];
        let seen = by_practice(&batches);
        let got: Vec<(String, String, bool, Option<String>)> = seen
            .iter()
            .map(|s| {
                let name = s.attrs[0].clone();
                (s.code.to_string(), s.month.to_string(), s.from_map, name)
            })
            .collect();
        let row = |c: &str, m: &str, map: bool, n: &str| {
            (c.to_string(), m.to_string(), map, Some(n.to_string()))
        };
        assert_eq!(
            got,
            [
                row("A1", "2024-01", true, "Alpha"),
                row("A1", "2024-02", false, "Alpha"),
                row("A1", "2024-03", true, "Alpha"),
                row("B1", "2024-01", true, "Old Surgery"),
                row("B1", "2024-02", true, "New Surgery Name"),
                row("B1", "2024-03", true, "Old Surgery"),
            ]
        );
        // Unchanged months share one copy of the attributes (views and offsets compare
        // by value); a change, even back to earlier attributes, starts a new one.
        assert!(Arc::ptr_eq(&seen[0].attrs, &seen[1].attrs));
        assert!(Arc::ptr_eq(&seen[1].attrs, &seen[2].attrs));
        assert!(!Arc::ptr_eq(&seen[3].attrs, &seen[4].attrs));
        assert!(!Arc::ptr_eq(&seen[4].attrs, &seen[5].attrs));
        assert!(Arc::ptr_eq(&seen[3].code, &seen[5].code));
    }
}
