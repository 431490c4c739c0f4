//! What the last build of each month found: `_meta/build/YYYY-MM.json`, one small document
//! per month, written once the month's commits are done — so a month whose state names the
//! bronze it was built from has that build's rows in every table.

use std::fmt;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::formats::Aliases;
use crate::lake::{Lake, LakeError};
use crate::month::Month;
pub use crate::silver::BronzeRead;

/// Where a month's silver stands, for one table or the month as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilverState {
    /// Silver holds the month, built from its current bronze.
    Built,
    /// The quality gate kept the month out (the previous good silver, if any, stays).
    Failed,
    /// Bronze changed since the month was built: a build will bring it up to date.
    Stale,
    /// Never built.
    Absent,
}

impl fmt::Display for SilverState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SilverState::Built => "built",
            SilverState::Failed => "failed",
            SilverState::Stale => "stale",
            SilverState::Absent => "not built",
        })
    }
}

/// One table's part of a month's build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    /// The table.
    pub table: String,
    /// Whether silver holds this build.
    pub state: SilverState,
    /// Rows written (0 when kept out).
    pub rows: u64,
    /// The table version of the commit (none when kept out).
    pub version: Option<u64>,
}

/// The last build of a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthState {
    /// The month.
    pub month: Month,
    /// Digest of the bronze files it was built from.
    pub fingerprint: String,
    /// True when silver holds this build; false when the quality gate kept it out.
    pub committed: bool,
    /// When.
    pub built_at: DateTime<Utc>,
    /// Which set of files was used.
    pub source_set: String,
    /// Hard failures, one line each.
    pub failures: Vec<String>,
    /// Warnings (soft rules that did not hold).
    #[serde(default)]
    pub warnings: usize,
    /// Each table's part.
    #[serde(default)]
    pub tables: Vec<TableState>,
    /// The national figure: published and from the practices.
    #[serde(default)]
    pub national: Option<NationalFigure>,
    /// File families the release does not have (`map`, `5-year age file`, …).
    #[serde(default)]
    pub families_missing: Vec<String>,
    /// Practices whose list size a reissue changed (`None`: not a reissue of a built month).
    #[serde(default)]
    pub reissue_changed: Option<usize>,
    /// The gplake that built it.
    #[serde(default)]
    pub builder: String,
    /// The aliases entries the build read (`table.name=target`).
    #[serde(default)]
    pub aliases_used: Vec<String>,
    /// Every aliases entry in force when it was built.
    #[serde(default)]
    pub aliases_in_force: Vec<String>,
    /// The bronze files read, with the hashes that proved them and the stamps that let the
    /// next build of the month trust those hashes without reading every byte again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bronze: Vec<BronzeRead>,
}

/// The gplake writing states: a month built by another is rebuilt.
pub const BUILDER: &str = concat!("gplake ", env!("CARGO_PKG_VERSION"));

/// A month's national figure: the publisher's (Σ regions) beside the sum of the practices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NationalFigure {
    /// Σ the published region rows, when the release has them.
    pub published: Option<u64>,
    /// Σ practice list sizes (`None` when the release has no practice-level files).
    pub practices: Option<u64>,
}

impl NationalFigure {
    /// `63,012,345 (published 63,012,345)`, or what is known.
    pub fn describe(&self) -> String {
        match (self.practices, self.published) {
            (Some(p), Some(q)) if p == q => format!("{} (= published)", thousands(p)),
            (Some(p), Some(q)) => format!(
                "{} (published {}, difference {:+})",
                thousands(p),
                thousands(q),
                p as i64 - q as i64
            ),
            (Some(p), None) => format!("{} (no published national figure)", thousands(p)),
            (None, Some(q)) => format!("published {} (no practice files)", thousands(q)),
            (None, None) => "-".into(),
        }
    }
}

/// `63012345` → `63,012,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl MonthState {
    fn path(month: Month) -> Path {
        Path::from(format!("_meta/build/{month}.json"))
    }

    /// The state of `month`, if it was ever built.
    pub async fn read(lake: &Lake, month: Month) -> Result<Option<MonthState>, LakeError> {
        Ok(lake
            .get_bytes(&MonthState::path(month))
            .await?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Every month's state, by month.
    pub async fn all(lake: &Lake) -> Result<Vec<MonthState>, LakeError> {
        let objects = lake.list(&Path::from("_meta/build")).await?;
        let read: Vec<Option<Bytes>> = futures::stream::iter(objects)
            .map(|object| async move { lake.get_bytes(&object.location).await })
            .buffered(crate::lake::READS_AT_ONCE)
            .try_collect()
            .await?;
        let mut out: Vec<MonthState> = read
            .iter()
            .flatten()
            .filter_map(|bytes| serde_json::from_slice(bytes).ok())
            .collect();
        out.sort_by_key(|s| s.month);
        Ok(out)
    }

    /// Writes the state in one PUT.
    pub async fn write(&self, lake: &Lake) -> Result<(), LakeError> {
        let json = serde_json::to_vec_pretty(self).expect("serialisable");
        lake.put_bytes(&MonthState::path(self.month), Bytes::from(json))
            .await
    }

    /// Where the month stands against bronze whose fingerprint is `current` and the aliases
    /// in force.
    pub fn silver(&self, current: Option<&str>, aliases: &Aliases) -> SilverState {
        match current {
            Some(c) if c != self.fingerprint => SilverState::Stale,
            _ if !self.vocabulary_current(aliases) => SilverState::Stale,
            _ if self.committed => SilverState::Built,
            _ => SilverState::Failed,
        }
    }

    /// True unless the build is out of date for what reads the files: another gplake built
    /// it, an alias it read changed or went, or (for a month or table kept out) the aliases
    /// changed at all, since a new alias may be what unblocks it. A month that was built
    /// and read no alias is never rebuilt for an alias added for another month.
    fn vocabulary_current(&self, aliases: &Aliases) -> bool {
        let entries = aliases.entries();
        let kept_out =
            !self.committed || self.tables.iter().any(|t| t.state == SilverState::Failed);
        let same = self.aliases_in_force.iter().eq(entries.iter());
        self.builder == BUILDER
            && self.aliases_used.iter().all(|u| entries.contains(u))
            && (!kept_out || same)
    }
}
