//! SQL over the lake: every silver, gold and metadata table registered by name, plus extra
//! CSV or Parquet files (`--with NAME=PATH`) to join other NHS datasets by practice, sub-ICB
//! or ICB code. Errors name what was wrong and list what is available.

use std::path::{Path, PathBuf};

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

use crate::gold;
use crate::lake::Lake;
use crate::silver::delta;
use crate::silver::schema::{ALL_TABLES, TableDef};

/// A query failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The SQL is wrong: the engine's message, then what exists.
    #[error("{message}\n{available}")]
    Sql {
        /// The engine's message (with the position when it gives one).
        message: String,
        /// The tables and columns that exist, and the nearest names.
        available: String,
    },
    /// An extra file could not be registered.
    #[error("--with {name}={path}: {reason}")]
    Extra {
        /// The table name asked for.
        name: String,
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A lake table could not be opened.
    #[error(transparent)]
    Delta(#[from] delta::DeltaError),
    /// The output could not be written.
    #[error("cannot write {file}: {reason}")]
    Output {
        /// The file (or stdout).
        file: String,
        /// Why.
        reason: String,
    },
}

/// An extra table: a CSV or Parquet file under a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    /// Table name.
    pub name: String,
    /// The file.
    pub path: PathBuf,
}

impl std::str::FromStr for Extra {
    type Err = String;

    fn from_str(s: &str) -> Result<Extra, String> {
        let (name, path) = s
            .split_once('=')
            .ok_or_else(|| format!("'{s}' is not NAME=PATH"))?;
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "'{name}' is not a table name (letters, digits and _)"
            ));
        }
        Ok(Extra {
            name: name.to_string(),
            path: path.into(),
        })
    }
}

/// Every table a query can see, silver and gold.
pub fn lake_tables() -> Vec<TableDef> {
    ALL_TABLES
        .iter()
        .copied()
        .chain(gold::GOLD_TABLES.iter().copied())
        .collect()
}

/// A session with every existing lake table and the extras registered.
pub async fn session(lake: &Lake, extras: &[Extra]) -> Result<SessionContext, QueryError> {
    let ctx = SessionContext::new();
    for def in lake_tables() {
        if let Some(table) = delta::open(lake, &def).await? {
            table
                .update_datafusion_session(&ctx.state())
                .map_err(|e| delta_err(&def, e))?;
            let provider = table
                .table_provider()
                .await
                .map_err(|e| delta_err(&def, e.into()))?;
            ctx.register_table(def.name, provider)
                .map_err(|e| delta_err(&def, e.into()))?;
        }
    }
    for extra in extras {
        register_extra(&ctx, extra).await?;
    }
    Ok(ctx)
}

fn delta_err(def: &TableDef, e: deltalake::DeltaTableError) -> QueryError {
    QueryError::Delta(delta::DeltaError {
        table: def.name,
        source: Box::new(e),
    })
}

async fn register_extra(ctx: &SessionContext, extra: &Extra) -> Result<(), QueryError> {
    let err = |reason: String| QueryError::Extra {
        name: extra.name.clone(),
        path: extra.path.display().to_string(),
        reason,
    };
    if !extra.path.is_file() {
        return Err(err("no such file".into()));
    }
    let path = extra
        .path
        .to_str()
        .ok_or_else(|| err("the path is not UTF-8".into()))?;
    let ext = extra
        .path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let registered = match ext.as_str() {
        "csv" => {
            ctx.register_csv(&extra.name, path, CsvReadOptions::new().has_header(true))
                .await
        }
        "parquet" => {
            ctx.register_parquet(&extra.name, path, ParquetReadOptions::default())
                .await
        }
        other => {
            return Err(err(format!(
                "unsupported file type '.{other}' (use .csv or .parquet)"
            )));
        }
    };
    registered.map_err(|e| err(first_line(&e.to_string())))?;
    // Parse it now, so a broken file is reported as such and not as a SQL error later.
    let frame = ctx
        .table(&extra.name)
        .await
        .map_err(|e| err(first_line(&e.to_string())))?;
    frame
        .limit(0, Some(1))
        .map_err(|e| err(e.to_string()))?
        .collect()
        .await
        .map_err(|e| err(first_line(&e.to_string())))?;
    Ok(())
}

/// Runs `sql` and collects the result.
pub async fn run(
    lake: &Lake,
    sql: &str,
    extras: &[Extra],
) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let ctx = session(lake, extras).await?;
    let frame = match ctx.sql(sql).await {
        Ok(f) => f,
        Err(e) => return Err(sql_error(&ctx, &e.to_string()).await),
    };
    let schema: SchemaRef = std::sync::Arc::new(frame.schema().as_arrow().clone());
    match frame.collect().await {
        Ok(batches) => Ok((schema, batches)),
        Err(e) => Err(sql_error(&ctx, &e.to_string()).await),
    }
}

/// The engine's message plus what exists, and the nearest names to what was not found.
async fn sql_error(ctx: &SessionContext, message: &str) -> QueryError {
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for name in ctx
        .catalog_names()
        .into_iter()
        .flat_map(|c| ctx.catalog(&c))
        .flat_map(|c| c.schema("public"))
        .flat_map(|s| s.table_names())
    {
        if let Ok(frame) = ctx.table(name.as_str()).await {
            let columns = frame
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            tables.push((name, columns));
        }
    }
    tables.sort();
    let unknown = quoted_names(message);
    let mut names: Vec<String> = tables.iter().map(|t| t.0.clone()).collect();
    names.extend(tables.iter().flat_map(|t| t.1.iter().cloned()));
    let known = |u: &String| names.iter().any(|n| n.eq_ignore_ascii_case(u));
    let suggested = message.contains("Did you mean");
    let nearest: Vec<String> = unknown
        .iter()
        .filter(|u| !known(u) && !suggested)
        .filter_map(|u| nearest(u, &names).map(|n| format!("'{u}' → did you mean '{n}'?")))
        .collect();
    let mut message = message.trim().replace('\n', " ");
    if !nearest.is_empty() {
        message = format!("{message}; {}", nearest.join("; "));
    }
    let mut available = String::new();
    if tables.is_empty() {
        available.push_str("the lake has no tables yet: run gplake sync");
    } else {
        available.push_str("available tables:");
        for (name, columns) in &tables {
            available.push_str(&format!("\n  {name}({})", columns.join(", ")));
        }
    }
    QueryError::Sql { message, available }
}

/// Names quoted in an engine message ('x' or "x").
fn quoted_names(message: &str) -> Vec<String> {
    let mut out = Vec::new();
    for quote in ['\'', '"'] {
        let parts: Vec<&str> = message.split(quote).collect();
        out.extend(
            parts
                .iter()
                .skip(1)
                .step_by(2)
                .map(|s| s.rsplit('.').next().unwrap_or(s).to_string()),
        );
    }
    out.retain(|s| !s.is_empty() && s.len() < 64 && !s.contains(' '));
    out
}

/// The closest of `names` to `word`, if close enough to be a typo.
pub fn nearest(word: &str, names: &[String]) -> Option<String> {
    let word = word.to_ascii_lowercase();
    names
        .iter()
        .filter(|n| n.to_ascii_lowercase() != word)
        .map(|n| (edit_distance(&word, &n.to_ascii_lowercase()), n))
        .filter(|(d, n)| *d <= (n.len() / 3).max(2))
        .min()
        .map(|(_, n)| n.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_names() {
        let names = vec![
            "fact_gp_registered_patients".to_string(),
            "practice_code".to_string(),
            "dim_practice".to_string(),
        ];
        assert_eq!(
            nearest("fact_gp_registerd_patients", &names).as_deref(),
            Some("fact_gp_registered_patients")
        );
        assert_eq!(
            nearest("practise_code", &names).as_deref(),
            Some("practice_code")
        );
        assert_eq!(nearest("zzz", &names), None);
        assert!(
            "x=1".parse::<Extra>().is_ok()
                && "=a".parse::<Extra>().is_err()
                && "a b=c".parse::<Extra>().is_err()
        );
    }
}
