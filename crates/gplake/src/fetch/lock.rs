//! A month lock, so two syncs never interleave their writes to one month's bronze.
//!
//! The lock is an object created only if absent (`PutMode::Create`: an atomic link on a
//! local lake, a conditional PUT on S3). It is held only while a month's already-downloaded
//! files are written, so it is short. A lock left by a killed process is taken over when its
//! process is gone (same host) or when it is older than the time-to-live.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::lake::{Lake, LakeError};
use crate::month::Month;

const LOCK_NAME: &str = "_manifest.lock";

/// Who holds a lock.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    host: String,
    pid: u32,
    acquired_at: DateTime<Utc>,
}

/// A lock failure.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The store failed.
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// Another live process kept the lock for the whole wait.
    #[error(
        "month {month} is being written by another gplake (host {host}, pid {pid}, since {since}); wait for it, or delete {path} if no other gplake runs"
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
        /// The lock's path.
        path: String,
    },
}

/// A held month lock; call [`MonthLock::release`] when done.
#[derive(Debug)]
pub(crate) struct MonthLock {
    lake: Lake,
    path: Path,
}

impl MonthLock {
    /// Takes the lock of `month`, waiting up to `ttl` for a live holder to finish.
    pub(crate) async fn acquire(
        lake: &Lake,
        month: Month,
        clock: &dyn Clock,
        ttl: Duration,
    ) -> Result<MonthLock, LockError> {
        let path = Lake::bronze_month_dir(month).join(LOCK_NAME);
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let me = Holder {
                host: hostname(),
                pid: std::process::id(),
                acquired_at: clock.now(),
            };
            let body = Bytes::from(serde_json::to_vec(&me).expect("serialisable"));
            if lake.put_if_absent(&path, body).await? {
                return Ok(MonthLock {
                    lake: lake.clone(),
                    path,
                });
            }
            let holder = read_holder(lake, &path).await?;
            match holder {
                Some(h) if !is_stale(&h, clock, ttl) => {
                    if started.elapsed() > ttl {
                        return Err(LockError::Busy {
                            month,
                            host: h.host,
                            pid: h.pid,
                            since: h.acquired_at,
                            path: path.to_string(),
                        });
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                _ => {
                    tracing::warn!(%month, "taking over a stale lock at {path}");
                    lake.delete(&path).await?;
                }
            }
        }
    }

    /// Lets the lock go.
    pub(crate) async fn release(self) -> Result<(), LakeError> {
        self.lake.delete(&self.path).await
    }
}

async fn read_holder(lake: &Lake, path: &Path) -> Result<Option<Holder>, LakeError> {
    Ok(lake
        .get_bytes(path)
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

fn is_stale(holder: &Holder, clock: &dyn Clock, ttl: Duration) -> bool {
    let age = (clock.now() - holder.acquired_at)
        .to_std()
        .unwrap_or(Duration::ZERO);
    let dead_here = holder.host == hostname()
        && holder.pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{}", holder.pid)).exists()
        && std::path::Path::new("/proc/self").exists();
    age > ttl || dead_here
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}
