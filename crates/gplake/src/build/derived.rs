//! Derived tables provably in step with silver.
//!
//! The series checks, the dimensions and gold are derived from silver. Each derivation reads
//! its sources pinned at one version and `_meta/derived.json` records those versions and the
//! versions it wrote. The derived tables are *in step* when every source and every output is
//! still at its recorded version; anything else (a month committed since, a run killed before
//! gold, another run's overwrite) makes them *behind*, and the next build derives again.
//! A derivation that loses a commit race re-reads and tries again, with backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
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
use crate::check::series::{over_series, practice_jumps};
use crate::clock::Clock;
use crate::delta::{self, DeltaError};
use crate::error::Error;
use crate::gold::list_sizes;
use crate::lake::Lake;
use crate::memory::Release;
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
    /// The months whose list sizes the last derivation derived again, the others being kept
    /// from gold; `None` when it derived every month.
    pub list_size_months_derived: Option<Vec<NaiveDate>>,
    /// True when the last derivation extended the dims' versions by the changed months
    /// alone (or kept them, none having changed) rather than deriving every month again.
    pub dims_extended: bool,
    /// True when the last derivation kept the latest-geography figures of the months it did
    /// not sum again: no practice's organisations changed in the months the dims gained.
    pub geography_kept: bool,
    /// The months whose organisation figures the last derivation made again from the facts
    /// and `practice_snapshot` and wrote, the files of the others being kept as they were
    /// (their restated figures and names still current); `None` when it made every month.
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
/// `release` hands freed memory back between the derivation's steps.
pub(crate) async fn bring_in_step(
    lake: &Lake,
    clock: &dyn Clock,
    release: Release,
) -> Result<DerivedReport, Error> {
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
        match derive(lake, clock.now(), release).await {
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
async fn derive(lake: &Lake, at: DateTime<Utc>, release: Release) -> Result<Derived, DeltaError> {
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
    release.everywhere().await;
    let snapshot = start.get(PRACTICE_SNAPSHOT.name).copied();
    let organisations = Abortable(tokio::spawn(organisation_chain(
        lake.clone(),
        session.clone(),
        sources.clone(),
        keep.clone(),
        release,
    )));
    let kept = keep.list_sizes.as_ref();
    let practices = practice_chain(lake, &session, snapshot, at, kept, release);
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

/// The series checks over `practice_snapshot` at `snapshot` (the version the session pins),
/// recorded in `quality`, then the list sizes flagged by them; returns the results, the
/// version of `quality` read and that of the list sizes written.
async fn practice_chain(
    lake: &Lake,
    session: &Session,
    snapshot: Option<u64>,
    at: DateTime<Utc>,
    kept: Option<&list_sizes::Kept>,
    release: Release,
) -> Result<(Vec<QualityResult>, u64, list_sizes::Rebuilt), DeltaError> {
    let clock = std::time::Instant::now();
    let series = series_at(lake, snapshot).await?;
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        "derived: series read"
    );
    let quality = match delta::append(lake, &QUALITY, vec![quality_batch(&series, at)]).await? {
        Some(v) => v,
        None => delta::version(lake, &QUALITY).await?.unwrap_or(0),
    };
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        "derived: series recorded"
    );
    let quality = compact_quality(lake).await.unwrap_or(quality);
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        "derived: series checks"
    );
    crate::failpoint::point("series");
    release.everywhere().await;
    let versions = list_sizes::SourceVersions { snapshot, quality };
    let list_sizes = list_sizes::rebuild(lake, session, versions, kept, release).await?;
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

/// The dims, then the organisation figures that name and restate by them, from the sources
/// at `versions` (by table name, as the session pins them).
async fn organisation_chain(
    lake: Lake,
    session: Session,
    versions: BTreeMap<String, u64>,
    keep: Keep,
    release: Release,
) -> Result<Organisations, DeltaError> {
    let snapshot = versions.get(PRACTICE_SNAPSHOT.name).copied();
    let clock = std::time::Instant::now();
    let dims = crate::dims::rebuild(&lake, &session, snapshot, keep.dims.as_ref()).await?;
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        extended = keep.dims.is_some(),
        "derived: dims"
    );
    crate::failpoint::point("dims");
    release.everywhere().await;
    let kept = keep.org.as_ref();
    let org =
        crate::gold::rebuild_org_populations(&lake, &session, &versions, kept, release).await?;
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
        Some(version) => kept_org(lake, &record, now, version, snapshot_changed)
            .await?
            .map(|org| crate::gold::Kept {
                geography_through: dims.as_ref().map(|d| d.through),
                ..org
            }),
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

/// What the organisation figures at `version` may keep: `None` when the log cannot tell
/// which months of the organisation facts changed.
async fn kept_org(
    lake: &Lake,
    record: &Record,
    now: &BTreeMap<String, u64>,
    version: u64,
    snapshot_changed: BTreeSet<NaiveDate>,
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
    let sizes = super::sizes::read(lake, version).await?;
    let mut results = over_series(&sizes.totals.into_iter().collect::<Vec<_>>());
    results.extend(practice_jumps(&sizes.jumps));
    Ok(results)
}
