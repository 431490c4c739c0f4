//! Derived tables provably in step with silver.
//!
//! The series checks, the dimensions and gold are derived from silver. Each derivation reads
//! its sources pinned at one version and `_meta/derived.json` records those versions and the
//! versions it wrote. The derived tables are *in step* when every source and every output is
//! still at its recorded version; anything else (a month committed since, a run killed before
//! gold, another run's overwrite) makes them *behind*, and the next build derives again.
//! A derivation that loses a commit race re-reads and tries again, with backoff.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use deltalake::arrow::array::{Array, Int64Array, StringViewArray};
use deltalake::arrow::record_batch::RecordBatch;
use foldhash::fast::FixedState;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::BuildError;
use super::record::quality_batch;
use crate::catalog::{
    DERIVED_TABLES, DIM_AGE_BAND, DIM_ORGANISATION, DIM_PRACTICE, FACT_ORG_QUINARY,
    FACT_ORG_SINGLE_AGE, FACT_QUINARY, ORG_POPULATION, PRACTICE_LIST_SIZE, PRACTICE_SNAPSHOT,
    QUALITY, TableDef,
};
use crate::check::QualityResult;
use crate::check::series::{Jump, over_series, practice_jumps};
use crate::clock::Clock;
use crate::delta::{self, DeltaError};
use crate::error::Error;
use crate::gold::list_sizes;
use crate::lake::Lake;
use crate::month::Month;
use crate::session::{self, Pin, Session};

const RECORD: &str = "_meta/derived.json";
const SOURCES: [TableDef; 5] = [
    PRACTICE_SNAPSHOT,
    FACT_QUINARY,
    FACT_ORG_QUINARY,
    FACT_ORG_SINGLE_AGE,
    QUALITY,
];
const ATTEMPTS: u32 = 10;

/// What the derived tables were built from and what was written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Source table → the version read.
    pub sources: BTreeMap<String, u64>,
    /// Derived table → the version written.
    pub outputs: BTreeMap<String, u64>,
    /// When.
    pub at: Option<DateTime<Utc>>,
    /// The latest month the dims written describe: a later derivation may extend them by
    /// later months alone (absent from records written before dims could be extended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dims_through: Option<NaiveDate>,
    /// The practices without a month from a map up to `dims_through`, which extending the
    /// dims needs (absent from records written before they were recorded: then read from
    /// the snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_mapped: Option<BTreeSet<String>>,
}

/// What bringing the derived tables in step did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DerivedReport {
    /// True when the derived tables were rebuilt (they were behind).
    pub rebuilt: bool,
    /// Derivations that lost a commit race and were retried.
    pub retries: u32,
    /// The series results, when they were computed and recorded.
    #[serde(skip)]
    pub series: Option<Vec<QualityResult>>,
    /// The months whose published organisation figures the last derivation summed again
    /// from the facts, the others being kept from gold; `None` when it summed every month.
    pub org_months_summed: Option<Vec<NaiveDate>>,
    /// The months whose `as_published` organisation figures the last derivation summed again
    /// from `practice_snapshot`, the others being kept from gold; `None` when it summed every
    /// month.
    pub as_published_months_summed: Option<Vec<NaiveDate>>,
    /// The months whose list sizes the last derivation derived again, the others being kept
    /// from gold; `None` when it derived every month.
    pub list_size_months_derived: Option<Vec<NaiveDate>>,
    /// True when the last derivation extended the dims' versions by the changed months
    /// alone (or kept them, none having changed) rather than deriving every month again.
    pub dims_extended: bool,
    /// True when the last derivation kept the latest-geography figures of the months it did
    /// not sum again: no practice's organisations changed in the months the dims gained.
    pub geography_kept: bool,
    /// The months whose organisation figures the last derivation wrote, the files of the
    /// others being kept as they were (their restated figures and names still current);
    /// `None` when it wrote the table whole.
    pub org_months_written: Option<Vec<NaiveDate>>,
}

/// The derived tables that are behind silver (empty when in step, or when there is no silver).
pub async fn behind(lake: &Lake) -> Result<Vec<String>, DeltaError> {
    let current = versions(lake).await?;
    if !current.contains_key(PRACTICE_SNAPSHOT.name) {
        return Ok(Vec::new());
    }
    let record = read(lake).await.unwrap_or_default();
    let sources_moved = SOURCES
        .iter()
        .any(|d| current.get(d.name) != record.sources.get(d.name));
    Ok(DERIVED_TABLES
        .iter()
        .filter(|d| sources_moved || current.get(d.name) != record.outputs.get(d.name))
        .map(|d| d.name.to_string())
        .collect())
}

/// Derives again until the derived tables are in step, retrying lost commit races.
pub(crate) async fn bring_in_step(lake: &Lake, clock: &dyn Clock) -> Result<DerivedReport, Error> {
    let mut report = DerivedReport::default();
    for attempt in 0..ATTEMPTS {
        if behind(lake).await.map_err(BuildError::from)?.is_empty() {
            return Ok(report);
        }
        if attempt > 0 {
            // Another run committed meanwhile: let the runs fall out of step, so that one
            // finishes its derivation while the others wait.
            report.retries += 1;
            tokio::time::sleep(backoff(attempt)).await;
        }
        match derive(lake, clock.now()).await {
            Ok(Derived {
                series,
                keep,
                list_size_months,
                geography_kept,
                org_months_written,
            }) => {
                report.rebuilt = true;
                report.org_months_written = org_months_written;
                report.dims_extended = keep.dims.is_some();
                report.geography_kept = geography_kept;
                report.series = Some(series);
                report.org_months_summed = keep
                    .org
                    .as_ref()
                    .map(|k| k.changed.iter().copied().collect());
                report.as_published_months_summed =
                    keep.org.map(|k| k.snapshot_changed.into_iter().collect());
                report.list_size_months_derived = list_size_months;
            }
            Err(e) if delta::is_conflict(&e) => tracing::info!("derived tables: {e}; retrying"),
            Err(e) => return Err(BuildError::from(e).into()),
        }
    }
    Err(BuildError::DerivedBehind { attempts: ATTEMPTS }.into())
}

/// Exponential, with a jitter as large as the step so that racing runs spread out.
fn backoff(attempt: u32) -> Duration {
    let step = 100u64 << attempt.min(6);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let seed = nanos ^ u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Duration::from_millis(step + seed % step)
}

/// One derivation: the series checks, dims and gold, then the record. One session reads
/// every source at its pinned version; each output is pinned in it once written.
/// `practice_snapshot` is not held in memory: each query reads only its columns, and those
/// of the changed months where it can, so the derivation's memory does not grow with the
/// history (held, the 109-month lake's snapshot took 250 MiB for no gain in time). The two
/// chains that share no table — series checks, then quality, then list sizes; dims, then
/// organisation figures — run at once, on both cores, unless every list size is derived
/// again.
async fn derive(lake: &Lake, at: DateTime<Utc>) -> Result<Derived, DeltaError> {
    let clock = std::time::Instant::now();
    let start = versions(lake).await?;
    let keep = keep(lake, &start).await?;
    let mut sources: BTreeMap<String, u64> = SOURCES
        .iter()
        .filter_map(|d| start.get(d.name).map(|v| (d.name.to_string(), *v)))
        .collect();
    let session =
        session::internal(lake, &crate::gold::SOURCES, Pin::Versions(sources.clone())).await?;
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        "derived: session open"
    );
    let organisations = Abortable(tokio::spawn(organisation_chain(
        lake.clone(),
        session.clone(),
        keep.clone(),
    )));
    let practices = practice_chain(lake, &session, at, keep.list_sizes.as_ref());
    let ((series, quality, list_sizes), organisations) = if keep.list_sizes.is_some() {
        (practices.await?, organisations.join().await?)
    } else {
        // Every list size derived again: one chain at a time, so that the derivation holds
        // only one chain's rows at its peak (a first sync's memory bound).
        let outputs = organisations.join().await?;
        (practices.await?, outputs)
    };
    tracing::debug!(ms = clock.elapsed().as_millis() as u64, "derived: gold");
    crate::failpoint::point("gold");
    sources.insert(QUALITY.name.to_string(), quality);
    let Organisations {
        mut outputs,
        dims_through,
        never_mapped,
        geography_kept,
        org_months_written,
    } = organisations;
    outputs.insert(PRACTICE_LIST_SIZE.name.to_string(), list_sizes.version);
    let record = Record {
        sources,
        outputs,
        at: Some(at),
        dims_through,
        never_mapped,
    };
    write(lake, &record)
        .await
        .map_err(|e| lake_as_delta(RECORD, e))?;
    crate::failpoint::point("derived-record");
    Ok(Derived {
        series,
        keep,
        list_size_months: list_sizes.months,
        geography_kept,
        org_months_written,
    })
}

/// The series checks, recorded in `quality`, then the list sizes flagged by them; returns
/// the results, the version of `quality` read and that of the list sizes written.
async fn practice_chain(
    lake: &Lake,
    session: &Session,
    at: DateTime<Utc>,
    kept: Option<&list_sizes::Kept>,
) -> Result<(Vec<QualityResult>, u64, list_sizes::Rebuilt), DeltaError> {
    let clock = std::time::Instant::now();
    let series = series_in(session).await?;
    let quality = match delta::append(lake, &QUALITY, vec![quality_batch(&series, at)]).await? {
        Some(v) => v,
        None => delta::version(lake, &QUALITY).await?.unwrap_or(0),
    };
    let quality = compact_quality(lake).await.unwrap_or(quality);
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        "derived: series checks"
    );
    crate::failpoint::point("series");
    session.pin(lake, &QUALITY, Some(quality)).await?;
    // A small table in many small files (one per build): the list sizes' flags read it
    // several times over, so it is decoded once.
    session.hold(&QUALITY).await?;
    let list_sizes = list_sizes::rebuild(lake, session, kept).await?;
    Ok((series, quality, list_sizes))
}

/// `quality` gains a file or two with every build and derivation, and every derivation
/// reads all of it (the list sizes' flags): past this many files it is rewritten as one.
const QUALITY_FILES: usize = 32;

/// Compacts `quality` when it has grown past [`QUALITY_FILES`]: the version then, or `None`
/// when it was not compacted. Best effort: a failed compaction (a concurrent writer won the
/// commit, say) leaves the table as it was, and the derivation reads that.
async fn compact_quality(lake: &Lake) -> Option<u64> {
    match delta::compact(lake, &QUALITY, QUALITY_FILES).await {
        Ok(version) => version,
        Err(e) => {
            tracing::warn!("quality not compacted (it stays as it was): {e}");
            None
        }
    }
}

/// The dims, then the organisation figures that name and restate by them.
async fn organisation_chain(
    lake: Lake,
    session: Session,
    keep: Keep,
) -> Result<Organisations, DeltaError> {
    let clock = std::time::Instant::now();
    let dims = crate::dims::rebuild(&lake, &session, keep.dims.as_ref()).await?;
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        extended = keep.dims.is_some(),
        "derived: dims"
    );
    crate::failpoint::point("dims");
    let org = crate::gold::rebuild_org_populations(&lake, &session, keep.org.as_ref()).await?;
    let mut outputs = dims.versions;
    outputs.insert(ORG_POPULATION.name.to_string(), org.version);
    Ok(Organisations {
        outputs,
        dims_through: dims.through,
        never_mapped: dims.never_mapped,
        geography_kept: org.geography_kept,
        org_months_written: org.months.map(|m| m.into_iter().collect()),
    })
}

/// What the dims-then-organisations chain wrote.
struct Organisations {
    /// The versions written, by table.
    outputs: BTreeMap<String, u64>,
    /// The latest month the dims describe.
    dims_through: Option<NaiveDate>,
    /// The practices never mapped up to `dims_through`.
    never_mapped: Option<BTreeSet<String>>,
    /// True when the restated figures of months already summed were kept.
    geography_kept: bool,
    /// The months of `org_population_monthly` written (`None`: all).
    org_months_written: Option<Vec<NaiveDate>>,
}

/// A spawned chain, aborted if the derivation gives up before joining it: a failed
/// derivation leaves nothing running to race the next one's commits.
struct Abortable<T>(tokio::task::JoinHandle<Result<T, DeltaError>>);

impl<T> Abortable<T> {
    async fn join(mut self) -> Result<T, DeltaError> {
        let joined = (&mut self.0).await;
        joined.unwrap_or_else(|e| {
            Err(DeltaError {
                table: "derived tables",
                source: Box::new(deltalake::DeltaTableError::Generic(format!(
                    "derivation task failed: {e}"
                ))),
            })
        })
    }
}

impl<T> Drop for Abortable<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The series results, and what gold kept of its previous version.
struct Derived {
    series: Vec<QualityResult>,
    keep: Keep,
    /// The months whose list sizes were derived again (`None`: all).
    list_size_months: Option<Vec<NaiveDate>>,
    /// True when the restated figures of months already summed were kept.
    geography_kept: bool,
    /// The months of `org_population_monthly` written (`None`: all).
    org_months_written: Option<Vec<NaiveDate>>,
}

/// What the derivation may keep of gold's current version.
#[derive(Debug, Clone, Default)]
struct Keep {
    org: Option<crate::gold::Kept>,
    list_sizes: Option<list_sizes::Kept>,
    dims: Option<crate::dims::Extend>,
}

/// What gold may keep of its current version: the tables the last derivation wrote and
/// that are still at the version it wrote, when the log tells which months of their sources
/// changed since that derivation read them.
async fn keep(lake: &Lake, now: &BTreeMap<String, u64>) -> Result<Keep, DeltaError> {
    let Some(record) = read(lake).await else {
        return Ok(Keep::default());
    };
    let Some(snapshot_changed) =
        months_changed_since(lake, &record, now, &PRACTICE_SNAPSHOT).await?
    else {
        return Ok(Keep::default());
    };
    let current = |def: &TableDef| {
        let version = record.outputs.get(def.name)?;
        (now.get(def.name) == Some(version)).then_some(*version)
    };
    let list_sizes = current(&PRACTICE_LIST_SIZE).map(|version| list_sizes::Kept {
        version,
        snapshot_changed: snapshot_changed.clone(),
    });
    let dims = extended_dims(&record, &snapshot_changed, current);
    let org = match current(&ORG_POPULATION) {
        Some(version) => {
            let list_sizes = list_sizes.as_ref().map(|k| k.version);
            kept_org(lake, &record, now, version, snapshot_changed, list_sizes)
                .await?
                .map(|org| crate::gold::Kept {
                    geography_through: dims.as_ref().map(|d| d.through),
                    ..org
                })
        }
        None => None,
    };
    Ok(Keep {
        org,
        list_sizes,
        dims,
    })
}

/// The dims may be extended when every one is still at the version the last derivation
/// wrote, and only months after the latest one it described changed since.
fn extended_dims(
    record: &Record,
    snapshot_changed: &BTreeSet<NaiveDate>,
    current: impl Fn(&TableDef) -> Option<u64>,
) -> Option<crate::dims::Extend> {
    let through = record.dims_through?;
    if snapshot_changed.iter().any(|m| *m <= through) {
        return None;
    }
    let versions = [DIM_PRACTICE, DIM_ORGANISATION, DIM_AGE_BAND]
        .iter()
        .map(|def| Some((def.name.to_string(), current(def)?)))
        .collect::<Option<_>>()?;
    Some(crate::dims::Extend {
        through,
        months: snapshot_changed.clone(),
        versions,
        never_mapped: record.never_mapped.clone(),
    })
}

/// What the organisation figures at `version` may keep, reading unchanged months from the
/// list sizes at `list_sizes` when kept too: `None` when the log cannot tell which months of
/// the organisation facts changed.
async fn kept_org(
    lake: &Lake,
    record: &Record,
    now: &BTreeMap<String, u64>,
    version: u64,
    snapshot_changed: BTreeSet<NaiveDate>,
    list_sizes: Option<u64>,
) -> Result<Option<crate::gold::Kept>, DeltaError> {
    let mut changed = BTreeSet::new();
    for def in [FACT_ORG_QUINARY, FACT_ORG_SINGLE_AGE] {
        match months_changed_since(lake, record, now, &def).await? {
            Some(months) => changed.extend(months),
            None => return Ok(None),
        }
    }
    Ok(Some(crate::gold::Kept {
        version,
        changed,
        snapshot_changed,
        list_sizes,
        geography_through: None,
    }))
}

/// The months of `def` changed between the version `record` read and the current one, as the
/// log proves them (empty when the table is still missing); `None` when it cannot.
async fn months_changed_since(
    lake: &Lake,
    record: &Record,
    now: &BTreeMap<String, u64>,
    def: &TableDef,
) -> Result<Option<BTreeSet<NaiveDate>>, DeltaError> {
    match (record.sources.get(def.name), now.get(def.name)) {
        (Some(from), Some(to)) => super::changes::months_changed(lake, def, *from, *to)
            .await
            .map_err(|e| lake_as_delta(def.name, e)),
        (None, None) => Ok(Some(BTreeSet::new())),
        _ => Ok(None),
    }
}

/// The current version of every source and derived table that exists.
async fn versions(lake: &Lake) -> Result<BTreeMap<String, u64>, DeltaError> {
    let mut out = BTreeMap::new();
    for def in SOURCES.iter().chain(DERIVED_TABLES.iter()) {
        if let Some(v) = delta::version(lake, def).await? {
            out.insert(def.name.to_string(), v);
        }
    }
    Ok(out)
}

/// The record, if one was written.
pub async fn read(lake: &Lake) -> Option<Record> {
    let bytes = lake.get_bytes(&Path::from(RECORD)).await.ok()??;
    serde_json::from_slice(&bytes).ok()
}

async fn write(lake: &Lake, record: &Record) -> Result<(), crate::lake::LakeError> {
    let json = serde_json::to_vec_pretty(record).expect("serialisable");
    lake.put_bytes(&Path::from(RECORD), Bytes::from(json)).await
}

fn lake_as_delta(what: &'static str, e: crate::lake::LakeError) -> DeltaError {
    DeltaError {
        table: what,
        source: Box::new(deltalake::DeltaTableError::Generic(e.to_string())),
    }
}

/// The series results over the latest silver, without recording them.
pub(crate) async fn series_results(lake: &Lake) -> Result<Vec<QualityResult>, Error> {
    let snapshot = delta::version(lake, &PRACTICE_SNAPSHOT)
        .await
        .map_err(BuildError::from)?;
    Ok(series_at(lake, snapshot).await.map_err(BuildError::from)?)
}

/// Series rules over `practice_snapshot` at `version`: gaps, national moves, practice jumps.
async fn series_at(lake: &Lake, version: Option<u64>) -> Result<Vec<QualityResult>, DeltaError> {
    let mut pins = BTreeMap::new();
    pins.extend(version.map(|v| (PRACTICE_SNAPSHOT.name.to_string(), v)));
    let session = session::internal(lake, &[PRACTICE_SNAPSHOT], Pin::Versions(pins)).await?;
    series_in(&session).await
}

/// Series rules over the session's `practice_snapshot`.
async fn series_in(session: &Session) -> Result<Vec<QualityResult>, DeltaError> {
    // Every month's sizes, read once, summed and paired here. As SQL (a group-by, and a
    // self-join on the month before) the pairing cost 30 ms of a 36-month lake's derivation,
    // mostly date arithmetic per row, on the core the dims need.
    let sizes = session::collect(session, Some(&PRACTICE_SNAPSHOT), SIZES_SQL).await?;
    let checked = tokio::task::spawn_blocking(move || {
        let sizes = Sizes::of(&sizes);
        let mut results = over_series(&sizes.totals.into_iter().collect::<Vec<_>>());
        results.extend(practice_jumps(&sizes.jumps));
        results
    });
    checked.await.map_err(|e| DeltaError {
        table: PRACTICE_SNAPSHOT.name,
        source: Box::new(deltalake::DeltaTableError::Generic(e.to_string())),
    })
}

const SIZES_SQL: &str =
    "SELECT snapshot_date, practice_code, registered_population FROM practice_snapshot";

/// What the series rules read: each month's national total (0 for a month whose sizes are
/// all null, as SQL's sum of them), and the practices whose list moved by more than 500
/// patients and a fifth of the month before, by month and practice code.
struct Sizes {
    totals: BTreeMap<Month, i64>,
    jumps: Vec<Jump>,
}

impl Sizes {
    fn of(batches: &[RecordBatch]) -> Sizes {
        let read: Vec<MonthSizes> = batches.iter().map(MonthSizes::of).collect();
        let mut totals = BTreeMap::new();
        // Each month's known sizes by practice, a table per month: one table of every
        // practice-month took four times as long to fill (a miss in memory per row).
        let mut known: BTreeMap<Month, HashMap<&str, i64, FixedState>> = BTreeMap::new();
        for r in &read {
            let mut month = None;
            let mut sizes = HashMap::default();
            for (i, m) in r.months.iter().enumerate() {
                let Some(m) = *m else { continue };
                if month != Some(m) {
                    if let Some(done) = month {
                        known.insert(done, std::mem::take(&mut sizes));
                    }
                    (month, sizes) = (Some(m), known.remove(&m).unwrap_or_default());
                }
                let size = r.sizes.is_valid(i).then(|| r.sizes.value(i));
                *totals.entry(m).or_insert(0) += size.unwrap_or(0);
                if let (Some(size), true) = (size, r.codes.is_valid(i)) {
                    sizes.insert(r.codes.value(i), size);
                }
            }
            if let Some(done) = month {
                known.insert(done, sizes);
            }
        }
        Sizes {
            totals,
            jumps: jumps(&known),
        }
    }
}

/// The practices whose list moved by more than 500 patients and a fifth of the month
/// before, by month and practice code.
fn jumps(known: &BTreeMap<Month, HashMap<&str, i64, FixedState>>) -> Vec<Jump> {
    let mut jumps = Vec::new();
    for (&month, sizes) in known {
        let Some(before) = known.get(&month.prev()) else {
            continue;
        };
        for (&code, &after) in sizes {
            let Some(&before) = before.get(code) else {
                continue;
            };
            let moved = (after - before).abs();
            if moved > 500 && moved * 5 > before {
                jumps.push(Jump {
                    month,
                    practice: code.to_string(),
                    before,
                    after,
                });
            }
        }
    }
    jumps.sort_by(|a, b| (a.month, &a.practice).cmp(&(b.month, &b.practice)));
    jumps
}

/// One batch of sizes: each row's month, practice code and size.
struct MonthSizes {
    months: Vec<Option<Month>>,
    codes: StringViewArray,
    sizes: Int64Array,
}

impl MonthSizes {
    fn of(batch: &RecordBatch) -> MonthSizes {
        use deltalake::arrow::array::AsArray;
        use deltalake::arrow::compute::cast;
        use deltalake::arrow::datatypes::{DataType, Date32Type};
        let dates = cast(batch.column(0), &DataType::Date32).ok();
        let dates = dates.as_ref().map(|d| d.as_primitive::<Date32Type>());
        // A file holds one month: each date is made a month once.
        let mut last: Option<(i32, Option<Month>)> = None;
        let months = (0..batch.num_rows())
            .map(|i| {
                let day = dates.filter(|d| d.is_valid(i))?.value(i);
                match last {
                    Some((d, month)) if d == day => month,
                    _ => {
                        let month = Date32Type::to_naive_date_opt(day).map(Month::of);
                        last = Some((day, month));
                        month
                    }
                }
            })
            .collect();
        let codes = cast(batch.column(1), &DataType::Utf8View)
            .map(|c| c.as_string_view().clone())
            .unwrap_or_else(|_| StringViewArray::new_null(batch.num_rows()));
        MonthSizes {
            months,
            codes,
            sizes: delta::int_column(batch, 2),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Date32Array, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// A practice-month: (year, month), practice code, size.
    type Row<'a> = (Option<(i32, u32)>, Option<&'a str>, Option<i64>);

    fn batch(rows: &[Row]) -> RecordBatch {
        let date =
            |(y, m): (i32, u32)| crate::batch::days(NaiveDate::from_ymd_opt(y, m, 1).unwrap());
        let schema = Schema::new(vec![
            Field::new("snapshot_date", DataType::Date32, true),
            Field::new("practice_code", DataType::Utf8, true),
            Field::new("registered_population", DataType::Int64, true),
        ]);
        let columns: Vec<deltalake::arrow::array::ArrayRef> = vec![
            Arc::new(Date32Array::from_iter(rows.iter().map(|r| r.0.map(date)))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
        ];
        RecordBatch::try_new(Arc::new(schema), columns).unwrap()
    }

    fn month(y: i32, m: u32) -> Month {
        Month::of(NaiveDate::from_ymd_opt(y, m, 1).unwrap())
    }

    #[test]
    fn the_series_pairs_each_practice_with_its_month_before_as_the_rule_says() {
        let (jan, feb, mar, may) = (
            Some((2024, 1)),
            Some((2024, 2)),
            Some((2024, 3)),
            Some((2024, 5)),
        );
        // Months out of order and split across batches, as files are read.
        let batches = [
            batch(&[
                (feb, Some("A"), Some(1501)),  // +501 on 1000: a jump
                (feb, Some("B"), Some(1500)),  // +500: not more than 500
                (feb, Some("C"), Some(11999)), // +1999 on 10000: not a fifth
                (feb, Some("D"), Some(400)),   // -600 on 1000: a jump
                (feb, None, Some(7)),          // no code: counted, never paired
            ]),
            batch(&[
                (jan, Some("A"), Some(1000)),
                (jan, Some("B"), Some(1000)),
                (jan, Some("C"), Some(10000)),
                (jan, Some("D"), Some(1000)),
                (jan, Some("E"), None), // unknown size: pairs with nothing
                (None, Some("A"), Some(99)), // no month: left out
            ]),
            batch(&[
                (mar, Some("E"), Some(5000)),
                (mar, Some("A"), None),
                (may, Some("A"), Some(9000)), // April missing: no month before
            ]),
        ];
        let sizes = Sizes::of(&batches);
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
    fn a_month_whose_sizes_are_all_unknown_totals_nothing_but_is_there() {
        let sizes = Sizes::of(&[batch(&[(Some((2024, 1)), Some("A"), None)])]);
        assert_eq!(
            sizes.totals.into_iter().collect::<Vec<_>>(),
            [(month(2024, 1), 0)]
        );
        assert!(sizes.jumps.is_empty());
    }
}
