//! Silver: bronze files of every era become Delta Lake tables, each month proved against the
//! totals published beside it before it is committed.
//!
//! A month is rebuilt when its bronze changed (or on demand). Its files are parsed as they
//! stream into new data files; the checks run on the aggregates gathered on the way; only
//! if no hard rule failed is each table's partition replaced, in one commit per table. A
//! failed month leaves the previous good silver exactly as it was; its quarantined rows and
//! results are still recorded so the user can see why.

pub mod batch;
pub mod delta;
pub mod dims;
pub mod month;
mod plan;
pub mod schema;
pub mod state;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::Array;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::check::{QualityResult, Severity, quality_batch, rules};
use crate::clock::Clock;
use crate::fetch::Manifest;
use crate::lake::{BRONZE_ROOT, Lake, LakeError};
use crate::month::Month;
use delta::DeltaError;
use month::{InputFile, MonthError, Targets};
use schema::{
    FACT_LSOA, FACT_QUINARY, FACT_SINGLE_AGE, FILES, PRACTICE_SNAPSHOT, QUALITY, QUARANTINE,
    TableDef,
};
use state::MonthState;

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Only these months (all months with bronze when empty).
    pub months: Vec<Month>,
    /// Rebuild even when bronze has not changed.
    pub force: bool,
    /// Months built at once (default: the number of cores).
    pub jobs: usize,
}

/// A build failure that stops the whole build (storage, Delta); file problems are per month.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The lake failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// A Delta table failed.
    #[error(transparent)]
    Delta(#[from] DeltaError),
    /// A bronze manifest is unreadable.
    #[error("month {month}: {source}")]
    Manifest {
        /// The month.
        month: Month,
        /// The cause.
        source: crate::fetch::ManifestError,
    },
    /// The gold tables could not be rebuilt.
    #[error("gold tables: {0}")]
    Gold(String),
    /// A worker thread died.
    #[error("build of month {month} stopped unexpectedly: {reason}")]
    Worker {
        /// The month.
        month: Month,
        /// Why.
        reason: String,
    },
}

/// What happened to one month.
#[derive(Debug, Clone, Serialize)]
pub struct MonthReport {
    /// The month.
    pub month: Month,
    /// True when the month's silver was replaced.
    pub committed: bool,
    /// Rows written per table.
    pub rows: Vec<(String, u64)>,
    /// Which set of files was used, when the release offered two.
    pub source_set: String,
    /// Hard failures (empty when committed).
    pub failures: Vec<String>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Rows quarantined.
    pub quarantined: usize,
}

/// What a build did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BuildReport {
    /// Months built (committed or kept out).
    pub months: Vec<MonthReport>,
    /// Months skipped because their bronze had not changed.
    pub unchanged: usize,
    /// Series-wide results (gaps, month-over-month).
    pub series: Vec<QualityResult>,
}

impl BuildReport {
    /// True when any month failed a hard rule (exit 3).
    pub fn gate_failed(&self) -> bool {
        self.months.iter().any(|m| !m.committed)
    }

    /// One line: `N months built (R rows), F kept out, U unchanged`.
    pub fn summary(&self) -> String {
        let built = self.months.iter().filter(|m| m.committed).count();
        let failed = self.months.len() - built;
        let rows: u64 = self
            .months
            .iter()
            .filter(|m| m.committed)
            .flat_map(|m| m.rows.iter().map(|r| r.1))
            .sum();
        let warnings: usize = self.months.iter().map(|m| m.warnings.len()).sum::<usize>()
            + self.series.iter().filter(|r| !r.passed).count();
        format!(
            "silver: {built} months built ({rows} rows), {failed} kept out by the quality gate, {} unchanged, {warnings} warnings",
            self.unchanged
        )
    }
}

/// The tables a build writes, opened once, each behind a lock so commits never interleave.
struct Open {
    targets: Targets,
    commit: HashMap<&'static str, Mutex<deltalake::DeltaTable>>,
}

/// Builds silver for every month whose bronze changed.
pub async fn build(
    lake: &Lake,
    clock: &dyn Clock,
    options: &BuildOptions,
) -> Result<BuildReport, BuildError> {
    let months = bronze_months(lake).await?;
    let mut todo = Vec::new();
    let mut report = BuildReport::default();
    for month in months
        .into_iter()
        .filter(|m| options.months.is_empty() || options.months.contains(m))
    {
        let manifest = Manifest::read(lake, month)
            .await
            .map_err(|source| BuildError::Manifest { month, source })?
            .ok_or_else(|| BuildError::Worker {
                month,
                reason: "manifest vanished".into(),
            })?;
        let fingerprint = plan::fingerprint(&manifest);
        let previous = MonthState::read(lake, month).await?;
        if !options.force
            && previous
                .as_ref()
                .is_some_and(|s| s.fingerprint == fingerprint)
        {
            report.unchanged += 1;
            continue;
        }
        todo.push(manifest);
    }
    if todo.is_empty() {
        report.series = series_rules(lake).await?;
        return Ok(report);
    }
    let open = Arc::new(open_tables(lake).await?);
    let jobs = if options.jobs == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        options.jobs
    };
    let at = clock.now();
    let results: Vec<Result<MonthReport, BuildError>> = futures::stream::iter(todo)
        .map(|manifest| build_one(lake, open.clone(), manifest, at))
        .buffer_unordered(jobs)
        .collect()
        .await;
    for r in results {
        report.months.push(r?);
    }
    report.months.sort_by_key(|m| m.month);
    if report.months.iter().any(|m| m.committed) {
        dims::rebuild(lake).await?;
        crate::gold::rebuild(lake)
            .await
            .map_err(|e| BuildError::Gold(e.to_string()))?;
    }
    report.series = series_rules(lake).await?;
    delta::append(lake, &QUALITY, vec![quality_batch(&report.series, at)]).await?;
    Ok(report)
}

/// The digest of a month's bronze that decides whether silver is current.
pub fn plan_fingerprint(manifest: &Manifest) -> String {
    plan::fingerprint(manifest)
}

/// Every month that has a bronze manifest.
pub async fn bronze_months(lake: &Lake) -> Result<Vec<Month>, LakeError> {
    let objects = lake
        .list(&object_store::path::Path::from(BRONZE_ROOT))
        .await?;
    let mut months: Vec<Month> = objects
        .iter()
        .filter(|o| o.location.filename() == Some(crate::fetch::manifest::MANIFEST_NAME))
        .filter_map(|o| {
            let text = o.location.to_string();
            let year = text
                .split("snapshot_year=")
                .nth(1)?
                .get(..4)?
                .parse()
                .ok()?;
            let month = text
                .split("snapshot_month=")
                .nth(1)?
                .get(..2)?
                .parse()
                .ok()?;
            Month::new(year, month)
        })
        .collect();
    months.sort();
    months.dedup();
    Ok(months)
}

async fn open_tables(lake: &Lake) -> Result<Open, DeltaError> {
    let mut commit = HashMap::new();
    for def in [
        FACT_QUINARY,
        FACT_SINGLE_AGE,
        FACT_LSOA,
        PRACTICE_SNAPSHOT,
        QUARANTINE,
    ] {
        commit.insert(
            def.name,
            Mutex::new(delta::open_or_create(lake, &def).await?),
        );
    }
    for def in [QUALITY, FILES] {
        delta::open_or_create(lake, &def).await?;
    }
    let targets = Targets {
        quinary: commit[FACT_QUINARY.name].lock().await.clone(),
        single: commit[FACT_SINGLE_AGE.name].lock().await.clone(),
        lsoa: commit[FACT_LSOA.name].lock().await.clone(),
        practices: commit[PRACTICE_SNAPSHOT.name].lock().await.clone(),
    };
    Ok(Open { targets, commit })
}

async fn build_one(
    lake: &Lake,
    open: Arc<Open>,
    manifest: Manifest,
    at: DateTime<Utc>,
) -> Result<MonthReport, BuildError> {
    let month = manifest.month;
    let plan = plan::choose(&manifest);
    let tmp = tempfile::tempdir().map_err(|e| BuildError::Worker {
        month,
        reason: e.to_string(),
    })?;
    let inputs = download(lake, month, &plan.used, tmp.path()).await?;
    let unused = plan.unused.clone();
    let handle = tokio::runtime::Handle::current();
    let worker = open.clone();
    let built = tokio::task::spawn_blocking(move || {
        month::build_month(month, &inputs, &unused, &worker.targets, &handle, at)
    })
    .await
    .map_err(|e| BuildError::Worker {
        month,
        reason: e.to_string(),
    })?;
    let mut results = Vec::new();
    let outcome = match built {
        Ok(built) => {
            results = rules::month_rules(&built.aggregates, month);
            Some(built)
        }
        Err(MonthError::Format { source, .. }) => {
            results.push(QualityResult::fail(
                Some(month),
                "file_readable",
                Severity::Error,
                "file",
                None,
                format!("month {month}: {source}"),
            ));
            None
        }
        Err(MonthError::Delta { source, .. }) => return Err(source.into()),
    };
    let hard: Vec<String> = results
        .iter()
        .filter(|r| r.is_hard_failure())
        .map(|r| r.message.clone())
        .collect();
    let warnings: Vec<String> = results
        .iter()
        .filter(|r| !r.passed && r.severity == Severity::Warning)
        .map(|r| r.message.clone())
        .collect();
    let mut rows = Vec::new();
    let mut quarantined = 0;
    if let Some(built) = outcome {
        quarantined = built.quarantine.len();
        rows = commit_or_discard(lake, &open, month, built.adds, hard.is_empty()).await?;
        let mut q = open.commit[QUARANTINE.name].lock().await;
        let batch = month::quarantine_batch(month, &built.quarantine, at);
        let adds = write_now(&q, &QUARANTINE, batch).await?;
        delta::replace_partition(&mut q, &QUARANTINE, month.first_day(), adds).await?;
        drop(q);
        delta::append(lake, &FILES, vec![built.files]).await?;
    }
    delta::append(lake, &QUALITY, vec![quality_batch(&results, at)]).await?;
    let committed = hard.is_empty();
    MonthState {
        month,
        fingerprint: plan::fingerprint(&manifest),
        committed,
        built_at: at,
        source_set: plan.source_set.clone(),
        failures: hard.clone(),
        warnings: warnings.len(),
    }
    .write(lake)
    .await?;
    Ok(MonthReport {
        month,
        committed,
        rows,
        source_set: plan.source_set,
        failures: hard,
        warnings,
        quarantined,
    })
}

/// Commits each table's new partition, or deletes the unused data files.
async fn commit_or_discard(
    lake: &Lake,
    open: &Open,
    month: Month,
    adds: Vec<(TableDef, Vec<deltalake::kernel::Add>)>,
    commit: bool,
) -> Result<Vec<(String, u64)>, BuildError> {
    let mut rows = Vec::new();
    for (def, adds) in adds {
        let count: u64 = adds.iter().map(rows_in).sum();
        if commit {
            let mut table = open.commit[def.name].lock().await;
            delta::replace_partition(&mut table, &def, month.first_day(), adds).await?;
            rows.push((def.name.to_string(), count));
        } else {
            for add in adds {
                let path = object_store::path::Path::parse(format!("{}/{}", def.path, add.path))
                    .unwrap_or_default();
                let _ = lake.delete(&path).await;
            }
        }
    }
    Ok(rows)
}

fn rows_in(add: &deltalake::kernel::Add) -> u64 {
    add.get_stats()
        .ok()
        .flatten()
        .map(|s| s.num_records as u64)
        .unwrap_or(0)
}

async fn write_now(
    table: &deltalake::DeltaTable,
    def: &TableDef,
    batch: deltalake::arrow::record_batch::RecordBatch,
) -> Result<Vec<deltalake::kernel::Add>, DeltaError> {
    let mut writer = delta::writer(table, def)?;
    if batch.num_rows() > 0 {
        delta::write(&mut writer, def, batch).await?;
    }
    delta::flush(&mut writer, def).await
}

async fn download(
    lake: &Lake,
    month: Month,
    used: &[plan::Chosen],
    dir: &std::path::Path,
) -> Result<Vec<InputFile>, BuildError> {
    let mut inputs = Vec::new();
    for (i, chosen) in used.iter().enumerate() {
        let local = dir.join(format!("{i}"));
        let path = chosen
            .path
            .split('/')
            .fold(Lake::bronze_month_dir(month), |p, part| p.join(part));
        lake.download_to(&path, &local).await?;
        inputs.push(InputFile {
            name: chosen.name.clone(),
            family: chosen.family,
            sha256: chosen.sha256.clone(),
            local,
            lsoa_vintage: chosen.lsoa_vintage,
        });
    }
    Ok(inputs)
}

/// Series-wide rules over `practice_snapshot`: missing months and month-over-month jumps.
pub async fn series_rules(lake: &Lake) -> Result<Vec<QualityResult>, DeltaError> {
    let batches = delta::query(
        lake,
        &[&PRACTICE_SNAPSHOT],
        "SELECT CAST(snapshot_date AS VARCHAR) AS d, SUM(registered_population) AS n, COUNT(*) AS p FROM practice_snapshot GROUP BY snapshot_date ORDER BY snapshot_date",
    )
    .await?;
    let mut totals: Vec<(Month, i64)> = Vec::new();
    for b in &batches {
        let (d, n) = (delta::text_column(b, 0), delta::int_column(b, 1));
        for i in 0..b.num_rows() {
            if let Ok(month) = d.value(i).get(..7).unwrap_or("").parse::<Month>() {
                totals.push((month, if n.is_null(i) { 0 } else { n.value(i) }));
            }
        }
    }
    let mut results = rules_over_series(&totals);
    results.extend(practice_jumps(lake).await?);
    Ok(results)
}

/// Practices whose list moved by more than 20 % and 500 patients from one month to the next.
async fn practice_jumps(lake: &Lake) -> Result<Vec<QualityResult>, DeltaError> {
    const LISTED: usize = 50;
    let sql = "SELECT CAST(a.snapshot_date AS VARCHAR) AS d, a.practice_code, b.registered_population AS before, a.registered_population AS after
        FROM practice_snapshot a JOIN practice_snapshot b ON a.practice_code = b.practice_code AND b.snapshot_date = a.snapshot_date - INTERVAL '1 month'
        WHERE ABS(a.registered_population - b.registered_population) > 500
          AND ABS(a.registered_population - b.registered_population) * 5 > b.registered_population
        ORDER BY d, a.practice_code";
    let batches = delta::query(lake, &[&PRACTICE_SNAPSHOT], sql).await?;
    let mut out = Vec::new();
    for b in &batches {
        let (d, code) = (delta::text_column(b, 0), delta::text_column(b, 1));
        let (before, after) = (delta::int_column(b, 2), delta::int_column(b, 3));
        for i in 0..b.num_rows() {
            let Ok(month) = d.value(i).get(..7).unwrap_or("").parse::<Month>() else {
                continue;
            };
            let (x, y) = (before.value(i), after.value(i));
            let message = format!(
                "practice {} moved from {x} to {y} patients in {month} ({:+.0}%)",
                code.value(i),
                (y - x) as f64 * 100.0 / x.max(1) as f64
            );
            out.push(QualityResult::fail(
                Some(month),
                "practice_month_over_month",
                Severity::Warning,
                code.value(i),
                Some((x as u64, y as u64)),
                message,
            ));
        }
    }
    if out.len() > LISTED {
        let more = out.len() - LISTED;
        out.truncate(LISTED);
        out.push(QualityResult::fail(
            None,
            "practice_month_over_month",
            Severity::Warning,
            "…",
            None,
            format!("{more} more practice jumps not listed"),
        ));
    }
    Ok(out)
}

fn rules_over_series(totals: &[(Month, i64)]) -> Vec<QualityResult> {
    let mut out = Vec::new();
    let monthly_from = Month::new(2017, 5).expect("valid");
    let present: Vec<Month> = totals.iter().map(|t| t.0).collect();
    if let (Some(first), Some(last)) =
        (present.iter().find(|m| **m >= monthly_from), present.last())
    {
        let gaps: Vec<Month> = Month::range(*first, *last)
            .filter(|m| !present.contains(m))
            .collect();
        out.push(if gaps.is_empty() {
            QualityResult::pass(
                None,
                "missing_months",
                Severity::Warning,
                format!("no monthly gaps from {first} to {last}"),
            )
        } else {
            let runs = crate::month::describe_runs(&gaps);
            QualityResult::fail(
                None,
                "missing_months",
                Severity::Warning,
                "series",
                None,
                format!("{} months missing from silver: {runs}", gaps.len()),
            )
        });
    }
    for pair in totals.windows(2) {
        let ((m0, n0), (m1, n1)) = (pair[0], pair[1]);
        if m1 != m0.next() || n0 <= 0 {
            continue;
        }
        let change = (n1 - n0) as f64 / n0 as f64;
        if change.abs() > 0.02 {
            out.push(QualityResult::fail(
                Some(m1),
                "month_over_month",
                Severity::Warning,
                "England",
                Some((n0 as u64, n1 as u64)),
                format!(
                    "national total moved {:+.1}% from {m0} to {m1}",
                    change * 100.0
                ),
            ));
        }
    }
    out
}
