//! Writing a month's new and changed files to bronze, safe against crashes and a second sync.
//!
//! Under the month lock, with the manifest re-read:
//! 1. bytes about to be replaced are copied to `_revisions/<sha256>/<name>`, and a manifest
//!    pointing each such file's current revision at that copy is written;
//! 2. the new bytes are uploaded (each upload atomic);
//! 3. the final manifest is written.
//!
//! At every instant, each path the visible manifest names holds the bytes it records; a crash
//! leaves at worst an unlisted file that the next run overwrites.

use std::time::Duration;

use object_store::path::Path;

use super::lock::MonthLock;
use super::manifest::{FileRevision, Manifest, ManifestFile, REVISIONS_DIR};
use super::{Action, Candidate, FetchContext, FetchError, FileOutcome};
use crate::discover::Release;
use crate::lake::{Lake, LakeError};
use crate::month::Month;

/// Writes `candidates` of `release` into bronze and returns what happened to each.
pub(crate) async fn commit_month(
    ctx: &FetchContext<'_>,
    release: &Release,
    candidates: Vec<Candidate>,
    lock_ttl: Duration,
) -> Result<Vec<FileOutcome>, FetchError> {
    let lock = MonthLock::acquire(ctx.lake, release.month, ctx.clock, lock_ttl).await?;
    let result = commit_locked(ctx, release, candidates).await;
    let released = lock.release().await;
    let outcomes = result?;
    released.map_err(|source| FetchError::Lake {
        month: release.month,
        source,
    })?;
    Ok(outcomes)
}

async fn commit_locked(
    ctx: &FetchContext<'_>,
    release: &Release,
    candidates: Vec<Candidate>,
) -> Result<Vec<FileOutcome>, FetchError> {
    let month = release.month;
    let lake_err = |source| FetchError::Lake { month, source };
    let manifest_err = |source| FetchError::Manifest { month, source };
    let now = ctx.clock.now();
    let mut manifest = Manifest::read(ctx.lake, month)
        .await
        .map_err(manifest_err)?
        .unwrap_or_else(|| Manifest::new(month, &release.page_url, now));
    manifest.page_url = release.page_url.clone();
    manifest.published = release.published.or(manifest.published);

    let (writes, mut outcomes) = preserve_replaced(ctx.lake, &mut manifest, candidates)
        .await
        .map_err(lake_err)?;
    if writes.iter().any(|(_, action)| *action == Action::Revised) {
        manifest.updated_at = now;
        manifest.write(ctx.lake).await.map_err(manifest_err)?;
    }
    let dir = Lake::bronze_month_dir(month);
    for (candidate, _) in &writes {
        ctx.lake
            .upload_file(
                &dir.clone().join(candidate.file.name.as_str()),
                &candidate.local,
            )
            .await
            .map_err(lake_err)?;
        crate::failpoint::point("bronze-file");
    }
    for (candidate, action) in writes {
        outcomes.push(record(&mut manifest, release, candidate, action, now));
    }
    outcomes.extend(mark_withdrawn(&mut manifest, release, now));
    manifest.updated_at = now;
    manifest.write(ctx.lake).await.map_err(manifest_err)?;
    crate::failpoint::point("manifest");
    Ok(outcomes)
}

/// Step 1: sorts candidates into writes (new or revised) and files another run already
/// wrote, copying the bytes each revision replaces and pointing the manifest at the copy.
async fn preserve_replaced(
    lake: &Lake,
    manifest: &mut Manifest,
    candidates: Vec<Candidate>,
) -> Result<(Vec<(Candidate, Action)>, Vec<FileOutcome>), LakeError> {
    let dir = Lake::bronze_month_dir(manifest.month);
    let mut writes = Vec::new();
    let mut already = Vec::new();
    for c in candidates {
        let Some(entry) = manifest.file_mut(&c.file.name) else {
            writes.push((c, Action::New));
            continue;
        };
        if entry.current.sha256 == c.fetched.sha256 {
            already.push(unchanged(manifest.month, &c));
            continue;
        }
        let kept = revision_path(&entry.current.sha256, &entry.name);
        if entry.current.path != kept {
            lake.copy(&dir.child_path(&entry.current.path), &dir.child_path(&kept))
                .await?;
            entry.current.path = kept;
        }
        writes.push((c, Action::Revised));
    }
    Ok((writes, already))
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

/// Step 4: marks files the page no longer links as withdrawn (and clears the mark of files
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

/// Step 3, per file: the manifest entry after its bytes are in place.
fn record(
    manifest: &mut Manifest,
    release: &Release,
    c: Candidate,
    action: Action,
    now: chrono::DateTime<chrono::Utc>,
) -> FileOutcome {
    let month = manifest.month;
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
