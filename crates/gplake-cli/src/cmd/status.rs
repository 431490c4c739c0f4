//! `gplake status`: what the lake holds, month by month, and the next command to run.

use gplake::Lake;
use gplake::status::Status;

use crate::Output;

/// Prints the lake's status.
pub(crate) async fn run(lake: &Lake, out: &Output) -> anyhow::Result<u8> {
    let status = gplake::status::status(lake).await?;
    if out.json {
        out.print_json(&status)?;
        return Ok(0);
    }
    print_status(&status);
    Ok(0)
}

fn print_status(status: &Status) {
    println!("lake {}", status.lake);
    println!(
        "{:<8} {:>6} {:>8} {:<11} {:<10} {:<12} {:<10} national",
        "month", "files", "revised", "published", "silver", "quality", "source set"
    );
    for m in &status.months {
        println!(
            "{:<8} {:>6} {:>8} {:<11} {:<10} {:<12} {:<10} {}",
            m.month.to_string(),
            m.bronze_files,
            m.revised_files,
            m.published
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            m.silver.to_string(),
            m.quality(),
            m.source_set.as_deref().unwrap_or("-"),
            m.national.map_or("-".into(), |n| n.describe())
        );
        for note in m.notes() {
            println!("         {note}");
        }
    }
    if !status.gaps.is_empty() {
        println!("gaps: {}", gplake::month::describe_runs(&status.gaps));
    }
    if let Some(note) = &status.upgrade_needed {
        println!("{note}");
    }
    if !status.derived_behind.is_empty() {
        println!(
            "derived tables behind silver: {}",
            status.derived_behind.join(", ")
        );
    }
    if let Some(at) = status.last_build {
        println!("last build: {}", at.format("%Y-%m-%d %H:%M UTC"));
    }
    match status.next_step() {
        Some(step) => println!("next: {step}"),
        None => println!("everything is current"),
    }
}
