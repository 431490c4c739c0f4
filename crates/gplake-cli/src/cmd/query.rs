//! `gplake query`: read-only SQL over the lake, printed as a table, CSV or JSON, or written
//! to a file. The SQL comes from the argument, `--file`, or standard input.

use std::io::{IsTerminal, Read};

use anyhow::Context;
use gplake::Lake;
use gplake::query::{Format, QueryOptions, write, write_file};

use crate::Output;
use crate::args::QueryArgs;

/// Runs the query and prints or writes the result.
pub(crate) async fn run(lake: &Lake, args: &QueryArgs, out: &Output) -> anyhow::Result<u8> {
    let sql = sql_text(args)?;
    let options = QueryOptions {
        extras: args.with.clone(),
        as_of: args.pin()?,
        memory_limit: args.memory_limit,
        time_limit: std::time::Duration::from_secs(args.time_limit),
    };
    let (schema, batches) = gplake::query::run(lake, &sql, &options)
        .await
        .map_err(gplake::Error::from)?;
    if let Some(path) = &args.output {
        write_file(&schema, &batches, path).map_err(gplake::Error::from)?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if !out.quiet {
            eprintln!("{rows} rows written to {}", path.display());
        }
        return Ok(0);
    }
    let format = match (args.format.as_deref(), out.json) {
        (Some("csv"), _) => Format::Csv,
        (Some("json"), _) | (None, true) => Format::Json,
        (Some("table"), _) => Format::Table,
        _ if std::io::stdout().is_terminal() => Format::Table,
        _ => Format::Csv,
    };
    let stdout = std::io::stdout();
    write(&schema, &batches, format, &mut stdout.lock(), "stdout").map_err(gplake::Error::from)?;
    Ok(0)
}

/// The SQL: the argument, else `--file`, else standard input (when it is not a terminal).
fn sql_text(args: &QueryArgs) -> anyhow::Result<String> {
    if let Some(sql) = &args.sql {
        return Ok(sql.clone());
    }
    if let Some(file) = &args.file {
        return std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --file {}", file.display()));
    }
    if std::io::stdin().is_terminal() {
        anyhow::bail!("no SQL: give it as an argument, with --file F, or on standard input");
    }
    let mut sql = String::new();
    std::io::stdin()
        .read_to_string(&mut sql)
        .context("cannot read SQL from standard input")?;
    Ok(sql)
}
