//! The build pipeline: the one place where bronze becomes silver, checks and derived tables.
//!
//! It runs, in order: plan (which months' bronze changed) → build each month (silver, into
//! uncommitted data files) → quality gate (the month's rules) → commit the month (one commit
//! per table) → record the month's state → bring the derived tables in step (series checks,
//! dims, gold, each recorded against the silver versions it read).
//!
//! Guarantees:
//! - a month that fails its gate leaves its previous silver exactly as it was;
//! - a month's state is written only after all its commits, so a killed build rebuilds it;
//! - every build, even one with no month to build, checks the derived-tables record and
//!   rebuilds what is behind, so a run killed between a month's commit and gold is repaired
//!   by the next run; commits that lose a race with another run are retried;
//! - a lake written by an earlier layout is rebuilt from bronze, never misread ([`upgrade`]).

pub mod aliases;
mod changes;
pub mod derived;
mod months;
mod record;
mod reissue;
mod sizes;
pub mod state;
pub mod upgrade;
mod workers;

use serde::Serialize;

use crate::check::QualityResult;
use crate::clock::Clock;
use crate::error::Error;
use crate::lake::Lake;
use crate::month::Month;

pub use derived::DerivedReport;
pub use months::MonthReport;

/// One step of a build, for progress displays.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// The months to build are known.
    Planned {
        /// How many months will be built.
        months: usize,
    },
    /// A month was built (committed or kept out).
    MonthDone {
        /// The month.
        month: Month,
        /// True when committed.
        committed: bool,
        /// Rows written to silver.
        rows: u64,
        /// Bytes of bronze read.
        bytes: u64,
    },
    /// Dims and gold are being brought in step.
    Deriving,
    /// The build is over (the report follows).
    Finished,
}

/// Where build events go.
pub type BuildProgress = std::sync::Arc<dyn Fn(BuildEvent) + Send + Sync>;

/// What to build.
#[derive(Clone, Default)]
pub struct BuildOptions {
    /// Only these months (all months with bronze when empty). Derived tables are still
    /// brought in step for the whole lake.
    pub months: Vec<Month>,
    /// Rebuild even when bronze has not changed.
    pub force: bool,
    /// Months built at once (default: the number of cores).
    pub jobs: usize,
    /// Stops the build at its next safe point when tripped.
    pub cancel: crate::Cancel,
    /// Receives the build's progress.
    pub progress: Option<BuildProgress>,
    /// What a bronze file may hold (ZIP members, line length) before it is refused.
    pub limits: crate::formats::reader::InputLimits,
    /// How the allocator hands freed memory back to the system. The binary owns the
    /// allocator, so it says how (e.g. mimalloc's `mi_collect`); without it, the allocator
    /// keeps freed pages for reuse and a long build's memory grows with the months it has
    /// built.
    pub memory: Option<MemoryHooks>,
}

pub use crate::memory::MemoryHooks;

/// Eager release while alive: the derivation's memory handed back as it is freed.
struct Eager(Option<MemoryHooks>);

impl Eager {
    fn on(hooks: Option<MemoryHooks>) -> Eager {
        if let Some(hooks) = hooks {
            (hooks.eager)(true);
        }
        Eager(hooks)
    }
}

impl Drop for Eager {
    fn drop(&mut self) {
        if let Some(hooks) = self.0 {
            (hooks.eager)(false);
        }
    }
}

impl std::fmt::Debug for BuildOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildOptions")
            .field("months", &self.months)
            .field("force", &self.force)
            .field("jobs", &self.jobs)
            .field("cancelled", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl BuildOptions {
    pub(crate) fn emit(&self, event: BuildEvent) {
        if let Some(progress) = &self.progress {
            progress(event);
        }
    }

    pub(crate) fn check_cancel(&self) -> Result<(), BuildError> {
        match self.cancel.is_cancelled() {
            true => Err(BuildError::Cancelled),
            false => Ok(()),
        }
    }
}

/// What a build did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BuildReport {
    /// Set when the lake was written by an earlier gplake and was rebuilt from bronze.
    pub upgraded: Option<String>,
    /// Months built (committed or kept out).
    pub months: Vec<MonthReport>,
    /// Months skipped because their bronze had not changed.
    pub unchanged: usize,
    /// Series-wide results (gaps, month-over-month).
    pub series: Vec<QualityResult>,
    /// What bringing dims and gold in step did.
    pub derived: DerivedReport,
}

impl BuildReport {
    /// True when any month, or any table's month, failed a hard rule (exit 3).
    pub fn gate_failed(&self) -> bool {
        self.months
            .iter()
            .any(|m| !m.committed || !m.kept_out.is_empty())
    }

    /// One line: `N months built (R rows), F kept out, U unchanged`.
    pub fn summary(&self) -> String {
        let built = self.months.iter().filter(|m| m.committed).count();
        let failed = self.months.len() - built;
        let partial = self
            .months
            .iter()
            .filter(|m| !m.kept_out.is_empty() && m.committed)
            .count();
        let rows: u64 = self
            .months
            .iter()
            .filter(|m| m.committed)
            .flat_map(|m| m.rows.iter().map(|r| r.1))
            .sum();
        let warnings: usize = self.months.iter().map(|m| m.warnings.len()).sum::<usize>()
            + self.series.iter().filter(|r| !r.passed).count();
        format!(
            "silver: {built} months built ({rows} rows){}, {failed} kept out by the quality gate, {} unchanged, {warnings} warnings",
            if partial > 0 {
                format!(", {partial} with a table kept out")
            } else {
                String::new()
            },
            self.unchanged
        )
    }
}

/// Runs the pipeline over the lake's bronze.
pub async fn build(
    lake: &Lake,
    clock: &dyn Clock,
    options: &BuildOptions,
) -> Result<BuildReport, Error> {
    lake.ensure_conditional_writes().await?;
    let upgraded = upgrade::prepare(lake).await?;
    let mut options = options.clone();
    if upgraded.is_some() {
        options.force = true;
        options.months.clear();
    }
    let mut report = months::build_months(lake, clock, &options).await?;
    report.upgraded = upgraded;
    options.check_cancel()?;
    options.emit(BuildEvent::Deriving);
    let started = std::time::Instant::now();
    let eager = Eager::on(options.memory);
    let release = crate::memory::Release::new(options.memory);
    report.derived = derived::bring_in_step(lake, clock, release).await?;
    drop(eager);
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "dims and gold in step"
    );
    options.emit(BuildEvent::Finished);
    report.series = match &report.derived.series {
        Some(series) => series.clone(),
        None => derived::series_results(lake).await?,
    };
    if report.upgraded.is_some() {
        crate::layout::record(lake).await?;
    }
    Ok(report)
}

/// A failure that stops the whole build (storage, Delta); file problems are per month and
/// end as quality results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The lake failed.
    #[error(transparent)]
    Lake(#[from] crate::lake::LakeError),
    /// A Delta table failed.
    #[error(transparent)]
    Delta(#[from] crate::delta::DeltaError),
    /// A bronze manifest is unreadable.
    #[error("month {month}: {source}")]
    Manifest {
        /// The month.
        month: Month,
        /// The cause.
        source: crate::fetch::ManifestError,
    },
    /// A month's manifest disappeared between listing and reading (another process removed it).
    #[error(
        "month {month}: its bronze manifest disappeared while the build read it; run the build again"
    )]
    ManifestMissing {
        /// The month.
        month: Month,
    },
    /// A worker thread died or a temporary file could not be made.
    #[error("build of month {month} stopped unexpectedly: {reason}")]
    Worker {
        /// The month.
        month: Month,
        /// Why.
        reason: String,
    },
    /// Other runs kept committing while this one brought dims and gold in step.
    #[error(
        "dims and gold are still behind silver after {attempts} attempts (other runs kept committing); run gplake build again"
    )]
    DerivedBehind {
        /// Attempts made.
        attempts: u32,
    },
    /// The aliases file is not sound (nothing was written).
    #[error(transparent)]
    Aliases(#[from] crate::formats::AliasesError),
    /// The build was cancelled (at a safe point: what was committed stays, the rest is
    /// picked up by the next run).
    #[error("cancelled; what was committed stays, and the next run carries on")]
    Cancelled,
    /// The lake was written by a newer gplake, with a layout this one does not know.
    #[error(
        "the lake was written by a newer gplake (layout {found}; this gplake knows up to {known}): upgrade gplake"
    )]
    NewerLayout {
        /// The lake's layout.
        found: u32,
        /// The newest layout this gplake writes.
        known: u32,
    },
}

/// The series checks over the latest silver (gaps, month-over-month), without recording them.
pub async fn series(lake: &Lake) -> Result<Vec<QualityResult>, Error> {
    derived::series_results(lake).await
}
