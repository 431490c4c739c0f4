//! Which process, on which host, owns something in the lake (a lease, an upload, a staging
//! folder), and whether that process is known to be gone.
//!
//! "Known gone" is only ever answered for this host, where `/proc` says so; a process on
//! another host is never presumed dead, so its leftovers wait for an age limit instead.

use serde::{Deserialize, Serialize};

/// A process on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Owner {
    pub(crate) host: String,
    pub(crate) pid: u32,
}

impl Owner {
    /// This process.
    pub(crate) fn me() -> Owner {
        Owner {
            host: hostname(),
            pid: std::process::id(),
        }
    }

    /// True when the owner ran on this host and its process no longer exists.
    pub(crate) fn dead_here(&self) -> bool {
        sanitized(&self.host) == sanitized(&hostname())
            && self.pid != std::process::id()
            && std::path::Path::new("/proc/self").exists()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// A name unique to this process and moment, safe in an object path (no character that
    /// S3 copies would need escaped): `host.pid.nanos`.
    pub(crate) fn tag(&self) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{}.{}.{nanos}", sanitized(&self.host), self.pid)
    }

    /// The owner named by a [`Owner::tag`], and when the tag was made.
    pub(crate) fn from_tag(tag: &str) -> Option<(Owner, std::time::SystemTime)> {
        let mut parts = tag.split('.');
        let host = parts.next()?.to_string();
        let pid = parts.next()?.parse().ok()?;
        let nanos: u64 = parts.next()?.parse().ok()?;
        let made = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos);
        Some((Owner { host, pid }, made))
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// The host name with anything but letters, digits and `-` made `_`.
fn sanitized(host: &str) -> String {
    host.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
