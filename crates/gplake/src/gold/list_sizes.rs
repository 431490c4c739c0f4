//! `practice_list_size_monthly`: each practice's list size per month, its change from the
//! month before and its quality flags. After a first derivation only the months whose rows
//! can differ are derived again — months whose `practice_snapshot` changed, the months after
//! them (their change from last month) and months whose flags changed — and written by
//! replacing the files that hold them in one commit; the rest of the table stays as it is.
//! A sync that adds one month therefore adds one month's file.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use deltalake::arrow::array::Array;

use crate::catalog::{PRACTICE_LIST_SIZE, PRACTICE_SNAPSHOT};
use crate::check::series::SERIES_RULES;
use crate::delta::{self, DeltaError};
use crate::lake::Lake;
use crate::month::Month;
use crate::session::{self, Session, date_list};

/// What the list sizes' current version may keep.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    /// The version of `practice_list_size_monthly` to keep rows of (the current one).
    pub(crate) version: u64,
    /// The months whose `practice_snapshot` changed since that version was derived.
    pub(crate) snapshot_changed: BTreeSet<NaiveDate>,
}

/// What rebuilding the list sizes did.
#[derive(Debug, Clone)]
pub(crate) struct Rebuilt {
    /// The version the table is at.
    pub(crate) version: u64,
    /// The months derived again, the others being kept; `None` when all were.
    pub(crate) months: Option<Vec<NaiveDate>>,
}

/// Brings `practice_list_size_monthly` in step with the session's `practice_snapshot` and
/// `quality`, keeping what `kept` allows.
pub(crate) async fn rebuild(
    lake: &Lake,
    session: &Session,
    kept: Option<&Kept>,
) -> Result<Rebuilt, DeltaError> {
    if let Some(kept) = kept
        && let Some(rebuilt) = rebuild_months(lake, session, kept).await?
    {
        return Ok(rebuilt);
    }
    let version = rebuild_whole(lake, session).await?;
    Ok(Rebuilt {
        version,
        months: None,
    })
}

/// Derives every month again, a span at a time, into files that replace all of the
/// table's in one commit; returns the version written.
async fn rebuild_whole(lake: &Lake, session: &Session) -> Result<u64, DeltaError> {
    let def = PRACTICE_LIST_SIZE;
    let clock = std::time::Instant::now();
    let months = session::months(session, &PRACTICE_SNAPSHOT).await?;
    let select =
        |span| async move { session::stream(session, Some(&def), &sql(Some(&span))).await };
    let version = super::write_whole(lake, def, &months, select).await?;
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        "list sizes: written whole"
    );
    Ok(version)
}

/// Derives again only the months whose rows can differ; `None` when the kept version's
/// files cannot say which months they hold, or would then be in too many pieces.
async fn rebuild_months(
    lake: &Lake,
    session: &Session,
    kept: &Kept,
) -> Result<Option<Rebuilt>, DeltaError> {
    let def = PRACTICE_LIST_SIZE;
    let clock = std::time::Instant::now();
    let Some(mut table) = delta::open_version(lake, &def, Some(kept.version)).await? else {
        return Ok(None);
    };
    session.pin(lake, &def, Some(kept.version)).await?;
    let mut months = with_following(
        &kept.snapshot_changed,
        &session::months(session, &PRACTICE_SNAPSHOT).await?,
    );
    months.extend(reflagged(session).await?);
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        "list sizes: reflagged"
    );
    let select =
        |span| async move { session::stream(session, Some(&def), &sql(Some(&span))).await };
    let Some((version, months)) = super::write_months(&mut table, def, months, select).await?
    else {
        return Ok(None);
    };
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        months = months.len(),
        "list sizes: written"
    );
    Ok(Some(Rebuilt {
        version,
        months: Some(months.into_iter().collect()),
    }))
}

/// The months, and each one's next month in `present` (whose change from last month it
/// feeds).
fn with_following(
    months: &BTreeSet<NaiveDate>,
    present: &BTreeSet<NaiveDate>,
) -> BTreeSet<NaiveDate> {
    let next = months
        .iter()
        .map(|d| Month::of(*d).next().first_day())
        .filter(|d| present.contains(d));
    months.iter().copied().chain(next).collect()
}

/// The months in which some practice's flags now differ from those the kept version holds
/// (a month checked again, or the series checks' new results). Read against the kept rows
/// themselves, not the snapshot's practice-months: the two are the same in every month
/// whose snapshot is unchanged, and the others are derived again whatever this says. One
/// file to read, not one per month of the history.
async fn reflagged(session: &Session) -> Result<BTreeSet<NaiveDate>, DeltaError> {
    dates(session, &reflag_sql()).await
}

fn reflag_sql() -> String {
    format!(
        "WITH {}
SELECT DISTINCT CAST(b.snapshot_date AS VARCHAR) FROM practice_list_size_monthly b
LEFT JOIN flags f ON f.snapshot_date = b.snapshot_date AND f.subject = b.practice_code
WHERE f.flags IS DISTINCT FROM b.quality_flags",
        flags_sql()
    )
}

/// The dates (as text) in the first column of what `sql` selects.
async fn dates(session: &Session, sql: &str) -> Result<BTreeSet<NaiveDate>, DeltaError> {
    let batches = session::collect(session, Some(&PRACTICE_LIST_SIZE), sql).await?;
    let mut months = BTreeSet::new();
    for b in &batches {
        let dates = delta::text_column(b, 0);
        months.extend(
            (0..b.num_rows())
                .filter(|&i| !dates.is_null(i))
                .filter_map(|i| NaiveDate::parse_from_str(dates.value(i), "%Y-%m-%d").ok()),
        );
    }
    Ok(months)
}

/// The list sizes of `months` (all when `None`), in the order the joins yield them: sorted
/// by month and practice, a span's rows were held twice over (the 36-month derivation's
/// peak), and what the order gave no reader needs (each file's months are told by its
/// statistics, and a query orders what it asks for).
fn sql(months: Option<&BTreeSet<NaiveDate>>) -> String {
    let (only, previous) = match months {
        None => (String::new(), String::new()),
        Some(months) => {
            let before: BTreeSet<NaiveDate> = months
                .iter()
                .map(|d| Month::of(*d).prev().first_day())
                .collect();
            (
                format!("WHERE t.snapshot_date IN ({})", date_list(months)),
                format!("AND p.snapshot_date IN ({})", date_list(&before)),
            )
        }
    };
    format!(
        "WITH t AS (
  SELECT snapshot_date, practice_code, practice_name, pcn_code, sub_icb_code, icb_code, region_code,
         registered_population, male, female, total_from
  FROM practice_snapshot WHERE registered_population IS NOT NULL),
{flags}
SELECT t.snapshot_date, t.practice_code, t.practice_name, t.pcn_code, t.sub_icb_code, t.icb_code, t.region_code,
       t.registered_population, t.male, t.female, t.total_from,
       t.registered_population - p.registered_population AS change_from_last_month,
       f.flags AS quality_flags
FROM t
LEFT JOIN t p ON p.practice_code = t.practice_code AND p.snapshot_date = t.snapshot_date - INTERVAL '1 month' {previous}
LEFT JOIN flags f ON f.snapshot_date = t.snapshot_date AND f.subject = t.practice_code
{only}",
        flags = flags_sql()
    )
}

/// `flags`: per month and subject, the rules it failed in its month's latest build and in
/// the latest series checks (recorded apart, at another time), comma-separated in order.
fn flags_sql() -> String {
    let series: Vec<String> = SERIES_RULES
        .iter()
        .map(|r| format!("'{}'", r.as_str()))
        .collect();
    FLAGS.replace("{series}", &series.join(", "))
}

const FLAGS: &str = "latest AS (SELECT snapshot_date, MAX(checked_at) AS at FROM quality WHERE snapshot_date IS NOT NULL AND rule NOT IN ({series}) GROUP BY snapshot_date),
last_series AS (SELECT MAX(checked_at) AS at FROM quality WHERE rule IN ({series})),
current AS (
  SELECT q.snapshot_date, q.subject, q.rule FROM quality q JOIN latest l ON q.snapshot_date = l.snapshot_date AND q.checked_at = l.at
  WHERE NOT q.passed AND q.subject IS NOT NULL AND q.rule NOT IN ({series})
  UNION ALL
  SELECT q.snapshot_date, q.subject, q.rule FROM quality q JOIN last_series s ON q.checked_at = s.at
  WHERE NOT q.passed AND q.subject IS NOT NULL AND q.rule IN ({series})),
flags AS (
  SELECT snapshot_date, subject, array_to_string(array_sort(array_agg(DISTINCT rule)), ',') AS flags
  FROM current GROUP BY snapshot_date, subject)";

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_month_and_the_next_held_are_derived_again() {
        let present = BTreeSet::from([day("2025-12-01"), day("2026-01-01")]);
        let months = with_following(&BTreeSet::from([day("2025-12-01")]), &present);
        assert_eq!(
            months.into_iter().collect::<Vec<_>>(),
            [day("2025-12-01"), day("2026-01-01")]
        );
        let last = with_following(&BTreeSet::from([day("2026-01-01")]), &present);
        assert_eq!(last.into_iter().collect::<Vec<_>>(), [day("2026-01-01")]);
    }
}
