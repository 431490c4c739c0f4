//! `gplake vacuum`: Delta maintenance for every table in the lake. Removes data files that no
//! version within the retention reads (and a killed run's never-committed files once they
//! are as old), writes a checkpoint, and drops log entries older than the same retention.
//!
//! It never changes what any version within the retention reads: time travel (`query
//! --as-of`) keeps working for the whole retention, 30 days by default, so this month can
//! always be compared with the lake as it was a month ago. Bronze is never touched.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::catalog::{LAKE_TABLES, TableDef};
use crate::clock::Clock;
use crate::delta::{self, DeltaError};
use crate::lake::Lake;

/// The retention when none is given: a month of time travel, with room to spare.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// Below this, a retention could remove files that a long-running reader or writer still
/// needs (Delta's own default for `delta.deletedFileRetentionDuration`).
pub const MIN_RETENTION_DAYS: u32 = 7;

/// What to do.
#[derive(Debug, Clone)]
pub struct VacuumOptions {
    /// Keep every file a version younger than this many days reads.
    pub retention_days: u32,
    /// Report what would be removed; remove nothing and write nothing.
    pub dry_run: bool,
}

impl Default for VacuumOptions {
    fn default() -> Self {
        VacuumOptions {
            retention_days: DEFAULT_RETENTION_DAYS,
            dry_run: false,
        }
    }
}

/// What happened to one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableVacuum {
    /// The table.
    pub table: &'static str,
    /// Its version after the vacuum.
    pub version: Option<u64>,
    /// Data files removed (or, in a dry run, that would be).
    pub files_removed: Vec<String>,
    /// The version a checkpoint was written at (none in a dry run).
    pub checkpoint: Option<u64>,
    /// Log entries older than the retention that the checkpoint made unneeded, removed.
    pub log_entries_removed: usize,
}

/// The outcome of `gplake vacuum`.
#[derive(Debug, Clone, Serialize)]
pub struct VacuumReport {
    /// Whether anything was removed.
    pub dry_run: bool,
    /// The retention applied, in days.
    pub retention_days: u32,
    /// Versions committed before this moment may no longer be readable by time travel.
    pub history_from: DateTime<Utc>,
    /// Each table that exists, in catalog order.
    pub tables: Vec<TableVacuum>,
}

impl VacuumReport {
    /// Data files removed across all tables.
    pub fn files_removed(&self) -> usize {
        self.tables.iter().map(|t| t.files_removed.len()).sum()
    }
}

/// Why a vacuum failed.
#[derive(Debug, thiserror::Error)]
pub enum VacuumError {
    /// The retention is shorter than is safe.
    #[error(
        "a retention of {days} days is too short: it must be at least {MIN_RETENTION_DAYS} days, so readers and writers still running never lose their files"
    )]
    RetentionTooShort {
        /// The retention asked for.
        days: u32,
    },
    /// The lake refused or failed (or would not keep commits safe).
    #[error(transparent)]
    Lake(#[from] crate::lake::LakeError),
    /// A table could not be vacuumed.
    #[error(transparent)]
    Delta(#[from] DeltaError),
}

/// Vacuums and checkpoints every table of the lake.
pub async fn vacuum(
    lake: &Lake,
    clock: &dyn Clock,
    options: &VacuumOptions,
) -> Result<VacuumReport, VacuumError> {
    if options.retention_days < MIN_RETENTION_DAYS {
        return Err(VacuumError::RetentionTooShort {
            days: options.retention_days,
        });
    }
    if !options.dry_run {
        lake.ensure_conditional_writes().await?;
    }
    let retention = Duration::days(i64::from(options.retention_days));
    let now = clock.now();
    let mut tables = Vec::new();
    for def in &LAKE_TABLES {
        if let Some(done) = table(lake, def, retention, now, options.dry_run).await? {
            tables.push(done);
        }
    }
    Ok(VacuumReport {
        dry_run: options.dry_run,
        retention_days: options.retention_days,
        history_from: now - retention,
        tables,
    })
}

async fn table(
    lake: &Lake,
    def: &TableDef,
    retention: Duration,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<Option<TableVacuum>, DeltaError> {
    let Some(table) = delta::open(lake, def).await? else {
        return Ok(None);
    };
    let (mut table, vacuumed) = delta::vacuum(lake, table, def, retention, now, dry_run).await?;
    let mut checkpoint = None;
    let mut log_entries_removed = 0;
    if !dry_run {
        table
            .update_incremental(None)
            .await
            .map_err(|e| DeltaError {
                table: def.name,
                source: Box::new(e),
            })?;
        delta::checkpoint(&table, def).await?;
        checkpoint = table.version();
        log_entries_removed = delta::cleanup_log(&table, def, now - retention).await?;
    }
    tracing::info!(
        table = def.name,
        files = vacuumed.files.len(),
        dry_run,
        "vacuumed"
    );
    Ok(Some(TableVacuum {
        table: def.name,
        version: table.version(),
        files_removed: vacuumed.files,
        checkpoint,
        log_entries_removed,
    }))
}
