//! `gplake plot trend|pyramid`: charts written as SVG or PNG.

use gplake::Lake;
use gplake::plot::{draw_pyramid, draw_trend, pyramid, trend};

use crate::Output;
use crate::args::PlotCommand;

/// Draws the chart asked for.
pub(crate) async fn run(lake: &Lake, command: &PlotCommand, out: &Output) -> anyhow::Result<u8> {
    let plotted = plot(lake, command).await.map_err(gplake::Error::from)?;
    if !out.quiet {
        eprintln!("wrote {}", plotted.display());
    }
    Ok(0)
}

async fn plot<'a>(
    lake: &Lake,
    command: &'a PlotCommand,
) -> Result<&'a std::path::Path, gplake::plot::PlotError> {
    let path = match command {
        PlotCommand::Trend(args) => {
            let scope = args.scope.scope();
            let points = trend(lake, &scope).await?;
            draw_trend(&args.output, &scope, &points)?;
            &args.output
        }
        PlotCommand::Pyramid(args) => {
            let scope = args.scope.scope();
            let bars = pyramid(lake, &scope, args.month).await?;
            draw_pyramid(&args.output, &scope, args.month, &bars)?;
            &args.output
        }
    };
    Ok(path)
}
