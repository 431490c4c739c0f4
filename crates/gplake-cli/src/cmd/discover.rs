//! `gplake discover`: the releases upstream, as text or JSON.

use gplake::discover::{Discovery, discover};
use gplake::http::Http;
use gplake::sync::month_range;

use crate::args::SourceArgs;
use crate::{Output, clock};

/// Runs discovery and prints what it found.
pub(crate) async fn run(args: &SourceArgs, out: &Output) -> anyhow::Result<()> {
    let source = args.source();
    let http = Http::try_new(args.http_config(), source.host()).map_err(gplake::Error::from)?;
    let clock = clock();
    let (from, to) = month_range(clock, args.first(), args.last());
    let discovery = discover(&http, &source, from, to, args.jobs)
        .await
        .map_err(gplake::Error::from)?;
    if out.json {
        out.print_json(&discovery)?;
    } else {
        print_text(&discovery);
    }
    Ok(())
}

fn print_text(discovery: &Discovery) {
    for release in &discovery.releases {
        let published = release
            .published
            .map(|d| format!("published {d}"))
            .unwrap_or_else(|| "published ?".into());
        println!("{}  {published}  {}", release.month, release.page_url);
        for file in &release.files {
            let kind = serde_json::to_value(&file.kind).unwrap_or_default();
            println!(
                "  {:<20} {:<9} {:<4} {}",
                kind["family"].as_str().unwrap_or("?"),
                kind["era"].as_str().unwrap_or("?"),
                kind["container"].as_str().unwrap_or("?"),
                file.name
            );
        }
        for skipped in &release.skipped {
            println!("  skipped {}: {}", skipped.url, skipped.reason);
        }
    }
    println!(
        "{} releases, {} files; {} months without a release, {} upcoming",
        discovery.releases.len(),
        discovery
            .releases
            .iter()
            .map(|r| r.files.len())
            .sum::<usize>(),
        discovery.absent.len(),
        discovery.upcoming.len()
    );
}
