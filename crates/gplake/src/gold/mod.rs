//! Gold: the tables analysts ask for most — practice list sizes with month-over-month change
//! and quality flags, and organisation populations both as published and restated to the
//! latest geography. Derived from silver at pinned versions whenever silver moved on, again
//! only for what can differ: the list sizes of changed months ([`list_sizes`]), and the
//! organisation figures of months whose inputs changed when every other month's rows stand
//! as they are (no practice moved, no organisation renamed); the rest is kept from gold's
//! previous version, in the files that hold it. Both are made a month at a time
//! ([`org_figures`]), many months written a file a span ([`write_by_span`]). The build
//! pipeline records which versions each was derived from.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use deltalake::arrow::array::AsArray;
use deltalake::arrow::datatypes::Int64Type;
use deltalake::arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt};

use crate::catalog::{
    DIM_ORGANISATION, DIM_PRACTICE, FACT_ORG_QUINARY, FACT_ORG_SINGLE_AGE, ORG_POPULATION,
    PRACTICE_SNAPSHOT, TableDef,
};
use crate::delta::{self, DeltaError, FileSpan};
use crate::lake::Lake;
use crate::memory::Release;
use crate::month::Month;
use crate::session::{self, Session, date_list};

pub(crate) mod list_sizes;
pub(crate) mod org_figures;

/// The tables gold reads through the derivation's session (the list sizes read `quality`
/// straight from its files).
pub(crate) const SOURCES: [TableDef; 5] = [
    PRACTICE_SNAPSHOT,
    FACT_ORG_QUINARY,
    FACT_ORG_SINGLE_AGE,
    DIM_PRACTICE,
    DIM_ORGANISATION,
];

/// What the organisation figures of gold's previous version may keep.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    /// The version of `org_population_monthly` that holds them (the current one).
    pub(crate) version: u64,
    /// The months whose organisation facts changed since: their publisher's figures, and
    /// so their differences from them, are made again.
    pub(crate) changed: BTreeSet<NaiveDate>,
    /// The months whose `practice_snapshot` changed since: their sums of practices are
    /// made again.
    pub(crate) snapshot_changed: BTreeSet<NaiveDate>,
    /// When the dims are only extended by months after this one (the latest the kept
    /// figures' dims described): if no practice's organisations changed in those months,
    /// the latest geography of every practice-month already summed is the same, and so are
    /// the restated figures of the unchanged months, which are then kept too.
    pub(crate) geography_through: Option<NaiveDate>,
}

/// Practices whose latest organisations differ from those of their latest version up to
/// `{through}`: none, and the restatement of months already summed is unchanged.
const MOVED: &str = "
before AS (SELECT practice_code, MAX(valid_from) AS vf FROM dim_practice WHERE valid_from <= DATE '{through}' GROUP BY practice_code),
was AS (SELECT d.* FROM dim_practice d JOIN before b ON b.practice_code = d.practice_code AND b.vf = d.valid_from)
SELECT COUNT(*) AS moved FROM was JOIN cur ON cur.practice_code = was.practice_code
WHERE (was.pcn_code IS DISTINCT FROM cur.pcn_code) OR (was.sub_icb_code IS DISTINCT FROM cur.sub_icb_code)
   OR (was.icb_code IS DISTINCT FROM cur.icb_code) OR (was.region_code IS DISTINCT FROM cur.region_code)";

/// True when the restated figures of the months `kept` keeps need not be made again.
async fn geography_kept(session: &Session, kept: &Kept) -> Result<bool, DeltaError> {
    let Some(through) = kept.geography_through else {
        return Ok(false);
    };
    let sql = format!(
        "WITH {CURRENT},{}",
        MOVED.replace("{through}", &through.to_string())
    );
    counts_none(session, &sql).await
}

/// Each practice's organisations in its latest version in the dims (`cur`).
const CURRENT: &str = "last AS (SELECT practice_code, MAX(valid_from) AS vf FROM dim_practice GROUP BY practice_code),
cur AS (SELECT d.practice_code, d.pcn_code, d.sub_icb_code, d.icb_code, d.region_code FROM dim_practice d JOIN last ON last.practice_code = d.practice_code AND last.vf = d.valid_from)";

/// Each organisation's name in its latest version in the dims (`names`).
const NAMES: &str = "lastorg AS (SELECT org_type, org_code, MAX(valid_from) AS vf FROM dim_organisation GROUP BY org_type, org_code),
names AS (SELECT o.org_type, o.org_code, o.org_name FROM dim_organisation o JOIN lastorg l ON l.org_type = o.org_type AND l.org_code = o.org_code AND l.vf = o.valid_from)";

/// Organisations whose latest name differs from that of their latest version up to
/// `{through}`: none, and the names in the rows of months already summed are current.
const RENAMED: &str = "
before AS (SELECT org_type, org_code, MAX(valid_from) AS vf FROM dim_organisation WHERE valid_from <= DATE '{through}' GROUP BY org_type, org_code),
was AS (SELECT o.org_type, o.org_code, o.org_name FROM dim_organisation o JOIN before b ON b.org_type = o.org_type AND b.org_code = o.org_code AND b.vf = o.valid_from)
SELECT COUNT(*) AS renamed FROM was JOIN names n ON n.org_type = was.org_type AND n.org_code = was.org_code
WHERE was.org_name IS DISTINCT FROM n.org_name";

/// True when no organisation was renamed since the months `kept` keeps were derived: the
/// names in their rows are current.
async fn names_kept(session: &Session, kept: &Kept) -> Result<bool, DeltaError> {
    let Some(through) = kept.geography_through else {
        return Ok(false);
    };
    let sql = format!(
        "WITH {NAMES},{}",
        RENAMED.replace("{through}", &through.to_string())
    );
    counts_none(session, &sql).await
}

/// True when `sql`, a `COUNT(*)`, counts nothing (false when it gives no count at all).
async fn counts_none(session: &Session, sql: &str) -> Result<bool, DeltaError> {
    let batches = session::collect(session, Some(&ORG_POPULATION), sql).await?;
    let count = batches.first().and_then(|b| {
        let counts = b.column(0).as_primitive_opt::<Int64Type>()?;
        (!counts.is_empty()).then(|| counts.value(0))
    });
    Ok(count == Some(0))
}

/// What rebuilding the organisation figures wrote.
#[derive(Debug, Clone)]
pub(crate) struct OrgWritten {
    /// The version of `org_population_monthly` written.
    pub(crate) version: u64,
    /// True when the restated figures of the months already summed were kept as they were.
    pub(crate) geography_kept: bool,
    /// The months written, the others' files being kept; `None` when the table was
    /// written whole.
    pub(crate) months: Option<BTreeSet<NaiveDate>>,
}

/// Rebuilds `org_population_monthly` from the session's dims and the organisation facts
/// and `practice_snapshot` at `versions` (by table name, as the session pins them), keeping
/// what `kept` allows of its previous version: only the months that changed are made when
/// every other month's rows stand as they are, else the whole table.
pub(crate) async fn rebuild_org_populations(
    lake: &Lake,
    session: &Session,
    versions: &BTreeMap<String, u64>,
    kept: Option<&Kept>,
    release: Release,
) -> Result<OrgWritten, DeltaError> {
    let def = ORG_POPULATION;
    let clock = std::time::Instant::now();
    let sources = &org_figures::Sources::open(lake, versions).await?;
    let geography = &org_figures::Geography::read(session, CURRENT, NAMES).await?;
    let select = |span| async move { Ok(org_figures::figures(sources, geography, span)) };
    let restated_kept = match kept {
        Some(kept) => geography_kept(session, kept).await?,
        None => false,
    };
    if let Some(kept) = kept.filter(|_| restated_kept)
        && names_kept(session, kept).await?
        && let Some(mut table) = delta::open_version(lake, &def, Some(kept.version)).await?
    {
        let changed = kept
            .changed
            .union(&kept.snapshot_changed)
            .copied()
            .collect();
        let replaced = write_months(&mut table, def, changed, select, release).await?;
        if let Some((version, months)) = replaced {
            let ms = clock.elapsed().as_millis() as u64;
            let written = months.len();
            tracing::debug!(
                table = def.name,
                ms,
                months = written,
                "gold: months written"
            );
            return Ok(OrgWritten {
                version,
                geography_kept: true,
                months: Some(months),
            });
        }
    }
    let version = write_whole(lake, def, &sources.months(), select, release).await?;
    let ms = clock.elapsed().as_millis() as u64;
    tracing::debug!(table = def.name, ms, "gold: written");
    Ok(OrgWritten {
        version,
        geography_kept: restated_kept,
        months: None,
    })
}

/// A table in more files than this is written again whole, a file a [`SPAN`]: a reader
/// opens every file, and a monthly sync adds one.
const MOST_FILES: usize = 24;

/// The files holding any of `months`, and `months` grown to every month those files span
/// (a replaced file's other months are written again too); `None` when a file's span is
/// unknown.
fn replaced_files(
    files: Vec<FileSpan>,
    mut months: BTreeSet<NaiveDate>,
) -> Option<(Vec<deltalake::kernel::Remove>, BTreeSet<NaiveDate>)> {
    let mut replaced = vec![false; files.len()];
    loop {
        let mut grew = false;
        for (i, f) in files.iter().enumerate() {
            let (first, last) = f.dates?;
            if replaced[i] || months.range(first..=last).next().is_none() {
                continue;
            }
            replaced[i] = true;
            grew = true;
            months.extend(Month::range(Month::of(first), Month::of(last)).map(Month::first_day));
        }
        if !grew {
            break;
        }
    }
    let removes = files
        .into_iter()
        .zip(replaced)
        .filter_map(|(f, r)| r.then_some(f.remove))
        .collect();
    Some((removes, months))
}

/// Writes `months` (derived by `select`), and the other months of the files that hold any
/// of them, in place of those files of `table` (as loaded), in one commit; returns the
/// version and the months written, which may be none (then nothing is committed). `None`
/// when the files cannot say which months they hold, or the table would then be in too many
/// pieces: the caller writes it whole.
pub(crate) async fn write_months<F, Fut, S>(
    table: &mut deltalake::DeltaTable,
    def: TableDef,
    months: BTreeSet<NaiveDate>,
    select: F,
    release: Release,
) -> Result<Option<(u64, BTreeSet<NaiveDate>)>, DeltaError>
where
    F: FnMut(BTreeSet<NaiveDate>) -> Fut,
    Fut: std::future::Future<Output = Result<S, DeltaError>>,
    S: Stream<Item = Result<RecordBatch, DeltaError>>,
{
    let files = delta::file_spans(table, &def, "snapshot_date").await?;
    let total = files.len();
    let Some((replaced, months)) = replaced_files(files, months) else {
        return Ok(None);
    };
    if months.is_empty() {
        let version = table.version().unwrap_or(0);
        return Ok(Some((version, months)));
    }
    if total - replaced.len() + 1 > MOST_FILES {
        return Ok(None);
    }
    let predicate = format!("snapshot_date IN ({})", date_list(&months));
    let predicate = Some(predicate);
    let version = write_by_span(table, def, &months, replaced, predicate, select, release).await?;
    Ok(Some((version, months)))
}

/// Writes `months` (derived by `select`) in place of every file of `def`, in one commit;
/// returns the version written.
pub(crate) async fn write_whole<F, Fut, S>(
    lake: &Lake,
    def: TableDef,
    months: &BTreeSet<NaiveDate>,
    select: F,
    release: Release,
) -> Result<u64, DeltaError>
where
    F: FnMut(BTreeSet<NaiveDate>) -> Fut,
    Fut: std::future::Future<Output = Result<S, DeltaError>>,
    S: Stream<Item = Result<RecordBatch, DeltaError>>,
{
    if months.is_empty() {
        return delta::overwrite(lake, &def, Vec::new()).await;
    }
    let mut table = delta::open_or_create(lake, &def).await?;
    let files = delta::file_spans(&table, &def, "snapshot_date").await?;
    let removed = files.into_iter().map(|f| f.remove).collect();
    write_by_span(&mut table, def, months, removed, None, select, release).await
}

/// Months gold writes to one file when it derives many. Each file's rows are written
/// batch by batch as they are made, never gathered (gathered and then cast to the table's
/// types, a span's rows were held three times over), and the file is flushed before the next
/// span's rows are made: its writer holds the file's encoded rows until then. The rows
/// themselves are made a month at a time.
const SPAN: usize = 12;

/// Rows in a row group of gold's files: about a month's (6,500 practices, or 4,200
/// organisation figures). The Parquet writer holds a row group's columns uncompressed
/// until it ends, and by its default (a million rows) a span's whole file's were held: 2.3
/// of the 19.5 MB live at a 36-month derivation's organisation figures, twelve months'
/// columns where a 1-month lake's file holds one month's.
const ROW_GROUP_ROWS: usize = 8192;

/// Writes what `select` gives for each span of `months` into new files of `table`, and
/// commits them in place of `removed` (with `predicate` naming the rows replaced, all when
/// `None`); returns the version.
async fn write_by_span<F, Fut, S>(
    table: &mut deltalake::DeltaTable,
    def: TableDef,
    months: &BTreeSet<NaiveDate>,
    removed: Vec<deltalake::kernel::Remove>,
    predicate: Option<String>,
    mut select: F,
    release: Release,
) -> Result<u64, DeltaError>
where
    F: FnMut(BTreeSet<NaiveDate>) -> Fut,
    Fut: std::future::Future<Output = Result<S, DeltaError>>,
    S: Stream<Item = Result<RecordBatch, DeltaError>>,
{
    let properties = delta::parquet_builder(&def)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer = delta::writer_with(table, &def, properties)?;
    let months: Vec<NaiveDate> = months.iter().copied().collect();
    let mut added = Vec::new();
    for span in months.chunks(SPAN) {
        let clock = std::time::Instant::now();
        let batches = select(span.iter().copied().collect()).await?;
        let mut batches = std::pin::pin!(batches);
        while let Some(batch) = batches.next().await {
            let batch = conform(&def, batch?)?;
            if batch.num_rows() > 0 {
                delta::write(&mut writer, &def, batch).await?;
            }
        }
        // A file a span: the writer holds its file's encoded rows until it is flushed, so
        // one file for the whole history held every month's (9 of a 36-month
        // derivation's 23 MB at its peak).
        added.extend(delta::flush(&mut writer, &def).await?);
        let ms = clock.elapsed().as_millis() as u64;
        tracing::debug!(
            table = def.name,
            ms,
            months = span.len(),
            "gold: span written"
        );
        release.everywhere().await;
    }
    delta::replace_with(table, &def, removed, added, predicate).await
}

/// Casts a batch of query output to the table's exact schema (types and nullability).
fn conform(def: &TableDef, batch: RecordBatch) -> Result<RecordBatch, DeltaError> {
    let schema = def.arrow_schema();
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| deltalake::arrow::compute::cast(batch.column(i), f.data_type()))
        .collect::<Result<Vec<_>, _>>();
    columns
        .and_then(|columns| RecordBatch::try_new(schema, columns))
        .map_err(|e| session::delta_err(Some(def), e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn span(first: &str, last: &str, path: &str) -> FileSpan {
        let mut remove = deltalake::kernel::Remove {
            path: path.into(),
            data_change: true,
            ..Default::default()
        };
        remove.deletion_timestamp = Some(0);
        FileSpan {
            remove,
            dates: Some((day(first), day(last))),
        }
    }

    #[test]
    fn a_new_month_replaces_no_file() {
        let files = vec![span("2026-01-01", "2026-05-01", "a")];
        let months = BTreeSet::from([day("2026-06-01"), day("2026-07-01")]);
        let (removed, months) = replaced_files(files, months.clone()).unwrap();
        assert!(removed.is_empty());
        assert_eq!(months.len(), 2);
    }

    #[test]
    fn a_changed_month_replaces_its_file_and_every_month_in_it() {
        let files = vec![
            span("2026-01-01", "2026-03-01", "a"),
            span("2026-03-01", "2026-04-01", "b"),
            span("2026-05-01", "2026-05-01", "c"),
        ];
        let (removed, months) = replaced_files(files, BTreeSet::from([day("2026-02-01")])).unwrap();
        let paths: Vec<_> = removed.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["a", "b"], "b shares March with a");
        assert_eq!(
            months.into_iter().collect::<Vec<_>>(),
            ["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01"].map(day)
        );
    }

    #[test]
    fn a_file_without_statistics_proves_nothing() {
        let mut unknown = span("2026-01-01", "2026-01-01", "a");
        unknown.dates = None;
        assert!(replaced_files(vec![unknown], BTreeSet::new()).is_none());
    }
}
