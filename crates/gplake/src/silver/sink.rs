//! The streaming sink of one table's rows for a month: rows gather into Arrow batches and go
//! on into Parquet data files as each batch fills, so memory holds one batch per table.
//! Nothing becomes visible until the month's build commits the files it returns.

use chrono::NaiveDate;
use deltalake::kernel::Add;
use deltalake::writer::RecordBatchWriter;
use tokio::runtime::Handle;

use crate::batch::{Batcher, Val};
use crate::catalog::TableDef;
use crate::delta::{self, DeltaError, PartitionValues};

/// A streaming writer of one table's rows for the month.
pub(crate) struct Sink {
    def: TableDef,
    /// The month's partition, when the table is partitioned by month.
    partition: Option<PartitionValues>,
    batcher: Batcher,
    writer: RecordBatchWriter,
    rows: u64,
}

impl Sink {
    pub(crate) fn new(
        def: TableDef,
        table: &deltalake::DeltaTable,
        date: NaiveDate,
    ) -> Result<Sink, DeltaError> {
        Ok(Sink {
            def,
            partition: delta::month_partition(&def, date),
            batcher: Batcher::new(def),
            writer: delta::writer(table, &def)?,
            rows: 0,
        })
    }

    pub(crate) fn push(&mut self, handle: &Handle, values: &[Val<'_>]) -> Result<(), DeltaError> {
        self.batcher.push(values);
        self.rows += 1;
        if self.batcher.is_full() {
            self.write(handle)?;
        }
        Ok(())
    }

    fn write(&mut self, handle: &Handle) -> Result<(), DeltaError> {
        let batch = self.batcher.finish();
        let (writer, def) = (&mut self.writer, &self.def);
        match &self.partition {
            Some(partition) => handle.block_on(delta::write_in(writer, def, partition, batch)),
            None => handle.block_on(delta::write(writer, def, batch)),
        }
    }

    pub(crate) fn finish(mut self, handle: &Handle) -> Result<(TableDef, Vec<Add>), DeltaError> {
        if !self.batcher.is_empty() {
            self.write(handle)?;
        }
        let adds = handle.block_on(delta::flush(&mut self.writer, &self.def))?;
        Ok((self.def, adds))
    }
}
