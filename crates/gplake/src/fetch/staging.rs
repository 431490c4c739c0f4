//! The lake-side waiting room for downloaded files, so local temporary disk holds only the
//! files being downloaded right now.
//!
//! Each new or changed file goes, as soon as it has arrived, to `_staging/<run>/<month>-<i>`
//! in the lake, and its temporary copy is removed; when all the files of its month have
//! arrived, each is moved into bronze under the month's lease (`commit.rs`). A month whose
//! download fails never touches bronze. A run clears its own staging folder when it ends;
//! [`sweep`] clears the folders of runs gone from this host or over a day old, and aborts
//! the uploads they left open.

use std::time::{Duration, SystemTime};

use object_store::path::Path;

use crate::lake::{Lake, LakeError};
use crate::month::Month;
use crate::owner::Owner;

/// The staging prefix.
pub const STAGING_DIR: &str = "_staging";

/// Older than this, a run's leftovers are abandoned whoever left them.
const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// This run's staging folder.
pub(crate) struct Staging {
    run: String,
}

impl Staging {
    pub(crate) fn new() -> Staging {
        Staging {
            run: Owner::me().tag(),
        }
    }

    /// Where the `i`-th file of `month` waits.
    pub(crate) fn path(&self, month: Month, i: usize) -> Path {
        Path::from(format!("{STAGING_DIR}/{}/{month}-{i}", self.run))
    }

    /// Removes whatever this run still has waiting.
    pub(crate) async fn clear(&self, lake: &Lake) -> Result<(), LakeError> {
        remove_run(lake, &self.run).await
    }
}

/// Clears the staging folders and open uploads of runs that are gone: how many were cleared.
pub(crate) async fn sweep(lake: &Lake) -> Result<usize, LakeError> {
    let mut cleared = lake.abort_abandoned_uploads().await?;
    for run in lake.folders(&Path::from(STAGING_DIR)).await? {
        let abandoned = match Owner::from_tag(&run) {
            Some((owner, made)) => owner.dead_here() || age(made) > ABANDONED_AFTER,
            None => true,
        };
        if abandoned {
            tracing::info!(run = %run, "removed files a stopped run left in staging");
            remove_run(lake, &run).await?;
            cleared += 1;
        }
    }
    Ok(cleared)
}

fn age(made: SystemTime) -> Duration {
    SystemTime::now().duration_since(made).unwrap_or_default()
}

async fn remove_run(lake: &Lake, run: &str) -> Result<(), LakeError> {
    let dir = Path::from(format!("{STAGING_DIR}/{run}"));
    if let Some(local) = lake.local_file(&dir) {
        // A local store's half-written uploads are hidden from listings: remove the folder.
        return match std::fs::remove_dir_all(&local) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LakeError::LocalIo {
                file: local.display().to_string(),
                source,
            }),
        };
    }
    for meta in lake.list(&dir).await? {
        lake.delete(&meta.location).await?;
    }
    Ok(())
}
