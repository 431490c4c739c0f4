//! The lake's layout version, `_meta/lake.json`, so no gplake ever misreads a lake written
//! by another: an earlier layout is rebuilt from bronze by the next build
//! (`build::upgrade`), a newer one is refused by every command.
//!
//! Layouts: 1 (no `lake.json`): the first releases. 2: per-table month states, `files`
//! partitioned by month, derived tables recorded against the silver versions they read.
//! 3: the published organisation fact tables, `quality.skipped` and `quality.table_name`
//! (per-table gating), org populations with a `published` basis and nullable male/female.

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::lake::{Lake, LakeError};

/// The layout this gplake writes.
pub const LAYOUT: u32 = 3;

pub(crate) const INFO: &str = "_meta/lake.json";

/// Everything derived from bronze: removed when an earlier layout is rebuilt.
pub(crate) const DERIVED_ROOTS: [&str; 3] = ["silver", "gold", "_meta"];

#[derive(Debug, Serialize, Deserialize)]
struct LakeInfo {
    layout: u32,
    written_by: String,
}

/// The layout of the lake: `None` when it holds nothing derived yet.
pub async fn layout(lake: &Lake) -> Result<Option<u32>, LakeError> {
    if let Some(bytes) = lake.get_bytes(&Path::from(INFO)).await? {
        let info: Option<LakeInfo> = serde_json::from_slice(&bytes).ok();
        return Ok(Some(info.map_or(0, |i| i.layout)));
    }
    Ok(has_derived(lake).await?.then_some(1))
}

async fn has_derived(lake: &Lake) -> Result<bool, LakeError> {
    for root in DERIVED_ROOTS {
        if !lake.list(&Path::from(root)).await?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Refuses a lake written by a newer gplake (its layout is not known here).
pub async fn check_known(lake: &Lake) -> Result<(), LayoutError> {
    match layout(lake).await? {
        Some(found) if found > LAYOUT => Err(LayoutError::Newer {
            found,
            known: LAYOUT,
        }),
        _ => Ok(()),
    }
}

/// A lake this gplake cannot read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The store failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// The lake was written by a newer gplake.
    #[error(
        "the lake was written by a newer gplake (layout {found}; this gplake knows up to {known}): upgrade gplake"
    )]
    Newer {
        /// The lake's layout.
        found: u32,
        /// The newest layout this gplake writes.
        known: u32,
    },
}

/// Records that the lake now has this gplake's layout.
pub(crate) async fn record(lake: &Lake) -> Result<(), LakeError> {
    let info = LakeInfo {
        layout: LAYOUT,
        written_by: format!("gplake {}", env!("CARGO_PKG_VERSION")),
    };
    let json = serde_json::to_vec_pretty(&info).expect("serialisable");
    lake.put_bytes(&Path::from(INFO), Bytes::from(json)).await
}
