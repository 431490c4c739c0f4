//! Fetch: every file of every discovered release, byte for byte, into bronze.
//!
//! Downloads stream to local temporary files (hashed on the way), never whole into memory.
//! A new or changed file goes to the lake's staging folder as soon as it has arrived and its
//! temporary copy is removed (`staging.rs`), so temporary disk holds at most `jobs` files.
//! When every file of a month has arrived, they are moved into bronze under the month's
//! lease, by the protocol in `commit.rs`; a month whose download fails leaves bronze
//! untouched. A run against an unchanged source writes nothing (not even a lease). Reports
//! what it did in a [`FetchReport`].

mod commit;
pub mod lease;
pub mod manifest;
mod staging;

use std::path::PathBuf;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::clock::Clock;
use crate::discover::{Discovery, Release, ReleaseFile};
use crate::http::{Download, Fetched, Http, HttpError, Progress, Validators};
use crate::lake::{Lake, LakeError};
use crate::month::Month;

pub use lease::{LockError, unlock};
pub use manifest::{FileRevision, Manifest, ManifestError, ManifestFile};
pub use staging::STAGING_DIR;

/// How fetching behaves.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Concurrent downloads.
    pub jobs: usize,
    /// Plan only: download and write nothing.
    pub dry_run: bool,
    /// How long a month lease lives unrenewed before another run may take it over (its
    /// holder renews it every third of this).
    pub lock_ttl: Duration,
    /// Download every file whole (no conditional requests) and compare what bronze holds
    /// with its manifest, restoring any bronze file whose bytes are not the ones recorded.
    pub verify: bool,
    /// When tripped, downloads in flight are abandoned and no further month is started; a
    /// month already being written into bronze finishes. The fetch then ends with
    /// [`FetchError::Cancelled`].
    pub cancel: crate::Cancel,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions {
            jobs: 4,
            dry_run: false,
            lock_ttl: Duration::from_secs(120),
            verify: false,
            cancel: crate::Cancel::new(),
        }
    }
}

/// A fetch failure, naming the month and file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// A download failed (the HTTP error names the URL).
    #[error("month {month}, file {file}: {source}")]
    Http {
        /// The month.
        month: Month,
        /// The file.
        file: String,
        /// The HTTP failure.
        source: HttpError,
    },
    /// A local (hand-downloaded or temporary) file could not be read.
    #[error("month {month}, file {file}: {source}")]
    LocalIo {
        /// The month.
        month: Month,
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A manifest could not be read or written.
    #[error("month {month}: {source}")]
    Manifest {
        /// The month.
        month: Month,
        /// The cause.
        source: ManifestError,
    },
    /// The month lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The lake failed while writing a month.
    #[error("month {month}: {source}")]
    Lake {
        /// The month.
        month: Month,
        /// The cause.
        source: LakeError,
    },
    /// The caller cancelled the fetch: the months listed were written whole before it
    /// stopped; no other month's bronze was touched.
    #[error("fetch cancelled: {}", written_summary(.written))]
    Cancelled {
        /// Months written into bronze before the fetch stopped.
        written: Vec<Month>,
    },
}

fn written_summary(written: &[Month]) -> String {
    match written {
        [] => "no month's bronze was changed".to_string(),
        months => {
            let months: Vec<String> = months.iter().map(Month::to_string).collect();
            format!(
                "bronze of {} was written whole before it stopped",
                months.join(", ")
            )
        }
    }
}

/// What happened (or, in a dry run, would happen) to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// First bytes of a file: written.
    New,
    /// Changed bytes: written as a new revision, the old ones kept.
    Revised,
    /// Same bytes as bronze already holds: nothing written.
    Unchanged,
    /// (`--verify`) Bronze held other bytes than its manifest records: the recorded bytes,
    /// downloaded again, were put back.
    Restored,
    /// Dry run: not in bronze, would be fetched.
    WouldFetch,
    /// Dry run: in bronze, would be checked for changes.
    WouldCheck,
    /// In bronze, but its month page (read cleanly, still linking other data files) no
    /// longer links it: marked withdrawn in the manifest, kept, and not used by builds.
    Withdrawn,
}

/// One file's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileOutcome {
    /// The month.
    pub month: Month,
    /// The name in bronze.
    pub name: String,
    /// What happened.
    pub action: Action,
    /// Bytes of the current revision, when known.
    pub size: Option<u64>,
    /// SHA-256 of the current revision, when known.
    pub sha256: Option<String>,
}

/// What a fetch did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FetchReport {
    /// Releases considered.
    pub months: usize,
    /// Months whose bronze changed.
    pub months_written: Vec<Month>,
    /// Files written (new + revised).
    pub fetched: usize,
    /// Files seen for the first time.
    pub new_files: usize,
    /// Files with changed bytes.
    pub revised: usize,
    /// Files with the same bytes as before.
    pub unchanged: usize,
    /// (`--verify`) Bronze files put back to the bytes their manifest records.
    pub restored: usize,
    /// Files their page no longer links (kept in bronze, marked withdrawn, not used).
    pub withdrawn: usize,
    /// Bytes written to bronze.
    pub bytes: u64,
    /// A plan, not a run: nothing was written.
    pub dry_run: bool,
    /// Every file's outcome.
    pub files: Vec<FileOutcome>,
}

impl FetchReport {
    /// The one-line summary: `N months, M files fetched (X MB), K unchanged, R revised`.
    pub fn summary(&self) -> String {
        if self.dry_run {
            let new = self.count(Action::WouldFetch);
            let known = self.count(Action::WouldCheck);
            return format!(
                "dry run: {} months, {new} files to fetch, {known} already in bronze to check; nothing written",
                self.months
            );
        }
        let line = format!(
            "{} months, {} files fetched ({:.1} MB), {} unchanged, {} revised",
            self.months,
            self.fetched,
            self.bytes as f64 / 1e6,
            self.unchanged,
            self.revised
        );
        let line = match self.restored {
            0 => line,
            n => format!("{line}, {n} restored (bronze held other bytes than its manifest)"),
        };
        let line = match self.withdrawn {
            0 => line,
            n => format!("{line}, {n} withdrawn (no longer linked: kept in bronze, not used)"),
        };
        if self.fetched == 0 && self.withdrawn == 0 && self.restored == 0 {
            format!("{line}; bronze is up to date, nothing written")
        } else {
            line
        }
    }

    fn count(&self, action: Action) -> usize {
        self.files.iter().filter(|f| f.action == action).count()
    }

    fn add(&mut self, outcome: FileOutcome) {
        match outcome.action {
            Action::New => self.new_files += 1,
            Action::Revised => self.revised += 1,
            Action::Unchanged => self.unchanged += 1,
            Action::Withdrawn => self.withdrawn += 1,
            Action::Restored => self.restored += 1,
            Action::WouldFetch | Action::WouldCheck => {}
        }
        let marked = matches!(outcome.action, Action::Withdrawn | Action::Restored);
        if marked && self.months_written.last() != Some(&outcome.month) {
            self.months_written.push(outcome.month);
        }
        if matches!(outcome.action, Action::New | Action::Revised) {
            self.fetched += 1;
            self.bytes += outcome.size.unwrap_or(0);
            if self.months_written.last() != Some(&outcome.month) {
                self.months_written.push(outcome.month);
            }
        }
        self.files.push(outcome);
    }
}

/// The I/O a fetch needs, passed in.
#[derive(Clone)]
pub struct FetchContext<'a> {
    /// The lake.
    pub lake: &'a Lake,
    /// The HTTP client.
    pub http: &'a Http,
    /// The clock.
    pub clock: &'a dyn Clock,
    /// Byte progress, for progress bars.
    pub progress: Option<Progress>,
}

/// A downloaded file whose bytes may be new to bronze.
#[derive(Debug)]
pub(crate) struct Candidate {
    pub(crate) file: ReleaseFile,
    pub(crate) bytes: Waiting,
    pub(crate) fetched: Fetched,
    /// The manifest already records these bytes, but bronze holds others: put them back.
    pub(crate) restore: bool,
}

/// Where a candidate's bytes wait to go into bronze.
#[derive(Debug)]
pub(crate) enum Waiting {
    /// In a temporary file, just downloaded.
    Downloaded(PathBuf),
    /// In the lake's staging folder.
    Staged(object_store::path::Path),
    /// A hand-downloaded file in a source folder (never removed).
    Source(PathBuf),
}

enum Staged {
    Unchanged(FileOutcome),
    Candidate(Box<Candidate>),
}

/// Fetches every release in `discovery` into bronze.
pub async fn fetch(
    ctx: &FetchContext<'_>,
    discovery: &Discovery,
    options: &FetchOptions,
) -> Result<FetchReport, FetchError> {
    let mut report = FetchReport {
        months: discovery.releases.len(),
        dry_run: options.dry_run,
        ..FetchReport::default()
    };
    let outcomes = if options.dry_run {
        plan(ctx.lake, discovery).await?
    } else {
        run(ctx, discovery, options).await?
    };
    outcomes.into_iter().for_each(|o| report.add(o));
    Ok(report)
}

async fn plan(lake: &Lake, discovery: &Discovery) -> Result<Vec<FileOutcome>, FetchError> {
    let mut outcomes = Vec::new();
    for release in &discovery.releases {
        let manifest = read_manifest(lake, release.month).await?;
        for file in &release.files {
            let known = manifest.as_ref().and_then(|m| m.file(&file.name));
            outcomes.push(FileOutcome {
                month: release.month,
                name: file.name.clone(),
                action: if known.is_some() {
                    Action::WouldCheck
                } else {
                    Action::WouldFetch
                },
                size: known.map(|k| k.current.size),
                sha256: known.map(|k| k.current.sha256.clone()),
            });
        }
    }
    Ok(outcomes)
}

async fn run(
    ctx: &FetchContext<'_>,
    discovery: &Discovery,
    options: &FetchOptions,
) -> Result<Vec<FileOutcome>, FetchError> {
    let tmp = tempfile::Builder::new()
        .prefix("gplake-fetch-")
        .tempdir()
        .map_err(|source| FetchError::LocalIo {
            month: discovery
                .releases
                .first()
                .map(|r| r.month)
                .unwrap_or(Month::FIRST),
            file: std::env::temp_dir().display().to_string(),
            source,
        })?;
    let lake_err = |source| FetchError::Lake {
        month: discovery
            .releases
            .first()
            .map(|r| r.month)
            .unwrap_or(Month::FIRST),
        source,
    };
    staging::sweep(ctx.lake).await.map_err(lake_err)?;
    let staging = staging::Staging::new();
    let place = Place {
        permits: Semaphore::new(options.jobs.max(1)),
        tmp: tmp.path(),
        staging: &staging,
    };
    let per_month: Result<Vec<Vec<FileOutcome>>, FetchError> =
        futures::stream::iter(&discovery.releases)
            .map(|release| fetch_release(ctx, release, &place, options))
            .buffered(options.jobs.max(1))
            .try_collect()
            .await;
    let cleared = staging.clear(ctx.lake).await;
    let per_month = per_month?;
    cleared.map_err(lake_err)?;
    let outcomes: Vec<FileOutcome> = per_month.into_iter().flatten().collect();
    if options.cancel.is_cancelled() {
        let mut written: Vec<Month> = outcomes
            .iter()
            .filter(|o| o.action != Action::Unchanged)
            .map(|o| o.month)
            .collect();
        written.dedup();
        return Err(FetchError::Cancelled { written });
    }
    Ok(outcomes)
}

/// Where a run's downloads go: a slot from `permits` while a file is local, a temporary
/// file in `tmp`, then the lake's staging folder.
struct Place<'a> {
    permits: Semaphore,
    tmp: &'a std::path::Path,
    staging: &'a staging::Staging,
}

/// Fetches one release: every file is downloaded and staged first (each holding a slot
/// while it is on local disk), so a month whose download fails leaves bronze exactly as it
/// was; then, under the month's lease, each new or changed file is moved into bronze.
///
/// A cancelled fetch abandons the month before its bronze is touched (nothing for this
/// month, not an error, so that months already writing finish rather than being dropped);
/// [`run`] then reports the cancellation.
async fn fetch_release<'a>(
    ctx: &'a FetchContext<'a>,
    release: &'a Release,
    place: &Place<'_>,
    options: &FetchOptions,
) -> Result<Vec<FileOutcome>, FetchError> {
    let staged = tokio::select! {
        biased;
        () = options.cancel.cancelled() => return Ok(Vec::new()),
        staged = stage_release(ctx, release, place, options) => staged?,
    };
    let (manifest, staged) = staged;
    if options.cancel.is_cancelled() {
        return Ok(Vec::new());
    }
    write_release(ctx, release, manifest, staged, options).await
}

/// Reads the month's manifest, then downloads and stages every file of the release.
async fn stage_release(
    ctx: &FetchContext<'_>,
    release: &Release,
    place: &Place<'_>,
    options: &FetchOptions,
) -> Result<(Option<Manifest>, Vec<Staged>), FetchError> {
    let manifest = read_manifest(ctx.lake, release.month).await?;
    let staged: Vec<Staged> = futures::stream::iter(release.files.iter().enumerate())
        .map(|(i, file)| {
            let known = manifest.as_ref().and_then(|m| m.file(&file.name));
            let local = place.tmp.join(format!("{}-{i}", release.month));
            let at = place.staging.path(release.month, i);
            async move {
                let _permit = place
                    .permits
                    .acquire()
                    .await
                    .expect("semaphore never closes");
                let staged = stage(ctx, release.month, file, known, local, options.verify).await?;
                to_staging(ctx.lake, release.month, staged, at).await
            }
        })
        .buffered(release.files.len().max(1))
        .try_collect()
        .await?;
    Ok((manifest, staged))
}

/// Moves a release's new and changed files into bronze under the month's lease.
async fn write_release(
    ctx: &FetchContext<'_>,
    release: &Release,
    manifest: Option<Manifest>,
    staged: Vec<Staged>,
    options: &FetchOptions,
) -> Result<Vec<FileOutcome>, FetchError> {
    let mut outcomes = Vec::new();
    let mut candidates = Vec::new();
    for s in staged {
        match s {
            Staged::Unchanged(o) => outcomes.push(o),
            Staged::Candidate(c) => candidates.push(*c),
        }
    }
    let relinking = manifest
        .as_ref()
        .is_some_and(|m| !commit::links_changed(m, release).is_empty());
    if !candidates.is_empty() || relinking {
        let writer = commit::MonthWriter::open(ctx, release, options.lock_ttl).await?;
        outcomes.extend(writer.write_all(candidates).await?);
    }
    for o in &outcomes {
        match o.action {
            Action::Unchanged => tracing::debug!(month = %o.month, file = %o.name, "unchanged"),
            action => {
                tracing::info!(month = %o.month, file = %o.name, ?action, bytes = o.size, "bronze")
            }
        }
    }
    Ok(outcomes)
}

/// Brings one file's bytes to a local file and decides whether bronze already has them.
async fn stage(
    ctx: &FetchContext<'_>,
    month: Month,
    file: &ReleaseFile,
    known: Option<&ManifestFile>,
    local: PathBuf,
    verify: bool,
) -> Result<Staged, FetchError> {
    let (local, download) = if file.url.scheme() == "file" {
        let path = file.url.to_file_path().unwrap_or_default();
        let fetched = hash_local(month, &file.name, &path).await?;
        (path, Download::Fetched(fetched))
    } else {
        let validators = match verify {
            true => Validators::default(),
            false => validators_for(file, known),
        };
        let key = format!("{month}/{}", file.name);
        let download = ctx
            .http
            .download(&file.url, &validators, &local, &key, ctx.progress.as_ref())
            .await
            .map_err(|source| FetchError::Http {
                month,
                file: file.name.clone(),
                source,
            })?;
        (local, download)
    };
    crate::failpoint::point("download");
    let unchanged = |size, sha256| {
        Staged::Unchanged(FileOutcome {
            month,
            name: file.name.clone(),
            action: Action::Unchanged,
            size,
            sha256,
        })
    };
    let known_facts = known.map(|k| (Some(k.current.size), Some(k.current.sha256.clone())));
    Ok(match download {
        Download::NotModified => {
            let (size, sha) = known_facts.unwrap_or_default();
            unchanged(size, sha)
        }
        Download::Fetched(f) if known.is_some_and(|k| k.current.sha256 == f.sha256) => {
            let known = known.expect("matched above");
            if verify && !bronze_holds(ctx.lake, month, known).await? {
                return Ok(candidate(file, local, f, true));
            }
            remove_download(file, &local).await;
            unchanged(Some(f.size), Some(f.sha256))
        }
        Download::Fetched(fetched) => candidate(file, local, fetched, false),
    })
}

fn candidate(file: &ReleaseFile, local: PathBuf, fetched: Fetched, restore: bool) -> Staged {
    Staged::Candidate(Box::new(Candidate {
        file: file.clone(),
        bytes: match file.url.scheme() {
            "file" => Waiting::Source(local),
            _ => Waiting::Downloaded(local),
        },
        fetched,
        restore,
    }))
}

/// True when bronze holds the bytes the manifest records for `known` (read whole and
/// hashed: `--verify` only).
async fn bronze_holds(lake: &Lake, month: Month, known: &ManifestFile) -> Result<bool, FetchError> {
    let path = known
        .current
        .path
        .split('/')
        .fold(Lake::bronze_month_dir(month), |p, part| p.join(part));
    let found = lake
        .sha256_of(&path)
        .await
        .map_err(|source| FetchError::Lake { month, source })?;
    if found != known.current.sha256 {
        tracing::warn!(%month, file = %known.name, expected = %known.current.sha256, %found,
            "bronze holds other bytes than its manifest records: restoring them");
    }
    Ok(found == known.current.sha256)
}

/// Moves a downloaded candidate's bytes from local disk to `at` in the lake's staging folder
/// and removes the temporary copy (a hand-downloaded source file stays where it is).
async fn to_staging(
    lake: &Lake,
    month: Month,
    staged: Staged,
    at: object_store::path::Path,
) -> Result<Staged, FetchError> {
    let Staged::Candidate(mut c) = staged else {
        return Ok(staged);
    };
    let Waiting::Downloaded(local) = &c.bytes else {
        return Ok(Staged::Candidate(c));
    };
    let lake_err = |source| FetchError::Lake { month, source };
    lake.ensure_conditional_writes().await.map_err(lake_err)?;
    lake.upload_file(&at, local).await.map_err(lake_err)?;
    remove_download(&c.file, local).await;
    c.bytes = Waiting::Staged(at);
    Ok(Staged::Candidate(c))
}

/// Removes a download's temporary copy (never a hand-downloaded source file).
pub(crate) async fn remove_download(file: &ReleaseFile, local: &std::path::Path) {
    if file.url.scheme() != "file" {
        let _ = tokio::fs::remove_file(local).await;
    }
}

/// Conditional-request validators, only when the file is still served from the same URL.
fn validators_for(file: &ReleaseFile, known: Option<&ManifestFile>) -> Validators {
    match known {
        Some(k) if k.current.source_url == file.url.as_str() => Validators {
            etag: k.current.etag.clone(),
            last_modified: k.current.last_modified.clone(),
        },
        _ => Validators::default(),
    }
}

async fn hash_local(
    month: Month,
    name: &str,
    path: &std::path::Path,
) -> Result<Fetched, FetchError> {
    let io = |source| FetchError::LocalIo {
        month,
        file: path.display().to_string(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf)
            .await
            .map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    tracing::debug!(%month, name, size, "hashed local file");
    Ok(Fetched {
        size,
        sha256: hex::encode(hasher.finalize()),
        etag: None,
        last_modified: None,
    })
}

async fn read_manifest(lake: &Lake, month: Month) -> Result<Option<Manifest>, FetchError> {
    Manifest::read(lake, month)
        .await
        .map_err(|source| FetchError::Manifest { month, source })
}
