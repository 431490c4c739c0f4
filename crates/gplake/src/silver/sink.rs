//! The streaming sink of one table's rows for a month: rows gather into Arrow batches on the
//! reading thread, and each full batch is encoded into Parquet data files on that thread (the
//! month's files are read by several jobs at once, a core each). Memory holds one batch
//! being filled per table. Nothing becomes visible until the month's build commits the files
//! it returns.

use chrono::NaiveDate;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::Add;
use deltalake::writer::RecordBatchWriter;
use tokio::runtime::Handle;

use super::runs::{FactRow, RunBatch, RunBatcher, RunFile, RunValues};
use crate::batch::{Batcher, Val};
use crate::catalog::TableDef;
use crate::delta::{self, DeltaError, PartitionValues};

/// A streaming writer of one table's rows for the month.
pub(crate) struct Sink {
    def: TableDef,
    rows: Rows,
    encoder: Encoder,
}

/// How a sink gathers its rows.
enum Rows {
    /// Whole rows into Arrow batches.
    Batches(Batcher),
    /// Runs of a practice's rows, its columns given once per run.
    Runs(RunBatcher),
}

/// A full batch of either kind.
enum Payload {
    Batch(RecordBatch),
    Runs(RunBatch),
}

/// What encodes a sink's batches into data files.
enum Writer {
    Delta(Box<RecordBatchWriter>),
    Runs(Box<RunFile>),
}

impl Sink {
    /// A sink for `def`'s rows of the month of `date`, encoded on the caller's thread.
    pub(crate) fn new(
        def: TableDef,
        table: &deltalake::DeltaTable,
        date: NaiveDate,
        handle: &Handle,
    ) -> Result<Sink, DeltaError> {
        let (rows, writer) = if super::runs::written_in_runs(&def) {
            (
                Rows::Runs(RunBatcher::new()),
                Writer::Runs(Box::new(RunFile::new(def, table, date)?)),
            )
        } else {
            (
                Rows::Batches(Batcher::new(def)),
                Writer::Delta(Box::new(delta::writer(table, &def)?)),
            )
        };
        let encoder = Encoder {
            def,
            writer,
            partition: delta::month_partition(&def, date),
            handle: handle.clone(),
        };
        Ok(Sink { def, rows, encoder })
    }

    /// Appends a row of a table written in batches; `values` are in column order.
    pub(crate) fn push(&mut self, values: &[Val<'_>]) -> Result<(), DeltaError> {
        let Rows::Batches(batcher) = &mut self.rows else {
            panic!(
                "{}: rows of a table written in runs come in runs",
                self.def.name
            )
        };
        batcher.push(values);
        self.write_if_full()
    }

    /// True when rows pushed now would join a run (one was started and not ended).
    pub(crate) fn in_run(&self) -> bool {
        matches!(&self.rows, Rows::Runs(runs) if runs.current().is_some())
    }

    /// Ends the current run: the next row needs [`Sink::start_run`].
    pub(crate) fn end_run(&mut self) {
        if let Rows::Runs(runs) = &mut self.rows {
            runs.end();
        }
    }

    /// Starts a run of a table written in runs: the rows pushed from now on have `values`.
    pub(crate) fn start_run(&mut self, values: RunValues) {
        match &mut self.rows {
            Rows::Runs(runs) => runs.start(values),
            Rows::Batches(_) => panic!("{}: is not written in runs", self.def.name),
        }
    }

    /// Appends a row of the current run.
    pub(crate) fn push_in_run(&mut self, row: FactRow) -> Result<(), DeltaError> {
        let Rows::Runs(runs) = &mut self.rows else {
            panic!("{}: is not written in runs", self.def.name)
        };
        runs.push(row);
        self.write_if_full()
    }

    fn write_if_full(&mut self) -> Result<(), DeltaError> {
        let full = match &self.rows {
            Rows::Batches(b) => b.is_full(),
            Rows::Runs(r) => r.is_full(),
        };
        if full { self.write_waiting() } else { Ok(()) }
    }

    /// Hands on the rows gathered so far.
    fn write_waiting(&mut self) -> Result<(), DeltaError> {
        let payload = match &mut self.rows {
            Rows::Batches(b) if !b.is_empty() => Payload::Batch(b.finish()),
            Rows::Runs(r) if !r.is_empty() => Payload::Runs(r.finish()),
            _ => return Ok(()),
        };
        self.write(payload)
    }

    pub(crate) fn finish(mut self) -> Result<(TableDef, Vec<Add>), DeltaError> {
        self.write_waiting()?;
        Ok((self.def, self.encoder.flush()?))
    }

    fn write(&mut self, batch: Payload) -> Result<(), DeltaError> {
        self.encoder.write(batch)
    }
}

/// Encodes batches into one table's data files for the month.
struct Encoder {
    def: TableDef,
    writer: Writer,
    /// The month's partition, when the table is partitioned by month.
    partition: Option<PartitionValues>,
    handle: Handle,
}

impl Encoder {
    fn write(&mut self, batch: Payload) -> Result<(), DeltaError> {
        let def = &self.def;
        match (&mut self.writer, batch) {
            (Writer::Runs(file), Payload::Runs(batch)) => file.write(batch),
            (Writer::Delta(writer), Payload::Batch(batch)) => match &self.partition {
                Some(p) => self.handle.block_on(delta::write_in(writer, def, p, batch)),
                None => self.handle.block_on(delta::write(writer, def, batch)),
            },
            _ => unreachable!("a sink's batches are of its writer's kind"),
        }
    }

    /// Writes the last files: the actions that commit them.
    fn flush(self) -> Result<Vec<Add>, DeltaError> {
        match self.writer {
            Writer::Runs(file) => self.handle.block_on(file.finish()),
            Writer::Delta(mut writer) => self.handle.block_on(delta::flush(&mut writer, &self.def)),
        }
    }
}
