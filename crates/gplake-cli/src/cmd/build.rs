//! `gplake build`: the build pipeline over the lake's bronze; exit 3 when the quality gate
//! keeps a month out.

use gplake::{BuildOptions, BuildReport, Lake};

use crate::args::BuildArgs;
use crate::{Output, clock};

/// Exit code of a failed quality gate.
pub(crate) const GATE_FAILED: u8 = 3;

/// Builds silver; returns the exit code (3 when a month is kept out).
pub(crate) async fn run(lake: &Lake, args: &BuildArgs, out: &Output) -> anyhow::Result<u8> {
    install_aliases(lake, args.aliases.as_deref(), out).await?;
    let options = BuildOptions {
        months: args.month.clone(),
        force: args.force,
        jobs: args.jobs,
        cancel: crate::cancel(),
        progress: crate::progress::build_bar(!out.quiet && !out.json),
        limits: args.limits.limits(),
        memory: crate::memory::hooks(),
    };
    let report = gplake::build(lake, clock(), &options).await?;
    let status = gplake::status::status(lake).await?;
    if out.json {
        out.print_json(&report)?;
    } else if !out.quiet || !report.months.is_empty() {
        print_build(&report);
    }
    // This run brought the derived tables in step before it returned; if another run has
    // committed since, that run brings them in step in turn (`check` reports either way).
    Ok(if status.any_failed() { GATE_FAILED } else { 0 })
}

/// Makes the user's aliases file the lake's, when one is given.
pub(crate) async fn install_aliases(
    lake: &Lake,
    file: Option<&std::path::Path>,
    out: &Output,
) -> anyhow::Result<()> {
    let Some(file) = file else {
        return Ok(());
    };
    let aliases = gplake::build::aliases::install_file(lake, file).await?;
    if !out.quiet && !out.json {
        println!(
            "aliases: {} entries from {} in force (kept in the lake as _meta/aliases.toml)",
            aliases.entries().len(),
            file.display()
        );
    }
    Ok(())
}

/// Prints what a build did, month by month.
pub(crate) fn print_build(report: &BuildReport) {
    if let Some(note) = &report.upgraded {
        println!("{note}");
    }
    for m in &report.months {
        let verdict = match (m.committed, m.kept_out.is_empty()) {
            (true, true) => "built",
            (true, false) => "partial",
            (false, _) => "KEPT OUT",
        };
        let rows: Vec<String> = m
            .rows
            .iter()
            .filter(|r| r.1 > 0)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        let detail = match (m.committed, rows.is_empty()) {
            (false, _) => format!(
                "{} failure(s); this month's silver is as it was",
                m.failures.len()
            ),
            (true, true) => "no rows".to_string(),
            (true, false) => rows.join(", "),
        };
        println!("{}  {verdict:<8} {detail}", m.month);
        for f in m.failures.iter().take(5) {
            println!("    error: {f}");
        }
        if m.failures.len() > 5 {
            println!("    … {} more (gplake check)", m.failures.len() - 5);
        }
    }
    for r in report.series.iter().filter(|r| !r.passed) {
        println!("warning: {}", r.line());
    }
    println!("{}", report.summary());
}
