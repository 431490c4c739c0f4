//! What the lake holds, month by month: bronze files and revisions, whether silver is
//! current, which source set was used, the quality verdict, and the gaps.

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::Serialize;

use crate::build::derived;
use crate::build::state::{MonthState, NationalFigure, SilverState, TableState};
use crate::error::Error;
use crate::fetch::Manifest;
use crate::lake::Lake;
use crate::layout;
use crate::month::Month;
use crate::silver::{bronze_months, plan_fingerprint};

/// One month's standing.
#[derive(Debug, Clone, Serialize)]
pub struct MonthStatus {
    /// The month.
    pub month: Month,
    /// Files in bronze.
    pub bronze_files: usize,
    /// Files that were reissued (have earlier revisions).
    pub revised_files: usize,
    /// The page's published date.
    pub published: Option<NaiveDate>,
    /// Where the month's silver stands.
    pub silver: SilverState,
    /// Each table's part of the month's last build.
    pub tables: Vec<TableState>,
    /// When silver was last built.
    pub built_at: Option<DateTime<Utc>>,
    /// Which set of files silver used.
    pub source_set: Option<String>,
    /// Hard failures of the last build.
    pub failures: Vec<String>,
    /// Warnings of the last build.
    pub warnings: usize,
    /// The national figure of the last build: published and from the practices.
    pub national: Option<NationalFigure>,
    /// File families the release does not have.
    pub families_missing: Vec<String>,
    /// Practices whose list size the last reissue changed.
    pub reissue_changed: Option<usize>,
}

impl MonthStatus {
    /// Tables whose month the gate kept out while the rest of the month was published.
    pub fn kept_out_tables(&self) -> Vec<&str> {
        if self.silver != SilverState::Built {
            return Vec::new();
        }
        self.tables
            .iter()
            .filter(|t| t.state == SilverState::Failed)
            .map(|t| t.table.as_str())
            .collect()
    }

    /// What a reader should know about the month beyond its state, one phrase each.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let kept_out = self.kept_out_tables();
        if !kept_out.is_empty() {
            notes.push(format!("kept out: {}", kept_out.join(", ")));
        }
        let missing = |f: &str| self.families_missing.iter().any(|m| m == f);
        if self.built_at.is_some() && missing("5-year age file") && missing("single-age files") {
            notes.push("no age files in this release".into());
        } else if !self.families_missing.is_empty() {
            notes.push(format!(
                "no {} in this release",
                self.families_missing.join(", ")
            ));
        }
        if let Some(n) = self.reissue_changed {
            notes.push(format!("reissue changed {n} practices' list sizes"));
        }
        notes
    }

    /// `ok`, `2 warnings`, `FAILED (3)`, `PARTIAL (1)` or `-` when never built.
    pub fn quality(&self) -> String {
        match (self.built_at, self.failures.len(), self.warnings) {
            (None, _, _) => "-".into(),
            (_, f, _) if f > 0 && self.silver == SilverState::Built => format!("PARTIAL ({f})"),
            (_, 0, 0) => "ok".into(),
            (_, 0, 1) => "1 warning".into(),
            (_, 0, w) => format!("{w} warnings"),
            (_, f, _) => format!("FAILED ({f})"),
        }
    }
}

/// The whole lake.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The lake URL.
    pub lake: String,
    /// Every month with bronze.
    pub months: Vec<MonthStatus>,
    /// Monthly-era months (from 2017-05) missing between the first and last month held.
    pub gaps: Vec<Month>,
    /// The most recent build.
    pub last_build: Option<DateTime<Utc>>,
    /// Derived tables (dims, gold) behind silver: a build brings them in step.
    pub derived_behind: Vec<String>,
    /// Set when the lake was written by an earlier gplake (the next build rebuilds it).
    pub upgrade_needed: Option<String>,
}

impl Status {
    /// True when any month, or any table's month, is kept out by the quality gate.
    pub fn any_failed(&self) -> bool {
        self.months
            .iter()
            .any(|m| m.silver == SilverState::Failed || !m.kept_out_tables().is_empty())
    }

    /// True when the quality gate fails: a month kept out, or derived tables behind silver.
    pub fn gate_failed(&self) -> bool {
        self.any_failed() || !self.derived_behind.is_empty()
    }

    /// Why silver is older than `max_age_days` allows on `today`, if it is: the snapshot date
    /// of its newest built month (the 1st of the month) against today. For freshness alerts.
    pub fn staleness(&self, today: NaiveDate, max_age_days: u32) -> Option<String> {
        let newest = self
            .months
            .iter()
            .filter(|m| m.silver == SilverState::Built)
            .map(|m| m.month)
            .max();
        let Some(newest) = newest else {
            return Some(format!(
                "silver holds no month yet (--max-age {max_age_days})"
            ));
        };
        let age = (today - newest.first_day()).num_days();
        (age > i64::from(max_age_days)).then(|| {
            format!(
                "the newest month in silver is {newest}, {age} days old: more than --max-age {max_age_days} (is the scheduled sync running?)"
            )
        })
    }

    /// The next command to run, if something needs doing.
    pub fn next_step(&self) -> Option<String> {
        if self.months.is_empty() {
            return Some("gplake sync".into());
        }
        let behind = |m: &MonthStatus| matches!(m.silver, SilverState::Stale | SilverState::Absent);
        if self.upgrade_needed.is_some() || self.months.iter().any(behind) {
            return Some("gplake build".into());
        }
        if !self.derived_behind.is_empty() {
            return Some(format!(
                "gplake build  (derived tables behind silver: {})",
                self.derived_behind.join(", ")
            ));
        }
        let kept_out =
            |m: &&MonthStatus| m.silver == SilverState::Failed || !m.kept_out_tables().is_empty();
        self.months.iter().find(kept_out).map(|m| {
            format!(
                "gplake check  (month {} is kept out: fix or wait for a corrected reissue, then gplake sync; gplake build --month {} --force to retry)",
                m.month, m.month
            )
        })
    }
}

/// Reads the status of `lake`.
pub async fn status(lake: &Lake) -> Result<Status, Error> {
    layout::check_known(lake).await?;
    let states = MonthState::all(lake).await?;
    let aliases = crate::build::aliases::in_force(lake).await?;
    let mut months = Vec::new();
    let manifests: Vec<(Month, Option<Manifest>)> = {
        futures::stream::iter(bronze_months(lake).await?)
            .map(|month| async move { (month, Manifest::read(lake, month).await.ok().flatten()) })
            .buffered(crate::lake::READS_AT_ONCE)
            .collect()
            .await
    };
    for (month, manifest) in manifests {
        let state = states.iter().find(|s| s.month == month);
        let current = manifest.as_ref().map(plan_fingerprint);
        let silver = state.map_or(SilverState::Absent, |s| {
            s.silver(current.as_deref(), &aliases)
        });
        months.push(MonthStatus {
            month,
            bronze_files: manifest.as_ref().map(|m| m.files.len()).unwrap_or(0),
            revised_files: manifest
                .as_ref()
                .map(|m| m.files.iter().filter(|f| !f.revisions.is_empty()).count())
                .unwrap_or(0),
            published: manifest.as_ref().and_then(|m| m.published),
            silver,
            tables: state.map(|s| s.tables.clone()).unwrap_or_default(),
            built_at: state.map(|s| s.built_at),
            source_set: state.map(|s| s.source_set.clone()),
            failures: state.map(|s| s.failures.clone()).unwrap_or_default(),
            warnings: state.map(|s| s.warnings).unwrap_or(0),
            national: state.and_then(|s| s.national),
            families_missing: state
                .map(|s| s.families_missing.clone())
                .unwrap_or_default(),
            reissue_changed: state.and_then(|s| s.reissue_changed),
        });
    }
    let held: Vec<Month> = months.iter().map(|m| m.month).collect();
    let monthly_from = Month::new(2017, 5).expect("valid");
    let gaps = match (held.iter().find(|m| **m >= monthly_from), held.last()) {
        (Some(first), Some(last)) => Month::range(*first, *last)
            .filter(|m| !held.contains(m))
            .collect(),
        _ => Vec::new(),
    };
    let found = layout::layout(lake).await?;
    let upgrade_needed = found.filter(|l| *l < layout::LAYOUT).map(|l| {
        format!("the lake was written by an earlier gplake (layout {l}): the next gplake build or sync rebuilds silver, dims and gold from bronze")
    });
    let derived_behind = match upgrade_needed {
        Some(_) => Vec::new(),
        None => derived::behind(lake)
            .await
            .map_err(crate::build::BuildError::from)?,
    };
    Ok(Status {
        derived_behind,
        upgrade_needed,
        lake: lake.url().to_string(),
        last_build: states.iter().map(|s| s.built_at).max(),
        months,
        gaps,
    })
}
