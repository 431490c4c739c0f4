//! What the last build of each month found: `_meta/build/YYYY-MM.json`, one small document
//! per month, written once the month's commits are done.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::lake::{Lake, LakeError};
use crate::month::Month;

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
        let mut out = Vec::new();
        for object in lake.list(&Path::from("_meta/build")).await? {
            if let Some(bytes) = lake.get_bytes(&object.location).await?
                && let Ok(state) = serde_json::from_slice::<MonthState>(&bytes)
            {
                out.push(state);
            }
        }
        out.sort_by_key(|s| s.month);
        Ok(out)
    }

    /// Writes the state in one PUT.
    pub async fn write(&self, lake: &Lake) -> Result<(), LakeError> {
        let json = serde_json::to_vec_pretty(self).expect("serialisable");
        lake.put_bytes(&MonthState::path(self.month), Bytes::from(json))
            .await
    }
}
