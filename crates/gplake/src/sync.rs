//! Sync: the main job. Discover releases, then bring every new or changed file into bronze.
//!
//! Then the build pipeline runs for the months in range whose bronze changed (a scoped sync,
//! `--from M --to M`, touches only those months' bronze and silver), and brings the derived
//! tables of the whole lake in step.
//! Idempotent: against an unchanged source a second run writes nothing and says so.

use serde::Serialize;

use crate::build::{BuildOptions, BuildReport};
use crate::clock::Clock;
use crate::discover::{Discovery, Source, discover};
use crate::error::Error;
use crate::fetch::{FetchContext, FetchOptions, FetchReport, fetch};
use crate::month::Month;

/// What to sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Where releases come from.
    pub source: Source,
    /// First month (default: the first release, 2013-10).
    pub from: Option<Month>,
    /// Last month (default: the clock's current month).
    pub to: Option<Month>,
    /// Fetch settings (jobs, dry run, lock time-to-live).
    pub fetch: FetchOptions,
    /// Run the build pipeline after bronze (not in a dry run), with these options; the
    /// months default to the `from`/`to` range when given. `None`: bronze only.
    pub build: Option<BuildOptions>,
}

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// What discovery found.
    pub discovery: Discovery,
    /// What fetching did.
    pub fetch: FetchReport,
    /// What building silver did (`None` in a dry run or a bronze-only fetch).
    pub build: Option<BuildReport>,
}

impl SyncReport {
    /// The one-line summary.
    pub fn summary(&self) -> String {
        match &self.build {
            Some(build) => format!("{}\n{}", self.fetch.summary(), build.summary()),
            None => self.fetch.summary(),
        }
    }
}

/// The month range an option pair stands for.
pub fn month_range(clock: &dyn Clock, from: Option<Month>, to: Option<Month>) -> (Month, Month) {
    let to = to.unwrap_or_else(|| Month::of(clock.now().date_naive()));
    (from.unwrap_or(Month::FIRST), to)
}

/// The months a scoped sync builds: those of `--from`/`--to` when given, else every month
/// (empty means all).
fn scope(options: &SyncOptions, from: Month, to: Month) -> Vec<Month> {
    if options.from.is_none() && options.to.is_none() {
        return Vec::new();
    }
    Month::range(from, to).collect()
}

/// Runs discovery, fetch, and the build of the months in range (dims and gold for the
/// whole lake).
pub async fn sync(ctx: &FetchContext<'_>, options: &SyncOptions) -> Result<SyncReport, Error> {
    let (from, to) = month_range(ctx.clock, options.from, options.to);
    let started = std::time::Instant::now();
    let discovery = discover(ctx.http, &options.source, from, to, options.fetch.jobs).await?;
    crate::failpoint::point("discover");
    tracing::info!(
        releases = discovery.releases.len(),
        failed = discovery.failed.len(),
        %from,
        %to,
        ms = started.elapsed().as_millis() as u64,
        "discovered"
    );
    let started = std::time::Instant::now();
    let fetch = fetch(ctx, &discovery, &options.fetch).await?;
    tracing::info!(
        fetched = fetch.fetched,
        unchanged = fetch.unchanged,
        megabytes = fetch.bytes as f64 / 1e6,
        ms = started.elapsed().as_millis() as u64,
        "fetched"
    );
    let build = match &options.build {
        Some(build) if !options.fetch.dry_run => {
            let mut build = build.clone();
            if build.months.is_empty() {
                build.months = scope(options, from, to);
            }
            Some(crate::build::build(ctx.lake, ctx.clock, &build).await?)
        }
        _ => None,
    };
    Ok(SyncReport {
        discovery,
        fetch,
        build,
    })
}
