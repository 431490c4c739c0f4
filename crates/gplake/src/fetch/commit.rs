//! Writing a month's new and changed files to bronze, safe against crashes, a second sync and
//! a writer that lost its lease.
//!
//! Under the month lease ([`MonthWriter`]), with the manifest read once with its version:
//! 1. for a revised file, the bytes about to be replaced are copied, create-only, to
//!    `_revisions/<sha256>/<name>` (content-addressed, so a second writer can never put other
//!    bytes there), and a manifest pointing the file's current revision at that copy is
//!    written;
//! 2. each file's new bytes are moved in from the staging folder (`staging.rs`);
//! 3. the final manifest is written.
//!
//! Every manifest write is conditional on the version this writer last read or wrote (on a
//! local folder, the OS lock does that job), and every write is preceded by a lease check,
//! so a writer whose lease was taken fails instead of overwriting its successor's work. At
//! every instant each path the visible manifest names holds the bytes it records; a crash
//! leaves at worst an unlisted file that the next run overwrites.

use std::time::Duration;

use object_store::UpdateVersion;
use object_store::path::Path;

use super::lease::{LockError, MonthLease};
use super::manifest::{FileRevision, Manifest, ManifestFile, REVISIONS_DIR};
use super::{Action, Candidate, FetchContext, FetchError, FileOutcome, Waiting};
use crate::discover::Release;
use crate::lake::{Copied, Lake, LakeError};
use crate::month::Month;

/// A month being written: its lease and the manifest as this writer last wrote it.
pub(crate) struct MonthWriter<'a> {
    lake: &'a Lake,
    release: &'a Release,
    now: chrono::DateTime<chrono::Utc>,
    lease: MonthLease,
    book: tokio::sync::Mutex<Book>,
}

struct Book {
    manifest: Manifest,
    version: Option<UpdateVersion>,
}

impl<'a> MonthWriter<'a> {
    /// Takes the month's lease and reads its manifest.
    pub(crate) async fn open(
        ctx: &'a FetchContext<'a>,
        release: &'a Release,
        lease_ttl: Duration,
    ) -> Result<MonthWriter<'a>, FetchError> {
        let month = release.month;
        ctx.lake
            .ensure_conditional_writes()
            .await
            .map_err(|source| FetchError::Lake { month, source })?;
        let lease = MonthLease::acquire(ctx.lake, month, lease_ttl).await?;
        let now = ctx.clock.now();
        let read = Manifest::read_versioned(ctx.lake, month)
            .await
            .map_err(|source| FetchError::Manifest { month, source })?;
        let (mut manifest, version) = match read {
            Some((m, v)) => (m, Some(v)),
            None => (Manifest::new(month, &release.page_url, now), None),
        };
        manifest.page_url = release.page_url.clone();
        manifest.published = release.published.or(manifest.published);
        let book = tokio::sync::Mutex::new(Book { manifest, version });
        Ok(MonthWriter {
            lake: ctx.lake,
            release,
            now,
            lease,
            book,
        })
    }

    /// Writes one downloaded file (steps 1 and 2) and records it in the manifest to come.
    async fn add(&self, candidate: Candidate) -> Result<FileOutcome, FetchError> {
        let month = self.release.month;
        let lake_err = |source| FetchError::Lake { month, source };
        let Some(action) = self.preserve_replaced(&candidate).await? else {
            return Ok(unchanged(month, &candidate));
        };
        self.lease.check().await?;
        let target = Lake::bronze_month_dir(month).join(candidate.file.name.as_str());
        match &candidate.bytes {
            Waiting::Staged(staged) => self.lake.rename(staged, &target).await,
            Waiting::Source(local) | Waiting::Downloaded(local) => {
                self.lake.upload_file(&target, local).await
            }
        }
        .map_err(lake_err)?;
        crate::failpoint::point("bronze-file");
        let mut book = self.book.lock().await;
        Ok(record(
            &mut book.manifest,
            self.release,
            candidate,
            action,
            self.now,
        ))
    }

    /// Writes every candidate, then the final manifest, and lets the lease go (also when a
    /// write failed, so the next run need not wait for it to go stale).
    pub(crate) async fn write_all(
        self,
        candidates: Vec<Candidate>,
    ) -> Result<Vec<FileOutcome>, FetchError> {
        let result = self.write_files(candidates).await;
        let released = self.lease.release().await;
        let outcomes = result?;
        released?;
        Ok(outcomes)
    }

    async fn write_files(
        &self,
        candidates: Vec<Candidate>,
    ) -> Result<Vec<FileOutcome>, FetchError> {
        let mut outcomes = Vec::with_capacity(candidates.len());
        for c in candidates {
            outcomes.push(self.add(c).await?);
        }
        outcomes.extend(self.write_final().await?);
        Ok(outcomes)
    }

    async fn write_final(&self) -> Result<Vec<FileOutcome>, FetchError> {
        let mut book = self.book.lock().await;
        let outcomes = mark_withdrawn(&mut book.manifest, self.release, self.now);
        book.manifest.updated_at = self.now;
        self.write_manifest(&mut book).await?;
        crate::failpoint::point("manifest");
        Ok(outcomes)
    }

    /// Step 1: `None` when another run already wrote these bytes; otherwise whether the file
    /// is new or revised, its replaced bytes kept and the manifest pointing at them.
    async fn preserve_replaced(&self, c: &Candidate) -> Result<Option<Action>, FetchError> {
        let month = self.release.month;
        let mut book = self.book.lock().await;
        let Some(entry) = book.manifest.file(&c.file.name) else {
            return Ok(Some(Action::New));
        };
        if entry.current.sha256 == c.fetched.sha256 {
            return Ok(c.restore.then_some(Action::Restored));
        }
        let kept = revision_path(&entry.current.sha256, &entry.name);
        if entry.current.path != kept {
            self.lease.check().await?;
            let dir = Lake::bronze_month_dir(month);
            let from = dir.child_path(&entry.current.path);
            let to = dir.child_path(&kept);
            let sha = entry.current.sha256.clone();
            keep_copy(self.lake, &from, &to, &sha)
                .await
                .map_err(|source| FetchError::Lake { month, source })?
                .map_err(|found| LockError::Lost {
                    month,
                    by: format!(
                        "a writer that replaced {} (now sha256 {found})",
                        c.file.name
                    ),
                })?;
            let entry = book.manifest.file_mut(&c.file.name).expect("found above");
            entry.current.path = kept;
            book.manifest.updated_at = self.now;
            self.write_manifest(&mut book).await?;
        }
        Ok(Some(Action::Revised))
    }

    /// A conditional manifest write; a conflict means the lease was lost.
    async fn write_manifest(&self, book: &mut Book) -> Result<(), FetchError> {
        let month = self.release.month;
        self.lease.check().await?;
        let written = book
            .manifest
            .write_versioned(self.lake, book.version.as_ref())
            .await
            .map_err(|source| FetchError::Manifest { month, source })?;
        match written {
            Some(v) => {
                book.version = Some(v);
                Ok(())
            }
            None => Err(LockError::Lost {
                month,
                by: "a writer that changed the manifest".into(),
            }
            .into()),
        }
    }
}

/// Copies the bytes a revision replaces to their content-addressed place; `Err(sha)` when
/// what landed there is not those bytes (another writer changed the file meanwhile).
async fn keep_copy(
    lake: &Lake,
    from: &Path,
    to: &Path,
    sha256: &str,
) -> Result<Result<(), String>, LakeError> {
    if lake.copy_if_absent(from, to).await? != Copied::Unguarded {
        return Ok(Ok(()));
    }
    let found = lake.sha256_of(to).await?;
    if found == sha256 {
        return Ok(Ok(()));
    }
    lake.delete(to).await?;
    Ok(Err(found))
}

/// The files whose withdrawal a read of `release`'s page changes: in bronze and no longer
/// linked (to be marked withdrawn), or marked withdrawn and linked again. Only a web page
/// says what is withdrawn: a folder of hand downloads may hold part of a release.
pub(crate) fn links_changed(manifest: &Manifest, release: &Release) -> Vec<String> {
    if !release.page_url.starts_with("http") || release.files.is_empty() {
        return Vec::new();
    }
    manifest
        .files
        .iter()
        .filter(|f| {
            let linked = release.files.iter().any(|r| r.name == f.name);
            linked == f.withdrawn.is_some()
        })
        .map(|f| f.name.clone())
        .collect()
}

/// Marks files the page no longer links as withdrawn (and clears the mark of files
/// linked again).
fn mark_withdrawn(
    manifest: &mut Manifest,
    release: &Release,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<FileOutcome> {
    let month = manifest.month;
    let mut outcomes = Vec::new();
    for name in links_changed(manifest, release) {
        let Some(entry) = manifest.file_mut(&name) else {
            continue;
        };
        if entry.withdrawn.is_some() {
            entry.withdrawn = None;
            continue;
        }
        tracing::warn!(%month, file = %name, "no longer linked from its month page: marked withdrawn, not used");
        entry.withdrawn = Some(now);
        outcomes.push(FileOutcome {
            month,
            name,
            action: Action::Withdrawn,
            size: Some(entry.current.size),
            sha256: Some(entry.current.sha256.clone()),
        });
    }
    outcomes
}

/// The manifest entry after its bytes are in place.
fn record(
    manifest: &mut Manifest,
    release: &Release,
    c: Candidate,
    action: Action,
    now: chrono::DateTime<chrono::Utc>,
) -> FileOutcome {
    let month = manifest.month;
    if action == Action::Restored {
        return restored(manifest, c);
    }
    let mut current = FileRevision {
        revision: 1,
        path: c.file.name.clone(),
        source_url: c.file.url.to_string(),
        page_url: release.page_url.clone(),
        published: release.published,
        etag: c.fetched.etag.clone(),
        last_modified: c.fetched.last_modified.clone(),
        size: c.fetched.size,
        sha256: c.fetched.sha256.clone(),
        fetched_at: now,
        replaced_at: None,
    };
    match manifest.file_mut(&c.file.name) {
        Some(entry) => {
            current.revision = entry.current.revision + 1;
            let mut old = std::mem::replace(&mut entry.current, current);
            old.replaced_at = Some(now);
            entry.revisions.push(old);
        }
        None => manifest.files.push(ManifestFile {
            name: c.file.name.clone(),
            original_name: c.file.original_name.clone(),
            kind: c.file.kind.clone(),
            link_text: c.file.link_text.clone(),
            current,
            revisions: Vec::new(),
            withdrawn: None,
        }),
    }
    FileOutcome {
        month,
        name: c.file.name,
        action,
        size: Some(c.fetched.size),
        sha256: Some(c.fetched.sha256),
    }
}

/// The manifest entry of a file whose recorded bytes were put back at its own name.
fn restored(manifest: &mut Manifest, c: Candidate) -> FileOutcome {
    if let Some(entry) = manifest.file_mut(&c.file.name) {
        entry.current.path = c.file.name.clone();
    }
    FileOutcome {
        month: manifest.month,
        name: c.file.name,
        action: Action::Restored,
        size: Some(c.fetched.size),
        sha256: Some(c.fetched.sha256),
    }
}

fn unchanged(month: Month, c: &Candidate) -> FileOutcome {
    FileOutcome {
        month,
        name: c.file.name.clone(),
        action: Action::Unchanged,
        size: Some(c.fetched.size),
        sha256: Some(c.fetched.sha256.clone()),
    }
}

/// Where replaced bytes are kept: content-addressed, so racing writers agree.
fn revision_path(sha256: &str, name: &str) -> String {
    format!("{REVISIONS_DIR}/{sha256}/{name}")
}

/// Joins a relative `a/b/c` path onto a lake path.
trait ChildPath {
    fn child_path(&self, relative: &str) -> Path;
}

impl ChildPath for Path {
    fn child_path(&self, relative: &str) -> Path {
        relative
            .split('/')
            .fold(self.clone(), |p, part| p.join(part))
    }
}
