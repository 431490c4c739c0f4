//! The lake's layout version, `_meta/lake.json`: a lake written by an earlier gplake is
//! rebuilt from bronze (the source of truth) by the next build, never misread; a lake written
//! by a newer gplake is refused.
//!
//! Layouts: 1 (no `lake.json`): the first releases. 2: per-table month states, `files`
//! partitioned by month, derived tables recorded against the silver versions they read.

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::BuildError;
use crate::error::Error;
use crate::lake::{Lake, LakeError};

/// The layout this gplake writes.
pub const LAYOUT: u32 = 2;

const INFO: &str = "_meta/lake.json";

/// Everything derived from bronze: removed when an earlier layout is rebuilt.
const DERIVED_ROOTS: [&str; 3] = ["silver", "gold", "_meta"];

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

/// Makes the lake ready for this gplake's build. Returns a line for the user when an
/// earlier layout was cleared (the build then rebuilds every month from bronze).
pub(crate) async fn prepare(lake: &Lake) -> Result<Option<String>, Error> {
    match layout(lake).await? {
        Some(LAYOUT) => Ok(None),
        Some(found) if found > LAYOUT => Err(BuildError::NewerLayout {
            found,
            known: LAYOUT,
        }
        .into()),
        None => {
            record(lake).await?;
            Ok(None)
        }
        Some(found) => {
            clear_derived(lake).await?;
            Ok(Some(format!(
                "the lake was written by an earlier gplake (layout {found}): silver, dims and gold are rebuilt from bronze (layout {LAYOUT})"
            )))
        }
    }
}

/// Removes silver, gold and metadata; bronze stays. Safe to repeat after a crash: the layout
/// is recorded only once the rebuild is done.
async fn clear_derived(lake: &Lake) -> Result<(), LakeError> {
    for root in DERIVED_ROOTS {
        for object in lake.list(&Path::from(root)).await? {
            lake.delete(&object.location).await?;
        }
    }
    Ok(())
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
