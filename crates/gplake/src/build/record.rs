//! Rows the pipeline records about itself: quality results, quarantined rows.

use chrono::{DateTime, Utc};
use deltalake::arrow::record_batch::RecordBatch;

use crate::batch::{Batcher, Val};
use crate::catalog::{QUALITY, QUARANTINE, TableDef};
use crate::check::QualityResult;
use crate::delta::{self, DeltaError};
use crate::formats::Quarantined;
use crate::month::Month;

/// Results as rows of `_meta/quality`.
pub(crate) fn quality_batch(results: &[QualityResult], at: DateTime<Utc>) -> RecordBatch {
    let mut b = Batcher::new(QUALITY);
    for r in results {
        b.push(&[
            Val::Ts(at),
            Val::OptDate(r.month.map(|m| m.first_day())),
            Val::Text(Some(r.rule.as_str())),
            Val::Text(Some(r.severity.label())),
            Val::Bool(r.passed),
            Val::Bool(r.skipped),
            Val::Text(r.table),
            Val::Text(r.subject.as_deref()),
            Val::OptInt(r.expected),
            Val::OptInt(r.actual),
            Val::Text(Some(&r.message)),
        ]);
    }
    b.finish()
}

/// Writes `batch` as new, uncommitted data files of `table`.
pub(crate) async fn write_now(
    table: &deltalake::DeltaTable,
    def: &TableDef,
    batch: RecordBatch,
) -> Result<Vec<deltalake::kernel::Add>, DeltaError> {
    let mut writer = delta::writer(table, def)?;
    if batch.num_rows() > 0 {
        delta::write(&mut writer, def, batch).await?;
    }
    delta::flush(&mut writer, def).await
}

/// Rows of `silver/_quarantine` for a month.
pub(crate) fn quarantine_batch(
    month: Month,
    rows: &[Quarantined],
    at: DateTime<Utc>,
) -> RecordBatch {
    let mut b = Batcher::new(QUARANTINE);
    for q in rows {
        b.push(&[
            Val::Date(month.first_day()),
            Val::Text(Some(&q.file)),
            Val::Int(q.line as i64),
            Val::Text(Some(&q.raw)),
            Val::Text(Some(&q.reason)),
            Val::Ts(at),
        ]);
    }
    b.finish()
}
