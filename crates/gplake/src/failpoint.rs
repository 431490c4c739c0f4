//! Named points where a test can make the process die, to prove that a run killed anywhere
//! leaves a lake that one plain rerun brings to the same state as an uninterrupted run.
//!
//! `GPLAKE_FAILPOINT=NAME` (or `NAME#N`, the N-th time the point is reached) aborts the
//! process there, after printing `failpoint NAME reached` to stderr so the test can check the
//! point was really reached. `NAME:stop` (or `NAME#N:stop`) freezes the process there instead
//! (SIGSTOP, as a laptop lid or a stalled VM would), for a test to thaw with SIGCONT. Unset (the normal case) it costs one atomic load per point.
//! Names: `discover`, `download`, `upload-part` (S3 and memory lakes), `bronze-file`, `manifest`, `commit:<table>`, `quarantine`,
//! `month-quality`, `state`, `series`, `dims`, `gold`, `derived-record`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Armed {
    name: String,
    hit: u64,
    stop: bool,
    seen: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("GPLAKE_FAILPOINT").ok()?;
            let (spec, stop) = match spec.strip_suffix(":stop") {
                Some(s) => (s.to_string(), true),
                None => (spec, false),
            };
            let (name, hit) = match spec.split_once('#') {
                Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            Some(Armed {
                name,
                hit,
                stop,
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process if `name` is the armed point (and this is the armed hit).
pub(crate) fn point(name: &str) {
    let Some(armed) = armed() else {
        return;
    };
    if armed.name != name {
        return;
    }
    if armed.seen.fetch_add(1, Ordering::SeqCst) + 1 == armed.hit {
        eprintln!("failpoint {name} reached");
        if armed.stop {
            let pid = std::process::id().to_string();
            let _ = std::process::Command::new("kill")
                .args(["-STOP", &pid])
                .status();
            eprintln!("failpoint {name} resumed");
            return;
        }
        std::process::abort();
    }
}
