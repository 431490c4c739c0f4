//! `gplake build`, `gplake check` and `gplake status`: silver, its quality gate, and what the
//! lake holds.

use gplake::Lake;
use gplake::silver::{BuildOptions, BuildReport};
use gplake::status::Status;

use crate::args::{BuildArgs, CheckArgs};
use crate::{Output, clock};

/// Exit code of a failed quality gate.
pub(crate) const GATE_FAILED: u8 = 3;

/// Builds silver; returns the exit code (3 when a month is kept out).
pub(crate) async fn build(lake_url: &str, args: &BuildArgs, out: &Output) -> anyhow::Result<u8> {
    let lake = Lake::open(lake_url)?;
    let options = BuildOptions {
        months: args.month.clone(),
        force: args.force,
        jobs: args.jobs,
    };
    let report = gplake::silver::build(&lake, clock(), &options).await?;
    let status = gplake::status::status(&lake).await?;
    if out.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !out.quiet {
        print_build(&report);
    }
    Ok(gate(&status))
}

/// Prints what a build did, month by month.
pub(crate) fn print_build(report: &BuildReport) {
    for m in &report.months {
        let verdict = if m.committed { "built" } else { "KEPT OUT" };
        let rows: Vec<String> = m
            .rows
            .iter()
            .filter(|r| r.1 > 0)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        println!("{}  {verdict:<8} {}", m.month, rows.join(", "));
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

/// Runs the series checks and prints the quality standing; returns the exit code.
pub(crate) async fn check(lake_url: &str, args: &CheckArgs, out: &Output) -> anyhow::Result<u8> {
    let lake = Lake::open(lake_url)?;
    let series = gplake::silver::series_rules(&lake).await?;
    let status = gplake::status::status(&lake).await?;
    if out.json {
        let json =
            serde_json::json!({ "months": status.months, "series": series, "gaps": status.gaps });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(gate(&status));
    }
    for m in status
        .months
        .iter()
        .filter(|m| args.month.is_empty() || args.month.contains(&m.month))
    {
        println!("{}  {}", m.month, m.silver);
        for f in &m.failures {
            println!("    error: {f}");
        }
    }
    for r in series.iter().filter(|r| !r.passed) {
        println!("warning: {}", r.line());
    }
    let failed = status
        .months
        .iter()
        .filter(|m| m.silver == "failed")
        .count();
    println!(
        "quality: {} months pass, {failed} kept out, {} series warnings",
        status.months.iter().filter(|m| m.silver == "built").count(),
        series.iter().filter(|r| !r.passed).count()
    );
    Ok(gate(&status))
}

/// Prints the lake's status.
pub(crate) async fn status(lake_url: &str, out: &Output) -> anyhow::Result<u8> {
    let lake = Lake::open(lake_url)?;
    let status = gplake::status::status(&lake).await?;
    if out.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(0);
    }
    print_status(&status);
    Ok(0)
}

fn print_status(status: &Status) {
    println!("lake {}", status.lake);
    println!(
        "{:<8} {:>6} {:>8} {:<11} {:<10} {:<12} source set",
        "month", "files", "revised", "published", "silver", "quality"
    );
    for m in &status.months {
        println!(
            "{:<8} {:>6} {:>8} {:<11} {:<10} {:<12} {}",
            m.month.to_string(),
            m.bronze_files,
            m.revised_files,
            m.published
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            m.silver,
            m.quality(),
            m.source_set.as_deref().unwrap_or("-")
        );
    }
    if !status.gaps.is_empty() {
        println!("gaps: {}", gplake::month::describe_runs(&status.gaps));
    }
    if let Some(at) = status.last_build {
        println!("last build: {}", at.format("%Y-%m-%d %H:%M UTC"));
    }
    match status.next_step() {
        Some(step) => println!("next: {step}"),
        None => println!("everything is current"),
    }
}

fn gate(status: &Status) -> u8 {
    if status.any_failed() { GATE_FAILED } else { 0 }
}
