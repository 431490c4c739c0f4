//! `gplake check`: the quality standing of every month and of the derived tables; exit 3
//! when a month is kept out or dims and gold are behind silver.

use gplake::Lake;
use gplake::build::state::SilverState;

use super::build::GATE_FAILED;
use crate::Output;
use crate::args::CheckArgs;

/// Runs the series checks and prints the quality standing; returns the exit code.
pub(crate) async fn run(lake: &Lake, args: &CheckArgs, out: &Output) -> anyhow::Result<u8> {
    let series = gplake::build::series(lake).await?;
    let status = gplake::status::status(lake).await?;
    let today = crate::clock().now().date_naive();
    let stale = args.max_age.and_then(|days| status.staleness(today, days));
    let gate = if status.gate_failed() || stale.is_some() {
        GATE_FAILED
    } else {
        0
    };
    if out.json {
        let json = serde_json::json!({ "months": status.months, "series": series, "gaps": status.gaps, "derived_behind": status.derived_behind, "stale": stale });
        out.print_json(&json)?;
        return Ok(gate);
    }
    print_text(&status, &series, args);
    if let Some(stale) = stale {
        println!("error: {stale}");
    }
    Ok(gate)
}

fn print_text(
    status: &gplake::status::Status,
    series: &[gplake::check::QualityResult],
    args: &CheckArgs,
) {
    for m in status
        .months
        .iter()
        .filter(|m| args.month.is_empty() || args.month.contains(&m.month))
    {
        println!("{}  {}", m.month, m.silver);
        for t in &m.tables {
            println!(
                "    {:<42} {:<9} {} rows",
                t.table,
                t.state.to_string(),
                t.rows
            );
        }
        for note in m.notes() {
            println!("    {note}");
        }
        for f in &m.failures {
            println!("    error: {f}");
        }
    }
    for r in series.iter().filter(|r| !r.passed) {
        println!("warning: {}", r.line());
    }
    let count = |f: &dyn Fn(&gplake::status::MonthStatus) -> bool| {
        status.months.iter().filter(|m| f(m)).count()
    };
    let failed = count(&|m| m.silver == SilverState::Failed);
    let partial = count(&|m| !m.kept_out_tables().is_empty());
    let passed = count(&|m| m.silver == SilverState::Built) - partial;
    println!(
        "quality: {passed} months pass, {partial} with a table kept out, {failed} kept out, {} series warnings",
        series.iter().filter(|r| !r.passed).count()
    );
    if !status.derived_behind.is_empty() {
        println!(
            "error: derived tables behind silver: {} (gplake build brings them in step)",
            status.derived_behind.join(", ")
        );
    }
}
