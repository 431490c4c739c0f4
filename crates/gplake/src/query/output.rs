//! Query results as a text table, CSV, JSON or a Parquet file.

use std::path::Path;

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;

use super::QueryError;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header.
    Csv,
    /// A JSON array of objects.
    Json,
    /// Parquet (files only).
    Parquet,
}

impl Format {
    /// The format a file name asks for.
    pub fn of_file(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }
}

/// Writes the result in `format` to `out`.
pub fn write(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
    out: &mut dyn std::io::Write,
    label: &str,
) -> Result<(), QueryError> {
    let err = |e: &dyn std::fmt::Display| QueryError::Output {
        file: label.to_string(),
        reason: e.to_string(),
    };
    match format {
        Format::Table => {
            let text = deltalake::arrow::util::pretty::pretty_format_batches(batches)
                .map_err(|e| err(&e))?;
            writeln!(out, "{text}").map_err(|e| err(&e))
        }
        Format::Csv => {
            let mut writer = deltalake::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            if batches.is_empty() {
                return writer
                    .write(&RecordBatch::new_empty(schema.clone()))
                    .map_err(|e| err(&e));
            }
            batches
                .iter()
                .try_for_each(|b| writer.write(b))
                .map_err(|e| err(&e))
        }
        Format::Json => {
            let mut writer = deltalake::arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, deltalake::arrow::json::writer::JsonArray>(&mut *out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs).map_err(|e| err(&e))?;
            writer.finish().map_err(|e| err(&e))?;
            writeln!(out).map_err(|e| err(&e))
        }
        Format::Parquet => Err(err(&"parquet goes to a file: use --output FILE.parquet")),
    }
}

/// Writes the result to `path`, the format chosen by its extension.
pub fn write_file(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    path: &Path,
) -> Result<(), QueryError> {
    let label = path.display().to_string();
    let err = |e: &dyn std::fmt::Display| QueryError::Output {
        file: label.clone(),
        reason: e.to_string(),
    };
    let format =
        Format::of_file(path).ok_or_else(|| err(&"use a .csv, .json or .parquet file name"))?;
    let mut file = std::fs::File::create(path).map_err(|e| err(&e))?;
    if format == Format::Parquet {
        let mut writer =
            deltalake::parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None)
                .map_err(|e| err(&e))?;
        for b in batches {
            writer.write(b).map_err(|e| err(&e))?;
        }
        writer.close().map_err(|e| err(&e))?;
        return Ok(());
    }
    write(schema, batches, format, &mut file, &label)
}
