//! A month lease: at most one gplake writes a month's bronze at a time, and a writer that lost
//! its lease finds out before its next write.
//!
//! On a local folder the lease is an OS file lock (`flock`) on `_manifest.lock`: the kernel
//! frees it when its process dies and never hands it to a second process while the first
//! lives, however long that one pauses. On object stores (S3, memory) the lease is an object
//! changed only by conditional writes on its version:
//! - it is created if absent, and taken over by a compare-and-swap on the version seen;
//! - its holder renews it (a conditional write) every third of the time-to-live, and before
//!   each write it makes ([`MonthLease::check`]), so a holder paused past the time-to-live
//!   fails its next check instead of writing;
//! - a waiter calls it stale only when it has seen the same version for a whole time-to-live
//!   by its own monotonic clock (never by the holder's clock), or when the holder is a dead
//!   process on this host;
//! - release writes a "released" body (conditionally), never deletes: a delete cannot be made
//!   conditional and could remove a successor's lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::UpdateVersion;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::lake::{Lake, LakeError, Written};
use crate::month::Month;
use crate::owner::Owner;

/// The lease's file name in each bronze month folder.
pub const LEASE_NAME: &str = "_manifest.lock";

/// Who holds (or last held) a lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    #[serde(flatten)]
    owner: Owner,
    acquired_at: DateTime<Utc>,
    #[serde(default)]
    renewed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    released: bool,
}

impl Holder {
    fn me() -> Holder {
        Holder {
            owner: Owner::me(),
            acquired_at: Utc::now(),
            renewed_at: None,
            released: false,
        }
    }

    fn body(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("serialisable"))
    }
}

/// A lease failure.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The store failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// The lock file of a local lake could not be opened or locked.
    #[error("month {month}: cannot lock {file}: {source}")]
    LocalIo {
        /// The month.
        month: Month,
        /// The lock file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Another live process kept the month for the whole wait.
    #[error(
        "month {month} is being written by another gplake (host {host}, pid {pid}, since {since}); wait for it, or run `gplake unlock --month {month}` if no other gplake runs"
    )]
    Busy {
        /// The month.
        month: Month,
        /// The holder's host.
        host: String,
        /// The holder's process.
        pid: u32,
        /// Since when.
        since: DateTime<Utc>,
    },
    /// This run's lease was taken over (it paused, or could not renew, past the
    /// time-to-live): it stopped before writing again.
    #[error(
        "month {month}: this run's lease was taken over by another gplake ({by}) while it was paused or cut off; it wrote nothing more. Run the same command again"
    )]
    Lost {
        /// The month.
        month: Month,
        /// Who holds the lease now, as far as known.
        by: String,
    },
}

/// A held month lease; call [`MonthLease::release`] when done.
pub struct MonthLease {
    month: Month,
    kind: Kind,
}

enum Kind {
    /// Kept open: dropping the file unlocks it.
    Os(std::fs::File),
    Object(Box<ObjectLease>),
}

impl std::fmt::Debug for MonthLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MonthLease({})", self.month)
    }
}

impl MonthLease {
    /// Takes the lease of `month`, waiting up to `ttl` for a live holder to finish.
    pub async fn acquire(
        lake: &Lake,
        month: Month,
        ttl: Duration,
    ) -> Result<MonthLease, LockError> {
        let path = lease_path(month);
        let kind = match lake.local_file(&path) {
            Some(file) => Kind::Os(os_lock(month, &file, ttl).await?),
            None => Kind::Object(Box::new(
                ObjectLease::acquire(lake, month, path, ttl).await?,
            )),
        };
        Ok(MonthLease { month, kind })
    }

    /// Proves the lease is still held (renewing it) just before a write; an error means
    /// another gplake took the month and this run must not write.
    pub async fn check(&self) -> Result<(), LockError> {
        match &self.kind {
            Kind::Os(_) => Ok(()),
            Kind::Object(lease) => lease.renew(self.month).await,
        }
    }

    /// Lets the lease go.
    pub async fn release(self) -> Result<(), LockError> {
        match self.kind {
            Kind::Os(file) => {
                let _ = file.set_len(0);
                drop(file);
                Ok(())
            }
            Kind::Object(lease) => lease.release(self.month).await,
        }
    }

    /// A test hook standing for a process frozen mid-write: the lease stops being renewed.
    #[doc(hidden)]
    pub fn stop_renewing(&self) {
        if let Kind::Object(lease) = &self.kind {
            lease.renewer.abort();
        }
    }
}

/// Removes a month's lease by hand (`gplake unlock`): the holder named, or `None` when the
/// month was not locked.
pub async fn unlock(lake: &Lake, month: Month) -> Result<Option<String>, LockError> {
    let path = lease_path(month);
    if let Some(file) = lake.local_file(&path) {
        let holder = std::fs::read(&file).ok().and_then(|b| parse(&b));
        return match std::fs::File::open(&file) {
            Err(_) => Ok(None),
            Ok(f) => match f.try_lock() {
                Ok(()) => Ok(None),
                Err(_) => Ok(Some(describe(holder.as_ref()))),
            },
        };
    }
    let Some((bytes, _)) = lake.get_versioned(&path).await? else {
        return Ok(None);
    };
    let holder = parse(&bytes).filter(|h| !h.released);
    if holder.is_none() {
        return Ok(None);
    }
    let released = Holder {
        released: true,
        ..Holder::me()
    };
    lake.put_bytes(&path, released.body()).await?;
    Ok(Some(describe(holder.as_ref())))
}

/// Path of `month`'s lease.
pub(crate) fn lease_path(month: Month) -> Path {
    Lake::bronze_month_dir(month).join(LEASE_NAME)
}

fn parse(bytes: &[u8]) -> Option<Holder> {
    serde_json::from_slice(bytes).ok()
}

fn describe(holder: Option<&Holder>) -> String {
    holder.map_or_else(
        || "an unknown process".to_string(),
        |h| {
            format!(
                "host {}, pid {}, since {}",
                h.owner.host, h.owner.pid, h.acquired_at
            )
        },
    )
}

/// How long a waiter waits for a live holder: long enough to see a lease go stale and then
/// some, never less than two seconds (store latency would otherwise dominate short leases).
fn patience(ttl: Duration) -> Duration {
    ttl * 2 + Duration::from_secs(2)
}

/// The next wait between looks at a held lease: doubling, at most a quarter of the
/// time-to-live (so staleness is seen in time), at least 5 ms.
fn next_pause(pause: Duration, ttl: Duration) -> Duration {
    (pause * 2).min(ttl / 4).max(Duration::from_millis(5))
}

/// Locks the local lease file, waiting (see [`patience`]) for another process to let it go.
async fn os_lock(
    month: Month,
    file: &std::path::Path,
    wait: Duration,
) -> Result<std::fs::File, LockError> {
    use std::io::Write;
    let io = |source| LockError::LocalIo {
        month,
        file: file.display().to_string(),
        source,
    };
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(file)
        .map_err(io)?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        match handle.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < patience(wait) => {
                tokio::time::sleep(pause).await;
                pause = next_pause(pause, wait);
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let h = std::fs::read(file).ok().and_then(|b| parse(&b));
                return Err(busy(month, h));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    handle.set_len(0).map_err(io)?;
    (&handle).write_all(&Holder::me().body()).map_err(io)?;
    Ok(handle)
}

fn busy(month: Month, holder: Option<Holder>) -> LockError {
    let h = holder.unwrap_or_else(|| Holder {
        owner: Owner {
            host: "unknown".into(),
            pid: 0,
        },
        ..Holder::me()
    });
    LockError::Busy {
        month,
        host: h.owner.host,
        pid: h.owner.pid,
        since: h.acquired_at,
    }
}

/// A lease object on a store with conditional writes.
struct ObjectLease {
    lake: Lake,
    path: Path,
    ttl: Duration,
    state: Arc<tokio::sync::Mutex<State>>,
    renewer: tokio::task::JoinHandle<()>,
}

struct State {
    holder: Holder,
    version: UpdateVersion,
    renewed: Instant,
    lost: Option<String>,
}

impl ObjectLease {
    async fn acquire(
        lake: &Lake,
        month: Month,
        path: Path,
        ttl: Duration,
    ) -> Result<ObjectLease, LockError> {
        let (holder, version) = take(lake, month, &path, ttl).await?;
        let state = Arc::new(tokio::sync::Mutex::new(State {
            holder,
            version,
            renewed: Instant::now(),
            lost: None,
        }));
        let renewer = tokio::spawn(renew_loop(
            lake.clone(),
            path.clone(),
            ttl,
            Arc::downgrade(&state),
        ));
        Ok(ObjectLease {
            lake: lake.clone(),
            path,
            ttl,
            state,
            renewer,
        })
    }

    async fn renew(&self, month: Month) -> Result<(), LockError> {
        let mut state = self.state.lock().await;
        renew_once(&self.lake, &self.path, &mut state).await;
        match &state.lost {
            Some(by) => Err(LockError::Lost {
                month,
                by: by.clone(),
            }),
            None if state.renewed.elapsed() > self.ttl => Err(LockError::Lost {
                month,
                by: "no one yet (renewals failed for the whole time-to-live)".into(),
            }),
            None => Ok(()),
        }
    }

    async fn release(self, month: Month) -> Result<(), LockError> {
        self.renewer.abort();
        let mut state = self.state.lock().await;
        if state.lost.is_some() {
            return Ok(());
        }
        state.holder.released = true;
        let body = state.holder.body();
        match self
            .lake
            .put_versioned(&self.path, body, Some(&state.version))
            .await?
        {
            Written::Done(_) => Ok(()),
            Written::Conflict => {
                tracing::warn!(%month, "the month lease was taken over before release");
                Ok(())
            }
        }
    }
}

impl Drop for ObjectLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews every third of the time-to-live until the lease is dropped or lost.
async fn renew_loop(
    lake: Lake,
    path: Path,
    ttl: Duration,
    state: std::sync::Weak<tokio::sync::Mutex<State>>,
) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        let Some(state) = state.upgrade() else {
            return;
        };
        let mut state = state.lock().await;
        renew_once(&lake, &path, &mut state).await;
        if state.lost.is_some() {
            return;
        }
    }
}

/// One conditional rewrite of the lease; a conflict marks it lost.
async fn renew_once(lake: &Lake, path: &Path, state: &mut State) {
    if state.lost.is_some() {
        return;
    }
    state.holder.renewed_at = Some(Utc::now());
    let body = state.holder.body();
    match lake.put_versioned(path, body, Some(&state.version)).await {
        Ok(Written::Done(v)) => {
            state.version = v;
            state.renewed = Instant::now();
        }
        Ok(Written::Conflict) => {
            let now = lake.get_bytes(path).await.ok().flatten();
            let holder = now.as_deref().and_then(parse);
            state.lost = Some(describe(holder.as_ref()));
        }
        Err(e) => tracing::warn!("cannot renew the lease at {path}: {e}"),
    }
}

/// Creates the lease, or takes it over when released or stale; waits up to `ttl` for a live
/// holder.
async fn take(
    lake: &Lake,
    month: Month,
    path: &Path,
    ttl: Duration,
) -> Result<(Holder, UpdateVersion), LockError> {
    let started = Instant::now();
    let mut seen: Option<(Option<String>, Instant)> = None;
    let mut pause = Duration::from_millis(20);
    loop {
        let me = Holder::me();
        let Some((bytes, version)) = lake.get_versioned(path).await? else {
            if let Written::Done(v) = lake.put_versioned(path, me.body(), None).await? {
                return Ok((me, v));
            }
            continue;
        };
        let holder = parse(&bytes);
        let unchanged_since = match &seen {
            Some((etag, since)) if *etag == version.e_tag => *since,
            _ => Instant::now(),
        };
        seen = Some((version.e_tag.clone(), unchanged_since));
        let free = holder.as_ref().is_none_or(|h| h.released);
        let stale =
            unchanged_since.elapsed() > ttl || holder.as_ref().is_some_and(|h| h.owner.dead_here());
        if free || stale {
            if stale && !free {
                tracing::warn!(%month, "taking over a stale lease at {path} ({})", describe(holder.as_ref()));
            }
            if let Written::Done(v) = lake.put_versioned(path, me.body(), Some(&version)).await? {
                return Ok((me, v));
            }
            continue;
        }
        if started.elapsed() > patience(ttl) {
            return Err(busy(month, holder));
        }
        tokio::time::sleep(pause).await;
        pause = next_pause(pause, ttl);
    }
}
