//! Rows into Arrow record batches, column by column, for any table definition.

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use deltalake::arrow::record_batch::RecordBatch;

use crate::catalog::{Kind, TableDef};

/// Rows per batch handed to a writer. Compression works on the writer's pages, whatever
/// the batch size, so batches are kept small: a sink holds a batch being filled and one
/// being written, and at 64 Ki rows those were a third of a month build's heap (~60 MiB
/// with two months building), against ~8 MiB at 8 Ki rows, for the same time.
pub(crate) const BATCH_ROWS: usize = 8 * 1024;

/// One value of a row, in column order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    /// Text or NULL.
    Text(Option<&'a str>),
    /// A BIGINT.
    Int(i64),
    /// A BIGINT or NULL.
    OptInt(Option<i64>),
    /// A DATE.
    Date(NaiveDate),
    /// A BOOLEAN.
    Bool(bool),
    /// A DATE or NULL.
    OptDate(Option<NaiveDate>),
    /// A TIMESTAMP.
    Ts(DateTime<Utc>),
}

enum Builder {
    Text(StringBuilder),
    Int(Int64Builder),
    Date(Date32Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
}

/// Accumulates rows of one table.
pub(crate) struct Batcher {
    def: TableDef,
    columns: Vec<Builder>,
    rows: usize,
    /// Each column's text bytes in the last batch: with its rows, they size the next batch's
    /// buffers at once, since a finished builder starts empty, and growing it by doubling
    /// copies each buffer again and again.
    last_bytes: Vec<usize>,
}

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");

impl Batcher {
    /// An empty batcher for `def`.
    pub(crate) fn new(def: TableDef) -> Batcher {
        let last_bytes = vec![0; def.columns.len()];
        Batcher {
            columns: builders(&def, 0, &last_bytes),
            def,
            rows: 0,
            last_bytes,
        }
    }

    /// Appends a row; `values` are in the table's column order.
    pub(crate) fn push(&mut self, values: &[Val<'_>]) {
        debug_assert_eq!(values.len(), self.columns.len(), "{}", self.def.name);
        for (builder, value) in self.columns.iter_mut().zip(values) {
            match (builder, value) {
                (Builder::Text(b), Val::Text(v)) => b.append_option(*v),
                (Builder::Int(b), Val::Int(v)) => b.append_value(*v),
                (Builder::Int(b), Val::OptInt(v)) => b.append_option(*v),
                (Builder::Date(b), Val::Date(d)) => b.append_value(days(*d)),
                (Builder::Date(b), Val::OptDate(d)) => b.append_option(d.map(days)),
                (Builder::Bool(b), Val::Bool(v)) => b.append_value(*v),
                (Builder::Ts(b), Val::Ts(t)) => b.append_value(t.timestamp_micros()),
                (_, v) => panic!("{}: value {v:?} does not fit its column", self.def.name),
            }
        }
        self.rows += 1;
    }

    /// True when no rows wait.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// True when a batch's worth of rows waits.
    pub(crate) fn is_full(&self) -> bool {
        self.rows >= BATCH_ROWS
    }

    /// The waiting rows as a batch; the batcher starts empty again.
    pub(crate) fn finish(&mut self) -> RecordBatch {
        for (bytes, b) in self.last_bytes.iter_mut().zip(&self.columns) {
            if let Builder::Text(b) = b {
                *bytes = b.values_slice().len();
            }
        }
        let next = builders(&self.def, self.rows, &self.last_bytes);
        let arrays: Vec<ArrayRef> = std::mem::replace(&mut self.columns, next)
            .into_iter()
            .map(|mut b| -> ArrayRef {
                match &mut b {
                    Builder::Text(b) => std::sync::Arc::new(b.finish()),
                    Builder::Int(b) => std::sync::Arc::new(b.finish()),
                    Builder::Date(b) => std::sync::Arc::new(b.finish()),
                    Builder::Bool(b) => std::sync::Arc::new(b.finish()),
                    Builder::Ts(b) => std::sync::Arc::new(b.finish()),
                }
            })
            .collect();
        self.rows = 0;
        RecordBatch::try_new(self.def.arrow_schema(), arrays).expect("batches match their schema")
    }
}

/// Empty builders for `def`'s columns, sized for `rows` rows and `bytes` of text per column.
fn builders(def: &TableDef, rows: usize, bytes: &[usize]) -> Vec<Builder> {
    def.columns
        .iter()
        .zip(bytes)
        .map(|(c, &bytes)| match c.kind {
            Kind::Text => Builder::Text(StringBuilder::with_capacity(rows, bytes)),
            Kind::Int => Builder::Int(Int64Builder::with_capacity(rows)),
            Kind::Date => Builder::Date(Date32Builder::with_capacity(rows)),
            Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            Kind::Timestamp => {
                Builder::Ts(TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"))
            }
        })
        .collect()
}

/// Days since 1970-01-01: how Arrow and Delta hold a date.
pub(crate) fn days(date: NaiveDate) -> i32 {
    (date - EPOCH).num_days() as i32
}
