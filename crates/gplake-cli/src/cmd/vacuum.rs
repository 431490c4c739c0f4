//! `gplake vacuum`: Delta maintenance, one line per table and a total.

use gplake::Lake;
use gplake::vacuum::{VacuumOptions, VacuumReport};

use crate::Output;
use crate::args::VacuumArgs;

/// Vacuums every table and prints what was removed.
pub(crate) async fn run(lake: &Lake, args: &VacuumArgs, out: &Output) -> anyhow::Result<u8> {
    let options = VacuumOptions {
        retention_days: args.retention_days,
        dry_run: args.dry_run,
    };
    let report = gplake::vacuum::vacuum(lake, crate::clock(), &options)
        .await
        .map_err(gplake::Error::from)?;
    if out.json {
        out.print_json(&report)?;
    } else if !out.quiet {
        print!("{}", text(&report));
    }
    Ok(0)
}

fn text(report: &VacuumReport) -> String {
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut s = String::new();
    for t in &report.tables {
        let checkpoint = t
            .checkpoint
            .map(|v| format!(", checkpoint at version {v}"))
            .unwrap_or_default();
        let log = match t.log_entries_removed {
            0 => String::new(),
            n => format!(", {n} old log entries removed"),
        };
        s += &format!(
            "{:<40} {verb} {} data files{checkpoint}{log}\n",
            t.table,
            t.files_removed.len()
        );
    }
    s += &format!(
        "{verb} {} data files in {} tables; time travel reaches back to {} ({} days)\n",
        report.files_removed(),
        report.tables.len(),
        report.history_from.format("%Y-%m-%d %H:%M UTC"),
        report.retention_days
    );
    s
}
