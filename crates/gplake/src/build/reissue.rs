//! What a reissue changed: when a month's bronze changed after it was built, the practice
//! list sizes silver held are read back before they are replaced, so the quality results can
//! name every practice whose figure moved (and by how much).

use std::collections::BTreeMap;

use crate::catalog::PRACTICE_SNAPSHOT;
use crate::delta::{self, DeltaError};
use crate::lake::Lake;
use crate::month::Month;
use crate::session::{self, Pin};

use super::state::MonthState;

/// The list sizes silver holds for `month`, when a previous build of other bronze was
/// committed (`None` for a first build, a rebuild of the same bronze, or a month kept out).
pub(super) async fn held_sizes(
    lake: &Lake,
    month: Month,
    previous: Option<&MonthState>,
    fingerprint: &str,
) -> Result<Option<BTreeMap<String, u64>>, DeltaError> {
    let Some(previous) = previous else {
        return Ok(None);
    };
    if !previous.committed || previous.fingerprint == fingerprint {
        return Ok(None);
    }
    let session = session::internal(lake, &[PRACTICE_SNAPSHOT], Pin::Latest).await?;
    let sql = format!(
        "SELECT practice_code, registered_population FROM practice_snapshot WHERE snapshot_date = DATE '{}' AND registered_population IS NOT NULL",
        month.first_day()
    );
    let batches = session::collect(&session, Some(&PRACTICE_SNAPSHOT), &sql).await?;
    let mut sizes = BTreeMap::new();
    for b in &batches {
        let codes = delta::text_column(b, 0);
        let counts = delta::int_column(b, 1);
        for row in 0..b.num_rows() {
            sizes.insert(codes.value(row).to_string(), counts.value(row) as u64);
        }
    }
    Ok(Some(sizes))
}
