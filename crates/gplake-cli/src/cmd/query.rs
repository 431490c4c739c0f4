//! `gplake query`: SQL over the lake, printed as a table, CSV or JSON, or written to a file.

use std::io::IsTerminal;

use gplake::Lake;
use gplake::query::{Format, write, write_file};

use crate::Output;
use crate::args::{DdlArgs, QueryArgs};

/// Runs the query and prints or writes the result.
pub(crate) async fn run(lake_url: &str, args: &QueryArgs, out: &Output) -> anyhow::Result<u8> {
    let lake = Lake::open(lake_url)?;
    let (schema, batches) = gplake::query::run(&lake, &args.sql, &args.with).await?;
    if let Some(path) = &args.output {
        write_file(&schema, &batches, path)?;
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
    write(&schema, &batches, format, &mut stdout.lock(), "stdout")?;
    Ok(0)
}

/// Prints the registration statements for the chosen engine.
pub(crate) fn ddl(lake_url: &str, args: &DdlArgs) -> anyhow::Result<u8> {
    let lake = Lake::open(lake_url)?;
    print!(
        "{}",
        gplake::ddl::statements(args.engine, &lake.root_location(), &args.database)?
    );
    Ok(0)
}
