//! A month's data file of a practice fact table, written with the practice's and the source
//! file's columns given once per run of rows rather than once per row.
//!
//! A practice's rows come together in each age file, and its name, codes and file are the
//! same on every one of them: the run columns ([`RUN_COLUMNS`]) are held as runs, and a
//! row's sex and age as keys, never as text; both are written as hand-made dictionary
//! chunks ([`super::chunk`]). Only the count and the masking flag go through Arrow's column
//! writers. The file is the same Parquet, with the same statistics in its Delta `add`
//! action, as a general writer would make; nothing is visible until the month's build
//! commits the action.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::NaiveDate;
use deltalake::DeltaTableError;
use deltalake::arrow::array::{ArrayRef, BooleanArray, Int64Array};
use deltalake::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use deltalake::kernel::Add;
use deltalake::parquet::arrow::arrow_writer::{
    ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use deltalake::parquet::arrow::{ArrowSchemaConverter, add_encoded_arrow_schema_to_metadata};
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::column::writer::ColumnCloseResult;
use deltalake::parquet::errors::ParquetError;
use deltalake::parquet::file::metadata::ParquetMetaData;
use deltalake::parquet::file::properties::{
    DEFAULT_MAX_ROW_GROUP_ROW_COUNT, EnabledStatistics, WriterPropertiesPtr,
};
use deltalake::parquet::file::statistics::Statistics;
use deltalake::parquet::file::writer::SerializedFileWriter;
use deltalake::parquet::schema::types::{ColumnDescPtr, SchemaDescPtr};
use object_store::ObjectStoreExt;
use serde_json::{Map, Value};

use super::chunk::{self, ChunkOptions};
use crate::batch::BATCH_ROWS;
use crate::catalog::{FACT_QUINARY, FACT_SINGLE_AGE, TableDef};
use crate::delta::DeltaError;
use crate::formats::{AgeKey, SexKey};

/// The columns of a practice fact table that are its practice's or its source file's.
pub(crate) const RUN_COLUMNS: [&str; 12] = [
    "practice_code",
    "practice_name",
    "practice_postcode",
    "pcn_code",
    "sub_icb_code",
    "sub_icb_ons_code",
    "icb_code",
    "icb_ons_code",
    "region_code",
    "region_name",
    "source_file",
    "source_sha256",
];

/// The values of the run columns, in [`RUN_COLUMNS`] order, for a run of rows.
pub(crate) type RunValues = Arc<[Option<String>]>;

/// True when `def`'s files are written in runs: the practice fact tables.
pub(crate) fn written_in_runs(def: &TableDef) -> bool {
    [FACT_QUINARY.name, FACT_SINGLE_AGE.name].contains(&def.name)
}

/// What changes row by row in a practice fact table. The age is the key whose label is
/// written (a single-age row is written as its band in the quinary table).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FactRow {
    pub(crate) sex: SexKey,
    pub(crate) age: AgeKey,
    /// `None` when masked.
    pub(crate) count: Option<i64>,
    pub(crate) suppressed: bool,
}

/// Rows gathered as runs of their run columns' values, and each row's own values.
pub(crate) struct RunBatch {
    runs: Vec<(RunValues, u32)>,
    rows: Vec<FactRow>,
}

/// Gathers rows into [`RunBatch`]es on the reading thread.
pub(crate) struct RunBatcher {
    rows: Vec<FactRow>,
    runs: Vec<(RunValues, u32)>,
    /// Whether the last run takes more rows.
    open: bool,
}

impl RunBatcher {
    pub(crate) fn new() -> RunBatcher {
        RunBatcher {
            rows: Vec::with_capacity(BATCH_ROWS),
            runs: Vec::new(),
            open: false,
        }
    }

    /// Starts a run: the rows pushed from now on have `values` in the run columns.
    pub(crate) fn start(&mut self, values: RunValues) {
        self.runs.push((values, 0));
        self.open = true;
    }

    /// Ends the current run: rows need a new one.
    pub(crate) fn end(&mut self) {
        self.open = false;
    }

    /// The run columns' values of the current run, unless it was ended.
    pub(crate) fn current(&self) -> Option<&RunValues> {
        self.runs.last().filter(|_| self.open).map(|(v, _)| v)
    }

    /// Appends a row of the current run.
    pub(crate) fn push(&mut self, row: FactRow) {
        assert!(self.open, "a row is pushed within a run");
        let (_, rows) = self.runs.last_mut().expect("an open run");
        *rows += 1;
        self.rows.push(row);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.rows.len() >= BATCH_ROWS
    }

    /// The waiting rows; the current run carries on into the next batch.
    pub(crate) fn finish(&mut self) -> RunBatch {
        let next = self.current().map(|v| (Arc::clone(v), 0));
        let runs = std::mem::replace(&mut self.runs, next.into_iter().collect());
        let rows = std::mem::replace(&mut self.rows, Vec::with_capacity(BATCH_ROWS));
        RunBatch { runs, rows }
    }
}

/// Where each of the file's columns comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The run column at this index of [`RUN_COLUMNS`].
    Run(usize),
    Sex,
    Age,
    /// Written by Arrow's column writers.
    Count,
    Suppressed,
}

impl Source {
    /// Where `column` comes from; `None` for a column this writer does not know, which a
    /// change to the table's definition must add here.
    fn of(column: &str) -> Option<Source> {
        match column {
            "sex" => Some(Source::Sex),
            "age" | "age_band" => Some(Source::Age),
            "registered_population" => Some(Source::Count),
            "suppressed" => Some(Source::Suppressed),
            _ => RUN_COLUMNS
                .iter()
                .position(|c| *c == column)
                .map(Source::Run),
        }
    }

    fn by_arrow(self) -> bool {
        matches!(self, Source::Count | Source::Suppressed)
    }
}

/// One data file being written.
pub(crate) struct RunFile {
    def: TableDef,
    writer: SerializedFileWriter<Vec<u8>>,
    columns: ArrowRowGroupWriterFactory,
    props: WriterPropertiesPtr,
    parquet: SchemaDescPtr,
    /// The fields of the columns Arrow's writers write, in file order.
    row_fields: Vec<FieldRef>,
    /// Rows per row group.
    group_rows: usize,
    sources: Vec<Source>,
    /// The row group being filled.
    group: Option<Group>,
    rows: u64,
    store: deltalake::logstore::ObjectStoreRef,
    /// The partition column and the month's value of it.
    partition: (&'static str, String),
}

struct Group {
    /// The count's and the masking flag's writers, in file order.
    columns: Vec<ArrowColumnWriter>,
    runs: Vec<(RunValues, u32)>,
    sexes: Keys<SexKey>,
    ages: Keys<AgeKey>,
    rows: usize,
}

impl Group {
    /// Adds `rows` (the fields of the count and the flag are `fields`).
    fn write(&mut self, fields: &[FieldRef], rows: &[FactRow]) -> Result<(), ParquetError> {
        for row in rows {
            self.sexes.push(row.sex)?;
            self.ages.push(row.age)?;
        }
        let counts: ArrayRef = Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.count)));
        let flags: ArrayRef = Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| Some(r.suppressed)),
        ));
        let columns = self.columns.iter_mut().zip(fields).zip([counts, flags]);
        for ((writer, field), column) in columns {
            for leaf in compute_leaves(field, &column)? {
                writer.write(&leaf)?;
            }
        }
        Ok(())
    }
}

/// A value kept as a key rather than as text: its dictionary slot and its label.
trait Key: Copy + Eq {
    /// A slot below 256 of its own, when the key has one.
    fn slot(self) -> Option<u8>;
    fn text(self) -> String;
}

impl Key for SexKey {
    fn slot(self) -> Option<u8> {
        Some(self as u8)
    }

    fn text(self) -> String {
        self.label().to_string()
    }
}

impl Key for AgeKey {
    fn slot(self) -> Option<u8> {
        match self {
            AgeKey::Year(y) if y < 128 => Some(y),
            AgeKey::Band(b) if b < 32 => Some(128 + b),
            AgeKey::OpenBand(from) if from < 95 => Some(160 + from),
            _ => None,
        }
    }

    fn text(self) -> String {
        self.label()
    }
}

/// One column's keys in a row group: the distinct keys and each row's index into them.
struct Keys<K> {
    keys: Vec<K>,
    /// A slot's index plus one; 0 when not seen.
    slots: [u8; 256],
    ids: Vec<u8>,
}

impl<K> Default for Keys<K> {
    fn default() -> Keys<K> {
        Keys {
            keys: Vec::new(),
            slots: [0; 256],
            ids: Vec::new(),
        }
    }
}

impl<K: Key> Keys<K> {
    fn push(&mut self, key: K) -> Result<(), ParquetError> {
        let slot = key.slot().map(usize::from);
        let id = match slot.map(|s| self.slots[s]) {
            Some(seen) if seen > 0 => seen - 1,
            _ => match self.keys.iter().position(|k| *k == key) {
                Some(id) => id as u8,
                None => self.add(key, slot)?,
            },
        };
        self.ids.push(id);
        Ok(())
    }

    fn add(&mut self, key: K, slot: Option<usize>) -> Result<u8, ParquetError> {
        let id = u8::try_from(self.keys.len())
            .ok()
            .filter(|id| *id < u8::MAX)
            .ok_or_else(|| ParquetError::General("over 254 distinct sexes or ages".into()))?;
        self.keys.push(key);
        if let Some(slot) = slot {
            self.slots[slot] = id + 1;
        }
        Ok(id)
    }

    /// The column's chunk.
    fn encode(
        self,
        column: ColumnDescPtr,
        options: ChunkOptions,
    ) -> Result<(bytes::Bytes, ColumnCloseResult), ParquetError> {
        let labels: Vec<String> = self.keys.iter().map(|k| k.text()).collect();
        let values = labels.iter().map(String::as_str).collect();
        chunk::encode_ids(column, values, self.ids, options)
    }
}

impl RunFile {
    /// A file of `def`'s rows of the month of `date`, to be written to `table`.
    pub(crate) fn new(
        def: TableDef,
        table: &deltalake::DeltaTable,
        date: NaiveDate,
    ) -> Result<RunFile, DeltaError> {
        let e = |source| err(&def, source);
        let partition = def.partition.expect("a practice fact table is partitioned");
        let arrow = file_schema(&def);
        let parquet = Arc::new(ArrowSchemaConverter::new().convert(&arrow).map_err(e)?);
        // The count's and the flag's pages: a page per 20 Ki rows (the default) set up a
        // compressor per page, 1 % of a build; 128 Ki rows are still well under 1 MiB.
        let mut props = crate::delta::parquet_builder(&def)
            .set_data_page_row_count_limit(128 * 1024)
            .build();
        add_encoded_arrow_schema_to_metadata(&arrow, &mut props);
        let props = Arc::new(props);
        let sources = arrow
            .fields()
            .iter()
            .map(|f| {
                Source::of(f.name()).ok_or_else(|| {
                    let why = format!("column {} is not one the run writer knows", f.name());
                    delta_err(&def, DeltaTableError::Generic(why))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let row_fields = arrow
            .fields()
            .iter()
            .zip(&sources)
            .filter(|(_, s)| s.by_arrow())
            .map(|(f, _)| Arc::clone(f))
            .collect();
        let writer =
            SerializedFileWriter::new(Vec::new(), parquet.root_schema_ptr(), props.clone())
                .map_err(e)?;
        let group_rows = props
            .max_row_group_row_count()
            .unwrap_or(DEFAULT_MAX_ROW_GROUP_ROW_COUNT);
        Ok(RunFile {
            def,
            columns: ArrowRowGroupWriterFactory::new(&writer, arrow.clone()),
            writer,
            group_rows,
            props,
            parquet,
            row_fields,
            sources,
            group: None,
            rows: 0,
            store: table.object_store(),
            partition: (partition, date.format("%Y-%m-%d").to_string()),
        })
    }

    /// Encodes `batch`, closing row groups as they fill.
    pub(crate) fn write(&mut self, batch: RunBatch) -> Result<(), DeltaError> {
        let rows = batch.rows.len();
        let mut runs: VecDeque<(RunValues, u32)> = batch.runs.into();
        let mut done = 0;
        while done < rows {
            let group = match self.group.as_mut() {
                Some(group) => group,
                None => self.group.insert(self.new_group()?),
            };
            let take = (self.group_rows - group.rows).min(rows - done);
            group
                .write(&self.row_fields, &batch.rows[done..done + take])
                .map_err(|e| err(&self.def, e))?;
            group.runs.extend(take_runs(&mut runs, take));
            group.rows += take;
            done += take;
            if group.rows == self.group_rows {
                self.close_group()?;
            }
        }
        Ok(())
    }

    /// Writes the file to the store: the action that adds it, or none when it has no rows.
    pub(crate) async fn finish(mut self) -> Result<Vec<Add>, DeltaError> {
        self.close_group()?;
        if self.rows == 0 {
            return Ok(Vec::new());
        }
        let e = |source| err(&self.def, source);
        let metadata = self.writer.finish().map_err(e)?;
        let bytes = std::mem::take(self.writer.inner_mut());
        let (column, value) = &self.partition;
        let path = format!(
            "{column}={value}/part-00000-{}-c000.zstd.parquet",
            uuid::Uuid::new_v4()
        );
        let size = bytes.len() as i64;
        self.store
            .put(&object_store::path::Path::from(path.as_str()), bytes.into())
            .await
            .map_err(|source| delta_err(&self.def, DeltaTableError::ObjectStore { source }))?;
        Ok(vec![Add {
            path,
            partition_values: HashMap::from([(column.to_string(), Some(value.clone()))]),
            size,
            modification_time: chrono::Utc::now().timestamp_millis(),
            data_change: true,
            stats: Some(stats(&metadata, self.rows).to_string()),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        }])
    }

    fn new_group(&self) -> Result<Group, DeltaError> {
        let index = self.writer.flushed_row_groups().len();
        let writers = self
            .columns
            .create_column_writers(index)
            .map_err(|e| err(&self.def, e))?;
        let columns = writers
            .into_iter()
            .zip(&self.sources)
            .filter(|(_, s)| s.by_arrow())
            .map(|(w, _)| w)
            .collect();
        Ok(Group {
            columns,
            runs: Vec::new(),
            sexes: Keys::default(),
            ages: Keys::default(),
            rows: 0,
        })
    }

    /// Writes the row group being filled, its columns in the file's order.
    fn close_group(&mut self) -> Result<(), DeltaError> {
        let Some(group) = self.group.take().filter(|g| g.rows > 0) else {
            return Ok(());
        };
        let e = |source| err(&self.def, source);
        let Group {
            columns,
            runs,
            mut sexes,
            mut ages,
            ..
        } = group;
        let mut by_arrow = columns.into_iter();
        let mut out = self.writer.next_row_group().map_err(e)?;
        for (column, source) in self.parquet.columns().iter().zip(&self.sources) {
            let options = chunk_options(&self.props, column.path());
            let column = column.clone();
            let (bytes, close) = match *source {
                Source::Run(i) => {
                    let runs = runs.iter().map(|(v, n)| (v[i].as_deref(), *n));
                    chunk::encode_runs(column, runs, options)
                }
                Source::Sex => std::mem::take(&mut sexes).encode(column, options),
                Source::Age => std::mem::take(&mut ages).encode(column, options),
                Source::Count | Source::Suppressed => {
                    let writer = by_arrow.next().expect("a writer per Arrow column");
                    let chunk = writer.close().map_err(e)?;
                    chunk.append_to_row_group(&mut out).map_err(e)?;
                    continue;
                }
            }
            .map_err(e)?;
            out.append_column(&bytes, close).map_err(e)?;
        }
        out.close().map_err(e)?;
        self.rows += group.rows as u64;
        Ok(())
    }
}

/// The columns stored in the file: all but the partition column.
fn file_schema(def: &TableDef) -> SchemaRef {
    let all = def.arrow_schema();
    let fields: Vec<_> = all
        .fields()
        .iter()
        .filter(|f| Some(f.name().as_str()) != def.partition)
        .cloned()
        .collect();
    Arc::new(Schema::new(fields))
}

fn chunk_options(
    props: &WriterPropertiesPtr,
    column: &deltalake::parquet::schema::types::ColumnPath,
) -> ChunkOptions {
    let zstd = match props.compression(column) {
        Compression::ZSTD(level) => level,
        _ => ZstdLevel::default(),
    };
    ChunkOptions {
        zstd,
        statistics: props.statistics_enabled(column) != EnabledStatistics::None,
    }
}

/// The first `rows` rows of `runs`, splitting the run they end in.
fn take_runs(runs: &mut VecDeque<(RunValues, u32)>, rows: usize) -> Vec<(RunValues, u32)> {
    let mut taken = Vec::new();
    let mut left = rows as u32;
    while left > 0 {
        let Some((values, n)) = runs.front_mut() else {
            break;
        };
        let here = (*n).min(left);
        taken.push((Arc::clone(values), here));
        *n -= here;
        left -= here;
        if *n == 0 {
            runs.pop_front();
        }
    }
    taken
}

/// The Delta statistics of a file: its rows, and each column's least and greatest value and
/// NULL count across its row groups, where every row group records them.
fn stats(metadata: &ParquetMetaData, rows: u64) -> Value {
    let (mut min, mut max, mut nulls) = (Map::new(), Map::new(), Map::new());
    let schema = metadata.file_metadata().schema_descr();
    for (i, column) in schema.columns().iter().enumerate() {
        let name = column.name().to_string();
        let chunks: Vec<Option<&Statistics>> = metadata
            .row_groups()
            .iter()
            .map(|g| g.column(i).statistics())
            .collect();
        let Some(all) = chunks.into_iter().collect::<Option<Vec<_>>>() else {
            continue;
        };
        if let Some(n) = all.iter().map(|s| s.null_count_opt()).sum::<Option<u64>>() {
            nulls.insert(name.clone(), n.into());
        }
        let bounds: Option<Vec<(Value, Value)>> = all.iter().map(|s| bounds(s)).collect();
        let Some(bounds) = bounds.filter(|b| !b.is_empty()) else {
            continue;
        };
        let least = bounds.iter().map(|(l, _)| l).min_by(|a, b| order(a, b));
        let greatest = bounds.iter().map(|(_, g)| g).max_by(|a, b| order(a, b));
        if let (Some(l), Some(g)) = (least, greatest) {
            min.insert(name.clone(), l.clone());
            max.insert(name, g.clone());
        }
    }
    serde_json::json!({
        "numRecords": rows,
        "minValues": min,
        "maxValues": max,
        "nullCount": nulls,
    })
}

/// A chunk's least and greatest value as JSON, for the types a practice fact file holds.
fn bounds(s: &Statistics) -> Option<(Value, Value)> {
    match s {
        Statistics::ByteArray(v) => {
            let text = |b: Option<&[u8]>| Some(Value::from(std::str::from_utf8(b?).ok()?));
            Some((text(v.min_bytes_opt())?, text(v.max_bytes_opt())?))
        }
        Statistics::Int64(v) => Some(((*v.min_opt()?).into(), (*v.max_opt()?).into())),
        Statistics::Int32(v) => Some(((*v.min_opt()?).into(), (*v.max_opt()?).into())),
        Statistics::Boolean(v) => Some(((*v.min_opt()?).into(), (*v.max_opt()?).into())),
        _ => None,
    }
}

/// Orders two statistics values of one column (all text, all numbers or all booleans).
fn order(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        _ => a.as_i64().cmp(&b.as_i64()),
    }
}

fn err(def: &TableDef, source: ParquetError) -> DeltaError {
    delta_err(
        def,
        DeltaTableError::Generic(format!("writing a data file: {source}")),
    )
}

fn delta_err(def: &TableDef, source: DeltaTableError) -> DeltaError {
    DeltaError {
        table: def.name,
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Array, AsArray};
    use deltalake::arrow::datatypes::Int64Type;
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn values(code: &str) -> RunValues {
        Arc::from(vec![Some(code.to_string())])
    }

    #[test]
    fn taking_rows_splits_the_run_they_end_in() {
        let mut runs: VecDeque<_> = [(values("A"), 3), (values("B"), 4)].into();
        let taken = take_runs(&mut runs, 5);
        let got: Vec<_> = taken.iter().map(|(v, n)| (v[0].clone(), *n)).collect();
        assert_eq!(got, [(Some("A".into()), 3), (Some("B".into()), 2)]);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].1, 2);
    }

    /// A practice's run columns: every fifth has no name, every seventh no PCN, none a region
    /// name (an empty dictionary), one SHA-256 for all (indices of no bits), and the 300
    /// codes need indices of more than a byte.
    fn practice(i: usize) -> RunValues {
        let text = |s: String| Some(s);
        let mut v: Vec<Option<String>> = vec![
            text(format!("P{i:05}")),
            (!i.is_multiple_of(5)).then(|| format!("PRACTICE {i}")),
            text(format!("NE{} 1AA", i % 9)),
            (!i.is_multiple_of(7)).then(|| format!("U{}", i % 40)),
        ];
        v.extend((4..9).map(|c| text(format!("C{c}-{}", i % 3))));
        v.push(None);
        v.push(text(if i < 150 { "a.csv" } else { "b.csv" }.into()));
        v.push(text("0".repeat(64)));
        Arc::from(v)
    }

    /// The rows of 300 practices, 1 to 5 each, as (run column values, row).
    fn rows() -> Vec<(RunValues, FactRow)> {
        (0..300)
            .flat_map(|i| {
                let values = practice(i);
                (0..1 + i % 5).map(move |r| {
                    let row = FactRow {
                        sex: if r % 2 == 0 {
                            SexKey::Male
                        } else {
                            SexKey::Female
                        },
                        age: [AgeKey::Band(r as u8), AgeKey::OpenBand(85)][i % 2],
                        count: (r != 3).then_some((i * 10 + r) as i64),
                        suppressed: r == 3,
                    };
                    (Arc::clone(&values), row)
                })
            })
            .collect()
    }

    /// `rows` written through a batcher (batches of 11 rows) into a file of 7-row groups,
    /// in a lake in `dir`.
    async fn written(
        dir: &std::path::Path,
        rows: &[(RunValues, FactRow)],
    ) -> Result<Vec<Add>, DeltaError> {
        let lake = crate::lake::Lake::open(dir.to_str().unwrap()).unwrap();
        let table = crate::delta::open_or_create(&lake, &FACT_QUINARY)
            .await
            .unwrap();
        let date = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap();
        let mut file = RunFile::new(FACT_QUINARY, &table, date).unwrap();
        file.group_rows = 7;
        let mut batcher = RunBatcher::new();
        for (n, (values, row)) in rows.iter().enumerate() {
            if batcher.current().is_none_or(|c| !Arc::ptr_eq(c, values)) {
                batcher.start(Arc::clone(values));
            }
            batcher.push(*row);
            if n % 11 == 10
                && let Err(e) = file.write(batcher.finish())
            {
                return Err(e);
            }
        }
        file.write(batcher.finish())?;
        file.finish().await
    }

    #[tokio::test]
    async fn a_file_written_in_runs_reads_back_row_for_row_with_its_statistics() {
        let expected = rows();
        let dir = tempfile::tempdir().unwrap();
        let add = written(dir.path(), &expected).await.unwrap().pop().unwrap();
        let table = dir.path().join(FACT_QUINARY.path);
        let reader = std::fs::File::open(table.join(&add.path)).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(reader).unwrap();
        assert_eq!(
            builder.metadata().num_row_groups(),
            expected.len().div_ceil(7),
            "runs cross the row groups' edges"
        );
        let mut got = Vec::new();
        for batch in builder.build().unwrap() {
            let batch = batch.unwrap();
            let text = |c: usize, r: usize| {
                let a = batch.column(c).as_string::<i32>();
                a.is_valid(r).then(|| a.value(r).to_string())
            };
            for r in 0..batch.num_rows() {
                let run: Vec<Option<String>> = (0..10).chain(14..16).map(|c| text(c, r)).collect();
                let counts = batch.column(12).as_primitive::<Int64Type>();
                let count = counts.is_valid(r).then(|| counts.value(r));
                let flag = batch.column(13).as_boolean().value(r);
                got.push((run, text(10, r).unwrap(), text(11, r).unwrap(), count, flag));
            }
        }
        let want: Vec<_> = expected
            .iter()
            .map(|(v, row)| {
                let sex = row.sex.label().to_string();
                (v.to_vec(), sex, row.age.label(), row.count, row.suppressed)
            })
            .collect();
        assert_eq!(got, want);

        let stats: Value = serde_json::from_str(add.stats.as_deref().unwrap()).unwrap();
        assert_eq!(stats["numRecords"], expected.len());
        assert_eq!(stats["minValues"]["practice_code"], "P00000");
        assert_eq!(stats["maxValues"]["practice_code"], "P00299");
        assert_eq!(stats["minValues"]["registered_population"], 0);
        let no_pcn = expected.iter().filter(|(v, ..)| v[3].is_none()).count();
        assert_eq!(stats["nullCount"]["pcn_code"], no_pcn);
        let masked = expected.iter().filter(|(_, r)| r.count.is_none()).count();
        assert_eq!(stats["nullCount"]["registered_population"], masked);
        assert_eq!(stats["minValues"]["sex"], "FEMALE");
        assert_eq!(stats["maxValues"]["sex"], "MALE");
        assert_eq!(stats["minValues"]["age_band"], "0-4");
        assert_eq!(stats["maxValues"]["age_band"], "85+");
        assert!(
            stats["minValues"].get("practice_name").is_none(),
            "names are not filtered on"
        );
        assert_eq!(
            add.partition_values["snapshot_date"].as_deref(),
            Some("2024-05-01")
        );
    }

    #[tokio::test]
    async fn a_null_in_a_required_run_column_is_an_error_not_a_file() {
        let mut bad = rows();
        let mut values = bad[0].0.to_vec();
        values[0] = None;
        bad[0].0 = Arc::from(values);
        let dir = tempfile::tempdir().unwrap();
        let adds = written(dir.path(), &bad).await;
        let message = adds.expect_err("no file is made").to_string();
        assert!(
            message.contains("practice_code") && message.contains("NULL"),
            "{message}"
        );
    }

    #[test]
    fn a_batch_ends_mid_run_and_the_run_carries_on() {
        let mut b = RunBatcher::new();
        b.start(values("A"));
        let row = FactRow {
            sex: SexKey::Male,
            age: AgeKey::Band(0),
            count: Some(1),
            suppressed: false,
        };
        b.push(row);
        b.push(row);
        let first = b.finish();
        b.push(row);
        let second = b.finish();
        assert_eq!(first.runs.iter().map(|r| r.1).collect::<Vec<_>>(), [2]);
        assert_eq!(second.runs.iter().map(|r| r.1).collect::<Vec<_>>(), [1]);
        assert_eq!(second.rows.len(), 1);
    }
}
