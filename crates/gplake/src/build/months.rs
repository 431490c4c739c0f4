//! The month stages of the pipeline: plan, build, gate, commit, record the month's state.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::Mutex;

use super::BuildError;
use super::record::{quality_batch, quarantine_batch, write_now};
use super::reissue;
use super::state::{BUILDER, BronzeRead, MonthState, NationalFigure, SilverState, TableState};
use super::{BuildOptions, BuildReport};
use crate::catalog::{
    FACT_LSOA, FACT_ORG_QUINARY, FACT_ORG_SINGLE_AGE, FACT_QUINARY, FACT_SINGLE_AGE, FILES,
    PRACTICE_SNAPSHOT, QUALITY, QUARANTINE, TableDef,
};
use crate::check::evidence::Aggregates;
use crate::check::{QualityResult, Rule, Severity, rules};
use crate::clock::Clock;
use crate::delta::{self, DeltaError};
use crate::error::Error;
use crate::fetch::Manifest;
use crate::formats::Aliases;
use crate::lake::Lake;
use crate::month::Month;
use crate::silver::month::{
    MonthBuilt, MonthContext, MonthError, Part, Targets, finish, read_head,
};
use crate::silver::{bronze_months, open_bronze, plan};

/// What happened to one month.
#[derive(Debug, Clone, Serialize)]
pub struct MonthReport {
    /// The month.
    pub month: Month,
    /// True when the month's silver was replaced (every table but those in `kept_out`).
    pub committed: bool,
    /// Rows written per table.
    pub rows: Vec<(String, u64)>,
    /// Tables whose month was kept out (all of them when `committed` is false).
    pub kept_out: Vec<String>,
    /// Which set of files was used, when the release offered two.
    pub source_set: String,
    /// Hard failures (empty when committed).
    pub failures: Vec<String>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Rows quarantined.
    pub quarantined: usize,
    /// Bytes of bronze read (the files used, as published).
    pub bytes_read: u64,
}

/// The tables a build writes, opened once, each behind a lock so commits never interleave.
struct Open {
    targets: Arc<Targets>,
    commit: HashMap<&'static str, Mutex<deltalake::DeltaTable>>,
}

/// The tables a build writes, opened on first need: by whichever month needs them first,
/// the others waiting for that open (an open that failed is tried again by the next).
struct Opening<'a> {
    lake: &'a Lake,
    options: &'a BuildOptions,
    cell: tokio::sync::OnceCell<Open>,
    /// The threads months' files are parsed and written on, a job at a time each.
    workers: super::workers::Workers,
}

impl Opening<'_> {
    async fn get(&self) -> Result<&Open, Error> {
        let open = self.cell.get_or_try_init(|| open_tables(self.lake));
        Ok(open.await.map_err(BuildError::from)?)
    }
}

/// Plans, builds, gates and commits every month whose bronze changed.
pub(super) async fn build_months(
    lake: &Lake,
    clock: &dyn Clock,
    options: &BuildOptions,
) -> Result<BuildReport, Error> {
    let mut report = BuildReport::default();
    let started = std::time::Instant::now();
    let aliases = super::aliases::in_force(lake).await?;
    let todo = plan_months(lake, options, &aliases, &mut report).await?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "months: planned");
    if todo.is_empty() {
        return Ok(report);
    }
    let jobs = match options.jobs {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let opening = Opening {
        lake,
        options,
        cell: tokio::sync::OnceCell::new(),
        workers: super::workers::Workers::start(jobs, options.memory.map(|m| m.release)),
    };
    let at = clock.now();
    options.emit(super::BuildEvent::Planned { months: todo.len() });
    // The tables open while the first month's bronze is unpacked and its map and totals
    // read (a 36-month lake's nine opens take 40-60 ms, as long as those): a month waits for
    // them only when its jobs start.
    let open_first = async {
        if opening.get().await.is_ok() {
            tracing::debug!(
                ms = started.elapsed().as_millis() as u64,
                "months: tables open"
            );
        }
    };
    let months = futures::stream::iter(todo)
        .map(|manifest| async {
            options.check_cancel()?;
            let report = build_one(lake, &opening, manifest, at, &aliases).await?;
            options.emit(super::BuildEvent::MonthDone {
                month: report.month,
                committed: report.committed,
                rows: report.rows.iter().map(|(_, n)| n).sum(),
                bytes: report.bytes_read,
            });
            Ok(report)
        })
        // A month's files are read by jobs on every month thread, the earliest month's jobs
        // first: one month is read at a time, and a month thread that has no job of it left
        // starts the next month's. See MONTHS_OPEN for how many are open at once.
        .buffer_unordered(MONTHS_OPEN)
        .collect::<Vec<Result<MonthReport, Error>>>();
    let ((), results) = futures::join!(open_first, months);
    for r in results {
        report.months.push(r?);
    }
    report.months.sort_by_key(|m| m.month);
    Ok(report)
}

/// Months open at once. While one month's files are read, the next hashes its bronze and
/// reads its map and totals; while that one commits, the next one's files are read. A third
/// was open once, because without it the threads waited on the hashing (a 12-month build
/// took 8 % longer). They no longer do: 4.69–4.93 s against 4.63–4.87 with three, 4 rounds
/// alternating. A 36-month sync's month phase peaked at 121–127 MiB against 130–136 (its
/// peaks fell while an LSOA month was read beside a third month's map and totals).
const MONTHS_OPEN: usize = 2;

/// The manifests of the months to build: asked for, and changed since their last build.
async fn plan_months(
    lake: &Lake,
    options: &BuildOptions,
    aliases: &Aliases,
    report: &mut BuildReport,
) -> Result<Vec<Manifest>, Error> {
    let mut todo = Vec::new();
    let months = bronze_months(lake).await?;
    let asked = |m: &Month| options.months.is_empty() || options.months.contains(m);
    // Every month's manifest and state are read to find the few that changed: at once, so
    // that a sync of one new month does not wait on a round trip per month of history.
    let read: Vec<Result<_, Error>> = futures::stream::iter(months.into_iter().filter(asked))
        .map(|month| async move {
            let manifest = Manifest::read(lake, month)
                .await
                .map_err(|source| BuildError::Manifest { month, source })?
                .ok_or(BuildError::ManifestMissing { month })?;
            Ok((manifest, MonthState::read(lake, month).await?))
        })
        .buffered(crate::lake::READS_AT_ONCE)
        .collect()
        .await;
    for found in read {
        let (manifest, previous) = found?;
        let fingerprint = plan::fingerprint(&manifest);
        let current = previous
            .as_ref()
            .is_some_and(|s| s.silver(Some(&fingerprint), aliases) != SilverState::Stale);
        if current && !options.force {
            report.unchanged += 1;
        } else {
            todo.push(manifest);
        }
    }
    Ok(todo)
}

async fn open_tables(lake: &Lake) -> Result<Open, DeltaError> {
    use futures::TryStreamExt;
    const COMMITTED: [TableDef; 8] = [
        FACT_QUINARY,
        FACT_SINGLE_AGE,
        FACT_LSOA,
        FACT_ORG_QUINARY,
        FACT_ORG_SINGLE_AGE,
        PRACTICE_SNAPSHOT,
        QUARANTINE,
        FILES,
    ];
    // Two at a time, one per core (a long history's open parses thousands of file
    // statistics). Never many more: delta-rs's log replay holds a blocking thread while it
    // waits on the store, and nine opens at once left none to serve them (the build hung).
    let opened: Vec<(&'static str, deltalake::DeltaTable)> =
        futures::stream::iter(COMMITTED.into_iter().chain([QUALITY]))
            .map(|def| async move {
                let clock = std::time::Instant::now();
                let table = delta::open_or_create(lake, &def).await?;
                let ms = clock.elapsed().as_millis() as u64;
                tracing::debug!(table = def.name, ms, "months: table open");
                Ok((def.name, table))
            })
            .buffered(2)
            .try_collect()
            .await?;
    let commit: HashMap<&'static str, Mutex<deltalake::DeltaTable>> = opened
        .into_iter()
        .filter(|(name, _)| *name != QUALITY.name)
        .map(|(name, table)| (name, Mutex::new(table)))
        .collect();
    let targets = Targets {
        quinary: commit[FACT_QUINARY.name].lock().await.clone(),
        single: commit[FACT_SINGLE_AGE.name].lock().await.clone(),
        lsoa: commit[FACT_LSOA.name].lock().await.clone(),
        practices: commit[PRACTICE_SNAPSHOT.name].lock().await.clone(),
        org_quinary: commit[FACT_ORG_QUINARY.name].lock().await.clone(),
        org_single: commit[FACT_ORG_SINGLE_AGE.name].lock().await.clone(),
    };
    Ok(Open {
        targets: Arc::new(targets),
        commit,
    })
}

/// Builds, gates, commits and records one month.
async fn build_one(
    lake: &Lake,
    opening: &Opening<'_>,
    manifest: Manifest,
    at: DateTime<Utc>,
    aliases: &Aliases,
) -> Result<MonthReport, Error> {
    let month = manifest.month;
    let started = std::time::Instant::now();
    let aliases = aliases.fresh();
    let plan = plan::choose(&manifest);
    tracing::info!(%month, files = plan.used.len(), unused = plan.unused.len(),
        source_set = %plan.source_set, "building");
    let fingerprint = plan::fingerprint_of(&manifest, &plan);
    let previous = MonthState::read(lake, month).await?;
    let held = reissue::held_sizes(lake, month, previous.as_ref(), &fingerprint)
        .await
        .map_err(BuildError::from)?;
    let known = previous
        .as_ref()
        .map(|p| p.bronze.as_slice())
        .unwrap_or_default();
    let (built, bronze) = build_silver(lake, opening, &plan, month, at, &aliases, known).await?;
    // A month kept out for altered bronze is recorded as never current, so the build after
    // `fetch --verify` restores the bytes (the manifest unchanged) reads it again.
    let fingerprint = match &built {
        Err(MonthError::BronzeAltered { .. }) => format!("{fingerprint}+bronze-altered"),
        _ => fingerprint,
    };
    let (mut results, built) = gate(built, month)?;
    let evidence = built.as_ref().map(|b| &b.aggregates);
    let found = findings(&mut results, evidence, held.as_ref(), &plan, month);
    let failures: Vec<String> = results
        .iter()
        .filter(|r| r.is_hard_failure())
        .map(|r| match r.table {
            Some(table) => format!("{} ({table} kept out)", r.message),
            None => r.message.clone(),
        })
        .collect();
    let warnings: Vec<String> = results
        .iter()
        .filter(|r| !r.passed && r.severity == Severity::Warning)
        .map(|r| r.message.clone())
        .collect();
    let blocked = Blocked::from(&results);
    let committed = !blocked.month;
    let mut tables = Vec::new();
    let mut quarantined = 0;
    if let Some(mut built) = built {
        // The evidence has been judged: its sums are not held while the month commits.
        drop(std::mem::take(&mut built.aggregates));
        quarantined = built.quarantine.len();
        tables = commit_month(lake, opening.get().await?, month, built, &blocked, at).await?;
    }
    delta::append(lake, &QUALITY, vec![quality_batch(&results, at)])
        .await
        .map_err(BuildError::from)?;
    crate::failpoint::point("month-quality");
    let state = MonthState {
        month,
        fingerprint,
        committed,
        built_at: at,
        source_set: plan.source_set.clone(),
        failures: failures.clone(),
        warnings: warnings.len(),
        tables,
        national: found.national,
        families_missing: found.families_missing,
        reissue_changed: found.reissue_changed,
        builder: BUILDER.to_string(),
        aliases_used: aliases.used(),
        aliases_in_force: aliases.entries().into_iter().collect(),
        bronze,
    };
    state.write(lake).await?;
    crate::failpoint::point("state");
    let mut report = month_report(&state, plan.source_set, warnings, quarantined);
    report.bytes_read = plan.used.iter().map(|c| c.size).sum();
    tracing::info!(%month, committed, rows = report.rows.iter().map(|(_, n)| n).sum::<u64>(),
        kept_out = report.kept_out.len(), ms = started.elapsed().as_millis() as u64, "built");
    Ok(report)
}

/// What the month's build found beyond the gate: recorded in its state.
struct Findings {
    national: Option<NationalFigure>,
    families_missing: Vec<String>,
    reissue_changed: Option<usize>,
}

/// The national figure, the missing families, what a reissue changed (added to `results`),
/// and a warning when the set of files used could not be confirmed.
fn findings(
    results: &mut Vec<QualityResult>,
    evidence: Option<&Aggregates>,
    held: Option<&std::collections::BTreeMap<String, u64>>,
    plan: &plan::Plan,
    month: Month,
) -> Findings {
    let reissue = match (held, evidence) {
        (Some(held), Some(agg)) => rules::reissue_changes(held, agg, month),
        _ => Vec::new(),
    };
    let reissue_changed = (!reissue.is_empty()).then(|| reissue.len() - 1);
    results.extend(reissue);
    if let Some(warning) = &plan.unconfirmed {
        let message = format!("month {month}: {warning}");
        let warn = Severity::Warning;
        results.push(QualityResult::fail(
            Some(month),
            Rule::SourceSet,
            warn,
            "release",
            None,
            message,
        ));
    }
    Findings {
        national: evidence.map(national_figure),
        families_missing: evidence
            .map(|a| a.missing.iter().map(|m| m.to_string()).collect())
            .unwrap_or_default(),
        reissue_changed,
    }
}

/// The report of a month from its recorded state.
fn month_report(
    state: &MonthState,
    source_set: String,
    warnings: Vec<String>,
    quarantined: usize,
) -> MonthReport {
    let tables_in = |wanted: SilverState| state.tables.iter().filter(move |t| t.state == wanted);
    MonthReport {
        month: state.month,
        committed: state.committed,
        rows: tables_in(SilverState::Built)
            .map(|t| (t.table.clone(), t.rows))
            .collect(),
        kept_out: tables_in(SilverState::Failed)
            .map(|t| t.table.clone())
            .collect(),
        source_set,
        failures: state.failures.clone(),
        warnings,
        quarantined,
        bytes_read: 0,
    }
}

/// The month's national figure, published and from its practices.
fn national_figure(agg: &Aggregates) -> NationalFigure {
    NationalFigure {
        published: agg.published_national().map(|n| n.0),
        practices: agg
            .has_practice_figures()
            .then(|| agg.national_from_practices()),
    }
}

/// Reads the month's files into uncommitted data files, on a blocking thread; with the
/// bronze files read and what proved them (`known`: what the month's last build recorded).
async fn build_silver(
    lake: &Lake,
    opening: &Opening<'_>,
    plan: &plan::Plan,
    month: Month,
    at: DateTime<Utc>,
    aliases: &Aliases,
    known: &[BronzeRead],
) -> Result<(Result<MonthBuilt, MonthError>, Vec<BronzeRead>), Error> {
    let started = std::time::Instant::now();
    let worker_err = |e: &dyn std::fmt::Display| BuildError::Worker {
        month,
        reason: e.to_string(),
    };
    let tmp = tempfile::tempdir().map_err(|e| worker_err(&e))?;
    let limits = opening.options.limits;
    let (inputs, bronze) =
        match open_bronze(lake, month, &plan.used, tmp.path(), limits, known).await? {
            Ok(opened) => opened,
            Err(altered) => return Ok((Err(altered), Vec::new())),
        };
    tracing::debug!(%month, ms = started.elapsed().as_millis() as u64, "bronze unpacked");
    let with = MonthContext {
        handle: tokio::runtime::Handle::current(),
        built_at: at,
        aliases: aliases.clone(),
    };
    let inputs = Arc::new(inputs);
    let panicked = || BuildError::Worker {
        month,
        reason: "its thread panicked".to_string(),
    };
    let read = Arc::clone(&inputs);
    let workers = &opening.workers;
    // The map and totals need no table: read while the tables open.
    let head = workers.run(month, move || read_head(month, &read, with));
    let (head, open) = futures::join!(head, opening.get());
    let (head, open) = (head.ok_or_else(panicked)?, open?);
    let head = match head {
        Ok(head) => head,
        Err(e) => return Ok((Err(e), bronze)),
    };
    tracing::debug!(%month, ms = started.elapsed().as_millis() as u64, "head read");
    let jobs = head
        .jobs(&inputs, &open.targets)
        .into_iter()
        .map(|job| workers.run(month, move || job.run()));
    let parts: Option<Vec<Part>> = futures::future::join_all(jobs).await.into_iter().collect();
    let parts = parts.ok_or_else(panicked)?;
    let unused = plan.unused.clone();
    let targets = Arc::clone(&open.targets);
    let built = workers
        .run(month, move || {
            finish(head, parts, &unused, &inputs, &targets)
        })
        .await;
    Ok((built.ok_or_else(panicked)?, bronze))
}

/// The quality gate: the month's rules over its evidence, or the reason it could not be read.
fn gate(
    built: Result<MonthBuilt, MonthError>,
    month: Month,
) -> Result<(Vec<QualityResult>, Option<MonthBuilt>), Error> {
    match built {
        Ok(mut built) => {
            let mut results = rules::month_rules(&built.aggregates, month);
            results.append(&mut built.table_failures);
            Ok((results, Some(built)))
        }
        Err(MonthError::Format { source, .. }) => {
            Ok((unreadable(month, format!("month {month}: {source}")), None))
        }
        Err(altered @ MonthError::BronzeAltered { .. }) => {
            Ok((unreadable(month, altered.to_string()), None))
        }
        Err(MonthError::Delta { source, .. }) => Err(BuildError::from(source).into()),
    }
}

/// The one result of a month whose files could not be read: it keeps the month out.
fn unreadable(month: Month, message: String) -> Vec<QualityResult> {
    let error = Severity::Error;
    vec![QualityResult::fail(
        Some(month),
        Rule::FileReadable,
        error,
        "file",
        None,
        message,
    )]
}

/// What the gate keeps out: the whole month, or only some tables' month.
struct Blocked {
    month: bool,
    tables: Vec<&'static str>,
}

impl Blocked {
    fn from(results: &[QualityResult]) -> Blocked {
        let hard = results.iter().filter(|r| r.is_hard_failure());
        Blocked {
            month: hard.clone().any(|r| r.table.is_none()),
            tables: hard.filter_map(|r| r.table).collect(),
        }
    }

    fn commits(&self, def: &TableDef) -> bool {
        !self.month && !self.tables.contains(&def.name)
    }
}

/// Commits each table's new partition (or deletes the unused data files of a table the gate
/// kept out), then the month's quarantined rows and file accounting.
async fn commit_month(
    lake: &Lake,
    open: &Open,
    month: Month,
    built: MonthBuilt,
    blocked: &Blocked,
    at: DateTime<Utc>,
) -> Result<Vec<TableState>, Error> {
    for (def, adds) in built.discarded {
        delete_files(lake, &def, adds).await;
    }
    let mut tables = Vec::new();
    for (def, adds) in built.adds {
        let commit = blocked.commits(&def);
        tables.push(commit_table(lake, open, month, def, adds, commit).await?);
    }
    let replace = |def: TableDef, batch| async move {
        let mut table = open.commit[def.name].lock().await;
        let adds = write_now(&table, &def, batch).await?;
        delta::replace_partition(&mut table, &def, month.first_day(), adds).await
    };
    replace(QUARANTINE, quarantine_batch(month, &built.quarantine, at))
        .await
        .map_err(BuildError::from)?;
    crate::failpoint::point("quarantine");
    replace(FILES, built.files)
        .await
        .map_err(BuildError::from)?;
    Ok(tables)
}

async fn commit_table(
    lake: &Lake,
    open: &Open,
    month: Month,
    def: TableDef,
    adds: Vec<deltalake::kernel::Add>,
    commit: bool,
) -> Result<TableState, Error> {
    let rows: u64 = adds.iter().map(rows_in).sum();
    if !commit {
        delete_files(lake, &def, adds).await;
        return Ok(TableState {
            table: def.name.to_string(),
            state: SilverState::Failed,
            rows: 0,
            version: None,
        });
    }
    let mut table = open.commit[def.name].lock().await;
    let version = delta::replace_partition(&mut table, &def, month.first_day(), adds)
        .await
        .map_err(BuildError::from)?;
    crate::failpoint::point(&format!("commit:{}", def.name));
    Ok(TableState {
        table: def.name.to_string(),
        state: SilverState::Built,
        rows,
        version: Some(version),
    })
}

fn rows_in(add: &deltalake::kernel::Add) -> u64 {
    add.get_stats()
        .ok()
        .flatten()
        .map(|s| s.num_records as u64)
        .unwrap_or(0)
}

/// Deletes data files written and never committed (best effort: a file left behind is
/// read by no version, and `vacuum` removes it).
async fn delete_files(lake: &Lake, def: &TableDef, adds: Vec<deltalake::kernel::Add>) {
    for add in adds {
        if let Ok(path) = object_store::path::Path::parse(format!("{}/{}", def.path, add.path)) {
            let _ = lake.delete(&path).await;
        }
    }
}
