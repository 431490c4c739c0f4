//! `gplake sync` and `gplake fetch`: releases into bronze (and, for sync, through the build
//! pipeline), one summary line per stage.

use gplake::http::Http;
use gplake::{Lake, SyncOptions};

use crate::args::FetchArgs;
use crate::{Output, clock, progress};

/// Runs discover → fetch (→ build when `build`), prints the report, returns the exit code.
pub(crate) async fn run(
    lake: &Lake,
    args: &FetchArgs,
    out: &Output,
    build: bool,
) -> anyhow::Result<u8> {
    if build && !args.dry_run {
        super::build::install_aliases(lake, args.aliases.as_deref(), out).await?;
    }
    let source = args.source.source();
    let http =
        Http::try_new(args.source.http_config(), source.host()).map_err(gplake::Error::from)?;
    let clock = clock();
    let ctx = gplake::fetch::FetchContext {
        lake,
        http: &http,
        clock,
        progress: progress::bars(!out.quiet && !out.json),
    };
    let options = SyncOptions {
        source,
        from: args.source.first(),
        to: args.source.last(),
        fetch: args.fetch_options(),
        build: build.then(|| gplake::BuildOptions {
            cancel: crate::cancel(),
            progress: progress::build_bar(!out.quiet && !out.json),
            limits: args.limits.limits(),
            memory: crate::memory::hooks(),
            ..gplake::BuildOptions::default()
        }),
    };
    let report = gplake::sync::sync(&ctx, &options).await?;
    let code = match &report.build {
        Some(_) if gplake::status::status(lake).await?.any_failed() => super::build::GATE_FAILED,
        // Some month pages could not be read: the rest is done, the source is still at fault.
        _ if !report.discovery.failed.is_empty() => crate::SOURCE_UNREACHABLE,
        _ => 0,
    };
    if out.json {
        out.print_json(&report)?;
        return Ok(code);
    }
    if args.dry_run {
        for f in &report.fetch.files {
            let action = serde_json::to_value(f.action)?;
            let action = action.as_str().unwrap_or("?");
            println!("{}  {action:<11} {}", f.month, f.name);
        }
    }
    // Cron mails whatever a job prints: with --quiet, a run that changed nothing prints
    // nothing (failures still go to stderr as errors).
    let changed = report.fetch.fetched + report.fetch.withdrawn + report.fetch.restored > 0
        || report.build.as_ref().is_some_and(|b| !b.months.is_empty());
    for failed in &report.discovery.failed {
        eprintln!(
            "error: {}: month page not read, the other months went on: {}",
            failed.month, failed.reason
        );
    }
    if out.quiet && !changed {
        return Ok(code);
    }
    for skipped in &report.discovery.skipped_files {
        eprintln!("note: {} not read: {}", skipped.url, skipped.reason);
    }
    for release in &report.discovery.releases {
        for skipped in &release.skipped {
            eprintln!(
                "warning: {}: link not followed: {} ({})",
                release.month, skipped.url, skipped.reason
            );
        }
    }
    println!("{}", report.fetch.summary());
    if let Some(build) = &report.build {
        super::build::print_build(build);
    }
    Ok(code)
}
