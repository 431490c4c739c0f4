//! Which months of a month-partitioned table changed between two versions, read from the
//! Delta log's own entries, so that a derivation redoes only what those months feed.
//!
//! The answer is `None` whenever the log cannot prove it: an entry gone (vacuumed), a commit
//! that touched the table other than through its month partitions (a schema change, a file
//! without a month), or an action this reader does not know. Callers then derive everything.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use object_store::path::Path;
use serde_json::Value;

use crate::catalog::TableDef;
use crate::lake::{Lake, LakeError};

/// The months whose files commits `from + 1 ..= to` of `def` added or removed.
pub(crate) async fn months_changed(
    lake: &Lake,
    def: &TableDef,
    from: u64,
    to: u64,
) -> Result<Option<BTreeSet<NaiveDate>>, LakeError> {
    let Some(partition) = def.partition else {
        return Ok(None);
    };
    let mut months = BTreeSet::new();
    for version in from.saturating_add(1)..=to {
        let entry = Path::from(format!("{}/_delta_log/{version:020}.json", def.path));
        let Some(bytes) = lake.get_bytes(&entry).await? else {
            return Ok(None);
        };
        let Some(touched) = entry_months(&bytes, partition) else {
            return Ok(None);
        };
        months.extend(touched);
    }
    Ok(Some(months))
}

/// The months one log entry's file actions touched; `None` when it did anything else.
fn entry_months(entry: &[u8], partition: &str) -> Option<BTreeSet<NaiveDate>> {
    let mut months = BTreeSet::new();
    for line in entry.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let action: Value = serde_json::from_slice(line).ok()?;
        let (kind, body) = action.as_object()?.iter().next()?;
        match kind.as_str() {
            "commitInfo" | "txn" => {}
            "add" | "remove" => {
                let month = body.get("partitionValues")?.get(partition)?.as_str()?;
                months.insert(NaiveDate::parse_from_str(month, "%Y-%m-%d").ok()?);
            }
            _ => return None,
        }
    }
    Some(months)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn an_entry_that_replaces_months_names_them() {
        let entry = br#"{"commitInfo":{"operation":"WRITE"}}
{"remove":{"path":"a","partitionValues":{"snapshot_date":"2026-05-01"}}}
{"add":{"path":"b","partitionValues":{"snapshot_date":"2026-05-01"}}}
{"add":{"path":"c","partitionValues":{"snapshot_date":"2026-06-01"}}}
"#;
        let months = entry_months(entry, "snapshot_date").unwrap();
        assert_eq!(
            months.into_iter().collect::<Vec<_>>(),
            [day("2026-05-01"), day("2026-06-01")]
        );
    }

    #[test]
    fn an_entry_that_does_anything_else_proves_nothing() {
        for entry in [
            &br#"{"metaData":{"id":"x"}}"#[..],
            br#"{"add":{"path":"a","partitionValues":{}}}"#,
            br#"{"add":{"path":"a","partitionValues":{"snapshot_date":null}}}"#,
            br#"{"protocol":{"minReaderVersion":3}}"#,
            b"not json",
        ] {
            assert_eq!(entry_months(entry, "snapshot_date"), None, "{entry:?}");
        }
    }
}
