//! Read-only SQL over the lake: every silver, gold and metadata table registered by name,
//! plus extra CSV or Parquet files (`--with NAME=PATH`) to join other NHS datasets by
//! practice, sub-ICB or ICB code.
//!
//! Guarantees: a query never writes (statements that would are refused before they run, see
//! [`guard`]); it sees only the lake's tables and the files named with `--with` (no file or
//! URL tables); it can read every table as it was at a moment or version (Delta time travel);
//! it runs under a memory limit and a time limit. Errors name what was wrong and list what
//! is available.

mod guard;
mod output;

use std::path::PathBuf;
use std::time::Duration;

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

use crate::catalog::LAKE_TABLES;
use crate::delta;
use crate::lake::Lake;
use crate::session::{self, SessionSpec};

pub use crate::session::Pin;
pub use output::{Format, write, write_file};

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
    /// The statement would write or change something.
    #[error("gplake query is read-only: {statement} is not allowed")]
    Refused {
        /// What was refused (`INSERT`, `COPY`, `CREATE EXTERNAL TABLE`…).
        statement: String,
    },
    /// The query ran past its time limit and was stopped.
    #[error("the query ran for more than {seconds} s and was stopped (raise it with --time-limit)")]
    TimedOut {
        /// The limit.
        seconds: u64,
    },
    /// The query needed more memory than its limit.
    #[error(
        "the query needs more than {limit} bytes of memory (raise it with --memory-limit): {message}"
    )]
    OutOfMemory {
        /// The limit.
        limit: usize,
        /// The engine's message.
        message: String,
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
    /// The lake was written by a newer gplake.
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    /// The output could not be written.
    #[error("cannot write {file}: {reason}")]
    Output {
        /// The file (or stdout).
        file: String,
        /// Why.
        reason: String,
    },
}

/// How a query runs.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// Extra CSV or Parquet files registered as tables.
    pub extras: Vec<Extra>,
    /// Which version of the lake's tables to read.
    pub as_of: Pin,
    /// Bytes the query may hold in memory (sorts and joins spill or fail past it).
    pub memory_limit: usize,
    /// Time after which the query is stopped.
    pub time_limit: Duration,
}

impl Default for QueryOptions {
    fn default() -> QueryOptions {
        QueryOptions {
            extras: Vec::new(),
            as_of: Pin::Latest,
            memory_limit: 4 << 30,
            time_limit: Duration::from_secs(1800),
        }
    }
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

/// A session with every existing lake table (as of `options.as_of`) and the extras.
async fn query_session(lake: &Lake, options: &QueryOptions) -> Result<SessionContext, QueryError> {
    let spec = SessionSpec {
        pin: options.as_of.clone(),
        empty_if_missing: false,
        memory_limit: Some(options.memory_limit),
        batch_rows: None,
    };
    let session = session::open(lake, &LAKE_TABLES, &spec).await?;
    for extra in &options.extras {
        register_extra(&session.ctx, extra).await?;
    }
    Ok(session.ctx)
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

/// Runs `sql`, read-only, and collects the result.
pub async fn run(
    lake: &Lake,
    sql: &str,
    options: &QueryOptions,
) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    crate::layout::check_known(lake).await?;
    let ctx = query_session(lake, options).await?;
    guard::check(&ctx, sql).await?;
    let seconds = options.time_limit.as_secs();
    let ran = tokio::time::timeout(options.time_limit, execute(&ctx, sql, options)).await;
    ran.map_err(|_| QueryError::TimedOut { seconds })?
}

async fn execute(
    ctx: &SessionContext,
    sql: &str,
    options: &QueryOptions,
) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let frame = match ctx.sql_with_options(sql, guard::read_only()).await {
        Ok(f) => f,
        Err(e) => return Err(engine_error(ctx, &e.to_string(), options).await),
    };
    let schema: SchemaRef = std::sync::Arc::new(frame.schema().as_arrow().clone());
    match frame.collect().await {
        Ok(batches) => Ok((schema, batches)),
        Err(e) => Err(engine_error(ctx, &e.to_string(), options).await),
    }
}

/// Sorts an engine failure: out of memory, a refusal by `SQLOptions`, or wrong SQL.
async fn engine_error(ctx: &SessionContext, message: &str, options: &QueryOptions) -> QueryError {
    if message.contains("Resources exhausted") {
        return QueryError::OutOfMemory {
            limit: options.memory_limit,
            message: first_line(message),
        };
    }
    for refused in [
        "DDL not supported: ",
        "DML not supported: ",
        "Statement not supported: ",
    ] {
        if let Some(rest) = message.split(refused).nth(1) {
            return QueryError::Refused {
                statement: first_line(rest).to_ascii_uppercase(),
            };
        }
    }
    let mut error = sql_error(ctx, message).await;
    if let (QueryError::Sql { available, .. }, Pin::At(at)) = (&mut error, &options.as_of)
        && available.starts_with("the lake has no tables yet")
    {
        *available = format!("no lake table existed at {at} (--as-of)");
    }
    if let QueryError::Sql { message, .. } = &mut error
        && message.contains("table '")
        && (message.contains('/') || message.contains("://"))
    {
        message.push_str(
            "; gplake query reads only the lake's tables and files given with --with NAME=PATH",
        );
    }
    error
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
