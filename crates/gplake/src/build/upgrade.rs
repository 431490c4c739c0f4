//! Upgrading a lake: one written by an earlier gplake (an earlier [`crate::layout`]) is
//! rebuilt from bronze, the source of truth, by the next build; one written by a newer gplake
//! is refused.

use object_store::path::Path;

use super::BuildError;
use crate::error::Error;
use crate::lake::{Lake, LakeError};
use crate::layout::{DERIVED_ROOTS, LAYOUT, layout, record};

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
