//! `gplake ddl --engine E`: statements that register the lake's tables in Athena, Spark or
//! DuckDB.

use gplake::Lake;

use crate::args::DdlArgs;

/// Prints the registration statements for the chosen engine.
pub(crate) fn run(lake: &Lake, args: &DdlArgs) -> anyhow::Result<u8> {
    let statements = gplake::ddl::statements(args.engine, &lake.root_location(), &args.database)
        .map_err(gplake::Error::from)?;
    print!("{statements}");
    Ok(0)
}
