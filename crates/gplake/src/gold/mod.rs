//! Gold: the tables analysts ask for most — practice list sizes with month-over-month change
//! and quality flags, and organisation populations both as published and restated to the
//! latest geography. Derived from silver at pinned versions whenever silver moved on, again
//! only for what can differ: the list sizes of changed months ([`list_sizes`]), and the
//! organisation sums of months whose inputs changed (the publisher's figures and the
//! `as_published` sums); the rest is kept from gold's previous version, in the files that
//! hold it when those months' rows stand as they are. Many months are written a file a
//! span ([`write_by_span`]). The build pipeline records which versions each was derived from.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use deltalake::arrow::array::AsArray;
use deltalake::arrow::datatypes::Int64Type;
use deltalake::arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt, TryStreamExt};

use crate::catalog::{
    DIM_ORGANISATION, DIM_PRACTICE, FACT_ORG_QUINARY, FACT_ORG_SINGLE_AGE, ORG_POPULATION,
    PRACTICE_LIST_SIZE, PRACTICE_SNAPSHOT, QUALITY, TableDef,
};
use crate::delta::{self, DeltaError, FileSpan};
use crate::lake::Lake;
use crate::month::Month;
use crate::session::{self, Session, date_list};

pub(crate) mod list_sizes;

/// Practice sums by organisation at every level in one pass (grouping sets), on one basis;
/// `rows` gives each practice-month's figures and its organisation codes on that basis.
/// Male and female are NULL unless every practice has them.
fn org_sums(basis: &str, rows: &str) -> String {
    format!(
        "
SELECT * FROM (
  SELECT snapshot_date, '{basis}' AS basis,
         CASE WHEN grouping(pcn_code) = 0 THEN 'PCN' WHEN grouping(sub_icb_code) = 0 THEN 'SUB_ICB'
              WHEN grouping(icb_code) = 0 THEN 'ICB' ELSE 'REGION' END AS org_type,
         COALESCE(pcn_code, sub_icb_code, icb_code, region_code) AS org_code,
         SUM(registered_population) AS registered_population,
         CASE WHEN COUNT(male) = COUNT(*) THEN SUM(male) END AS male,
         CASE WHEN COUNT(female) = COUNT(*) THEN SUM(female) END AS female
  FROM ({rows}) r
  GROUP BY GROUPING SETS ((snapshot_date, pcn_code), (snapshot_date, sub_icb_code),
                          (snapshot_date, icb_code), (snapshot_date, region_code)))
WHERE org_code IS NOT NULL"
    )
}

/// The publisher's organisation figures: Σ leaf rows of the organisation single-age file,
/// else of the quinary files' organisation rows (one grain per month, never both). Summed
/// from the facts for the months `{fresh}` admits; the other months' figures are kept from
/// gold's previous version (`{kept}`), which summed the very same facts. Gold reads them
/// twice (as rows, and beside each `as_published` sum), so they are selected once and held
/// as [`PUBLISHED_NOW`]: DataFusion inlines a CTE at each use, which summed them twice.
///
/// `{quinary}` admits the months without single-age organisation rows, as a list of dates
/// worked out beforehand: as a `NOT IN` subquery it became a null-aware anti join, which
/// DataFusion builds from its left side, every quinary organisation row of the span (26 of
/// a 36-month derivation's 56 MB heap peak).
const PUBLISHED: &str = "
WITH pub_rows AS (
  SELECT snapshot_date, org_type, org_code, sex, registered_population FROM fact_org_registered_patients_single_age
  WHERE {fresh}
  UNION ALL
  SELECT snapshot_date, org_type, org_code, sex, registered_population FROM fact_org_registered_patients
  WHERE {fresh} AND {quinary}),
summed_published AS (
  SELECT snapshot_date, 'published' AS basis, org_type, org_code,
         SUM(registered_population) AS registered_population,
         SUM(CASE WHEN sex = 'MALE' THEN registered_population ELSE 0 END) AS male,
         SUM(CASE WHEN sex = 'FEMALE' THEN registered_population ELSE 0 END) AS female
  FROM pub_rows GROUP BY snapshot_date, org_type, org_code)
SELECT * FROM summed_published
UNION ALL
SELECT snapshot_date, basis, org_type, org_code, registered_population, male, female
FROM org_population_monthly WHERE basis = 'published' AND {kept}";

/// The session's name for the publisher's figures while gold is written.
const PUBLISHED_NOW: &str = "published_now";

/// The publisher's figures of the months of `span`: summed from the facts for those whose
/// facts changed since gold's previous version (all when `changed` is `None`), kept for
/// the others. `single_age` holds the months with organisation single-age rows.
fn published_sql(
    changed: Option<&BTreeSet<NaiveDate>>,
    span: &BTreeSet<NaiveDate>,
    single_age: &BTreeSet<NaiveDate>,
) -> String {
    let (fresh, kept) = month_filters(changed, span);
    let single_age: BTreeSet<NaiveDate> = single_age.intersection(span).copied().collect();
    let quinary = match single_age.is_empty() {
        true => "TRUE".to_string(),
        false => format!("snapshot_date NOT IN ({})", date_list(&single_age)),
    };
    PUBLISHED
        .replace("{fresh}", &fresh)
        .replace("{kept}", &kept)
        .replace("{quinary}", &quinary)
}

/// SQL conditions on `snapshot_date`, within the months of `span`: the months to sum again
/// (all when `changed` is `None`), and the months to keep from gold's previous version (the
/// others).
fn month_filters(
    changed: Option<&BTreeSet<NaiveDate>>,
    span: &BTreeSet<NaiveDate>,
) -> (String, String) {
    let (fresh, kept) = match changed {
        None => ("TRUE".to_string(), "FALSE".to_string()),
        Some(months) if months.is_empty() => ("FALSE".to_string(), "TRUE".to_string()),
        Some(months) => {
            let list = date_list(months);
            (
                format!("snapshot_date IN ({list})"),
                format!("snapshot_date NOT IN ({list})"),
            )
        }
    };
    let span = span_filter(span);
    (
        format!("({fresh}) AND {span}"),
        format!("({kept}) AND {span}"),
    )
}

/// `snapshot_date IN (…)`: the months of `span`.
fn span_filter(span: &BTreeSet<NaiveDate>) -> String {
    format!("snapshot_date IN ({})", date_list(span))
}

/// Organisation figures. The publisher's are summed again only for months whose
/// organisation facts changed, and the `as_published` sums only for months whose
/// `practice_snapshot` changed (they depend on nothing else); the other months' are kept
/// from gold's previous version. `latest_geography` depends on every month and the latest
/// dims: the unchanged months' sums are kept when no practice moved, else summed again from
/// the kept list sizes when there are some ([`Kept::list_sizes`]), else from the snapshot
/// ([`Geography`]). Only the months of `span` are selected, in the order the joins yield
/// them: sorted, a span's rows were held twice over, for an order no reader needs (each
/// file's months are told by its statistics, and a query orders what it asks for).
fn org_population_sql(
    kept: Option<&Kept>,
    geography: Geography,
    span: &BTreeSet<NaiveDate>,
) -> String {
    let (fresh, kept_sums) = month_filters(kept.map(|k| &k.snapshot_changed), span);
    let span = span_filter(span);
    let as_published = format!(
        "SELECT snapshot_date, pcn_code, sub_icb_code, icb_code, region_code, registered_population, male, female FROM sized WHERE {fresh}"
    );
    let mut parts = vec![org_sums("as_published", &as_published)];
    parts.extend(latest_geography_sums(geography, &fresh, &kept_sums));
    parts.push(format!(
        "SELECT snapshot_date, basis, org_type, org_code, registered_population, male, female
FROM org_population_monthly WHERE basis = 'as_published' AND {kept_sums}"
    ));
    format!(
        "WITH {CURRENT},
{NAMES},
sized AS (SELECT * FROM practice_snapshot WHERE registered_population IS NOT NULL AND {span}),
summed AS ({}),
everything AS (SELECT * FROM {PUBLISHED_NOW} UNION ALL SELECT * FROM summed)
SELECT e.snapshot_date, e.basis, e.org_type, e.org_code, n.org_name, e.registered_population, e.male, e.female,
       CASE WHEN e.basis = 'as_published' THEN e.registered_population - p.registered_population END AS difference_from_published
FROM everything e
LEFT JOIN names n ON n.org_type = e.org_type AND n.org_code = e.org_code
LEFT JOIN {PUBLISHED_NOW} p ON e.basis = 'as_published' AND p.snapshot_date = e.snapshot_date AND p.org_type = e.org_type AND p.org_code = e.org_code",
        parts.join("\nUNION ALL\n")
    )
}

/// Where the `latest_geography` sums of months already summed come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Geography {
    /// Every month summed from `practice_snapshot`.
    Whole,
    /// The unchanged months summed again from the kept list sizes.
    FromKeptListSizes,
    /// The unchanged months' sums kept as they are (no practice's organisations changed).
    Kept,
}

/// The `latest_geography` sums: every practice-month with a population, under its
/// organisations in the latest dims. The months whose snapshot is unchanged (`unchanged`)
/// are kept, or summed from the kept list sizes, and the others (`fresh`) from
/// `practice_snapshot`, each apart (the months never overlap; and DataFusion cannot take
/// the union of two tables' columns whose descriptions differ).
fn latest_geography_sums(geography: Geography, fresh: &str, unchanged: &str) -> Vec<String> {
    let rows = |table: &str, filter: &str| {
        org_sums(
            "latest_geography",
            &format!(
                "SELECT s.snapshot_date, cur.pcn_code, cur.sub_icb_code, cur.icb_code, cur.region_code, s.registered_population, s.male, s.female FROM {table} s JOIN cur ON cur.practice_code = s.practice_code WHERE {filter}"
            ),
        )
    };
    match geography {
        Geography::Whole => vec![rows("sized", "TRUE")],
        Geography::FromKeptListSizes => {
            vec![rows(KEPT_LIST_SIZES, unchanged), rows("sized", fresh)]
        }
        Geography::Kept => vec![
            format!(
                "SELECT snapshot_date, basis, org_type, org_code, registered_population, male, female
FROM org_population_monthly WHERE basis = 'latest_geography' AND {unchanged}"
            ),
            rows("sized", fresh),
        ],
    }
}

/// The tables gold reads.
pub(crate) const SOURCES: [TableDef; 6] = [
    PRACTICE_SNAPSHOT,
    FACT_ORG_QUINARY,
    FACT_ORG_SINGLE_AGE,
    QUALITY,
    DIM_PRACTICE,
    DIM_ORGANISATION,
];

/// The organisation figures gold's previous version summed that this one may keep.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    /// The version of `org_population_monthly` that holds them (the current one).
    pub(crate) version: u64,
    /// The months whose organisation facts changed since: summed again.
    pub(crate) changed: BTreeSet<NaiveDate>,
    /// The months whose `practice_snapshot` changed since: their `as_published` figures are
    /// summed again.
    pub(crate) snapshot_changed: BTreeSet<NaiveDate>,
    /// The version of `practice_list_size_monthly` the same derivation wrote, when it is
    /// still current: its rows of the other months are the snapshot's practice-months with
    /// a population, in a file a span instead of one per month, and the latest-geography
    /// restatement reads them there.
    pub(crate) list_sizes: Option<u64>,
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

/// True when the restated figures of the months `kept` keeps need not be summed again.
async fn geography_kept(session: &Session, kept: &Kept) -> Result<bool, DeltaError> {
    let Some(through) = kept.geography_through.filter(|_| kept.list_sizes.is_some()) else {
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

/// True when every row of the months `kept` keeps is current as it stands: their restated
/// figures are (`Geography::Kept`), and no organisation was renamed since.
async fn rows_kept(session: &Session, kept: &Kept) -> Result<bool, DeltaError> {
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

/// Registered name of the kept list sizes, read beside the table being derived again.
const KEPT_LIST_SIZES: &str = "kept_list_sizes";

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

/// Rebuilds `org_population_monthly` from the session's sources, keeping what `kept` allows
/// of its previous version.
pub(crate) async fn rebuild_org_populations(
    lake: &Lake,
    session: &Session,
    kept: Option<&Kept>,
) -> Result<OrgWritten, DeltaError> {
    match kept {
        Some(kept) => {
            session
                .pin(lake, &ORG_POPULATION, Some(kept.version))
                .await?
        }
        None => session.empty(&ORG_POPULATION)?,
    }
    let geography = match kept {
        Some(kept) if geography_kept(session, kept).await? => Geography::Kept,
        Some(kept) if kept.list_sizes.is_some() => Geography::FromKeptListSizes,
        _ => Geography::Whole,
    };
    if let (Geography::FromKeptListSizes, Some(version)) =
        (geography, kept.and_then(|k| k.list_sizes))
    {
        let def = PRACTICE_LIST_SIZE;
        session
            .pin_as(lake, &def, Some(version), KEPT_LIST_SIZES)
            .await?;
    }
    let written = write_org_populations(lake, session, kept, geography).await;
    session.forget(&ORG_POPULATION, PUBLISHED_NOW)?;
    let (version, months) = written?;
    Ok(OrgWritten {
        version,
        geography_kept: geography == Geography::Kept,
        months,
    })
}

/// Writes the organisation figures: only the months that changed when every other month's
/// rows stand as they are ([`rows_kept`]), else the whole table; returns the version and
/// the months written (`None`: all).
async fn write_org_populations(
    lake: &Lake,
    session: &Session,
    kept: Option<&Kept>,
    geography: Geography,
) -> Result<(u64, Option<BTreeSet<NaiveDate>>), DeltaError> {
    let def = ORG_POPULATION;
    let clock = std::time::Instant::now();
    let single_age = &session::months(session, &FACT_ORG_SINGLE_AGE).await?;
    if let Some(kept) = kept
        && geography == Geography::Kept
        && rows_kept(session, kept).await?
        && let Some(mut table) = delta::open_version(lake, &def, Some(kept.version)).await?
    {
        let changed = kept
            .changed
            .union(&kept.snapshot_changed)
            .copied()
            .collect();
        let select = |span| select_span(session, Some(kept), geography, single_age, span);
        if let Some((version, months)) = write_months(&mut table, def, changed, select).await? {
            let ms = clock.elapsed().as_millis() as u64;
            tracing::debug!(
                table = def.name,
                ms,
                months = months.len(),
                "gold: months written"
            );
            return Ok((version, Some(months)));
        }
    }
    let mut months = session::months(session, &PRACTICE_SNAPSHOT).await?;
    months.extend(single_age);
    months.extend(session::months(session, &FACT_ORG_QUINARY).await?);
    let select = |span| select_span(session, kept, geography, single_age, span);
    let version = write_whole(lake, def, &months, select).await?;
    let ms = clock.elapsed().as_millis() as u64;
    tracing::debug!(table = def.name, ms, "gold: written");
    Ok((version, None))
}

/// Months of organisation figures selected by one query. Each query holds its months'
/// practice-months and their sums (hash joins' build sides and groupings: 5.5 of the 19.5 MB
/// live at a 36-month derivation's organisation figures), and what it holds is kept by the
/// allocator in pages partly used long after: by four months, a 36-month lake's figures
/// derived alone peaked at 38-39 MiB of anonymous memory, against 53-56 by twelve. By one,
/// each query planned afresh cost about 25 ms (a 36-month derivation 1.95 s against 1.13,
/// the 12-month build 4.4 s against 4.0) for a gain in whole syncs no larger than their
/// spread, so four it stays.
const ORG_QUERY_MONTHS: usize = 4;

/// The organisation figures of the months of `span`, [`ORG_QUERY_MONTHS`] at a time, each
/// query run only once the one before has yielded its last row; `single_age` holds the
/// months with organisation single-age rows.
async fn select_span<'a>(
    session: &'a Session,
    kept: Option<&'a Kept>,
    geography: Geography,
    single_age: &'a BTreeSet<NaiveDate>,
    span: BTreeSet<NaiveDate>,
) -> Result<impl Stream<Item = Result<RecordBatch, DeltaError>> + use<'a>, DeltaError> {
    let span: Vec<NaiveDate> = span.into_iter().collect();
    let queries: Vec<BTreeSet<NaiveDate>> = span
        .chunks(ORG_QUERY_MONTHS)
        .map(|months| months.iter().copied().collect())
        .collect();
    let select = move |months| select_months(session, kept, geography, single_age, months);
    Ok(futures::stream::iter(queries).then(select).try_flatten())
}

/// The organisation figures of `months`, with the publisher's figures of those months held
/// for the query's two reads of them.
async fn select_months(
    session: &Session,
    kept: Option<&Kept>,
    geography: Geography,
    single_age: &BTreeSet<NaiveDate>,
    months: BTreeSet<NaiveDate>,
) -> Result<impl Stream<Item = Result<RecordBatch, DeltaError>> + use<>, DeltaError> {
    let def = ORG_POPULATION;
    let published = published_sql(kept.map(|k| &k.changed), &months, single_age);
    session.hold_as(&def, PUBLISHED_NOW, &published).await?;
    let sql = org_population_sql(kept, geography, &months);
    let rows = session::stream(session, Some(&def), &sql).await?;
    Ok(rows.map(|batch| batch.map_err(session::df_err(Some(&ORG_POPULATION)))))
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
    let version = write_by_span(table, def, &months, replaced, Some(predicate), select).await?;
    Ok(Some((version, months)))
}

/// Writes `months` (derived by `select`) in place of every file of `def`, in one commit;
/// returns the version written.
pub(crate) async fn write_whole<F, Fut, S>(
    lake: &Lake,
    def: TableDef,
    months: &BTreeSet<NaiveDate>,
    select: F,
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
    write_by_span(&mut table, def, months, removed, None, select).await
}

/// Months gold writes to one file when it derives many. Each file's rows are written
/// batch by batch as they are made, never gathered (gathered and then cast to the table's
/// types, a span's rows were held three times over), and the file is flushed before the next
/// span's rows are made: its writer holds the file's encoded rows until then. A month's
/// organisation figures are selected [`ORG_QUERY_MONTHS`] at a time, its list sizes a month
/// at a time.
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
