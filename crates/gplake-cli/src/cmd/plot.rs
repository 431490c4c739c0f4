//! `gplake plot trend|pyramid`: charts written as SVG or PNG.

use gplake::Lake;
use gplake::plot::{draw_pyramid, draw_trend, pyramid, trend};

use crate::Output;
use crate::args::PlotCommand;

/// Draws the chart asked for.
pub(crate) async fn run(lake_url: &str, command: &PlotCommand, out: &Output) -> anyhow::Result<u8> {
    let lake = Lake::open(lake_url)?;
    let path = match command {
        PlotCommand::Trend(args) => {
            let scope = args.scope.scope();
            let points = trend(&lake, &scope).await?;
            draw_trend(&args.output, &scope, &points)?;
            &args.output
        }
        PlotCommand::Pyramid(args) => {
            let scope = args.scope.scope();
            let bars = pyramid(&lake, &scope, args.month).await?;
            draw_pyramid(&args.output, &scope, args.month, &bars)?;
            &args.output
        }
    };
    if !out.quiet {
        eprintln!("wrote {}", path.display());
    }
    Ok(0)
}
