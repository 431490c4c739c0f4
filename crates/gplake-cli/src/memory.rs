//! How the binary hands a build's freed memory back to the system: the binary chose the
//! allocator (mimalloc, `main.rs`), so it is the one that knows how.

/// The hooks a build calls to hand memory back, if the allocator has them.
pub(crate) fn hooks() -> Option<gplake::MemoryHooks> {
    #[cfg(feature = "mimalloc")]
    return Some(gplake::MemoryHooks {
        release: collect,
        eager,
    });
    #[cfg(not(feature = "mimalloc"))]
    return None;
}

// Linked in for its C library, which defines the `mi_*` functions below.
#[cfg(feature = "mimalloc")]
extern crate mimalloc;

#[cfg(feature = "mimalloc")]
unsafe extern "C" {
    /// mimalloc: frees the calling thread's unused pages (and, forced, those of threads that
    /// ended) back to the system now, rather than after its purge delay.
    fn mi_collect(force: bool);
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (milliseconds a freed page is kept
/// before it is handed back; 0: at once).
#[cfg(feature = "mimalloc")]
const PURGE_DELAY: std::ffi::c_int = 15;

/// mimalloc otherwise keeps pages a month freed in the thread's cache, partly used, and a
/// 36-month build's memory climbed with each month (a 12-month build peaked 20 % higher).
#[cfg(feature = "mimalloc")]
fn collect() {
    // SAFETY: `mi_collect` takes no pointers and may be called on any thread at any time.
    unsafe { mi_collect(true) }
}

/// The purge delay in force before the first `eager(true)`: the default, or the user's
/// `MIMALLOC_PURGE_DELAY`, restored by `eager(false)`.
#[cfg(feature = "mimalloc")]
static DELAY: std::sync::OnceLock<std::ffi::c_long> = std::sync::OnceLock::new();

/// Turns mimalloc's purge at once on or off (see `gplake::MemoryHooks::eager`).
///
/// Pages freed before the switch are already scheduled for a purge after the delay, and
/// mimalloc 3 works through that schedule only while a delay is set: at 0 it purges each page
/// as it is freed and never looks at the schedule again, so what the month phase freed last
/// stayed counted until the derivation ended. The schedule is purged in full first. (Measured
/// on 36-month syncs: anonymous memory at the derivation's start 23-28 MiB against 24-37; the
/// derivation's peak did not move, see BENCHMARKS.md.)
#[cfg(feature = "mimalloc")]
fn eager(on: bool) {
    // SAFETY: mimalloc's options take no pointers and may be read and set at any time.
    let delay = *DELAY.get_or_init(|| unsafe { mi_option_get(PURGE_DELAY) });
    if on {
        collect();
    }
    // SAFETY: as above.
    unsafe { mi_option_set(PURGE_DELAY, if on { 0 } else { delay }) };
}
