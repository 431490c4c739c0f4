//! How the binary hands a build's freed memory back to the system between months: the
//! binary chose the allocator (mimalloc, `main.rs`), so it is the one that knows how.

/// The hook a build calls on each month thread after its month, if the allocator has one.
pub(crate) fn release_between_months() -> Option<fn()> {
    #[cfg(feature = "mimalloc")]
    return Some(collect);
    #[cfg(not(feature = "mimalloc"))]
    return None;
}

// Linked in for its C library, which defines `mi_collect`.
#[cfg(feature = "mimalloc")]
extern crate mimalloc;

#[cfg(feature = "mimalloc")]
unsafe extern "C" {
    /// mimalloc: frees the calling thread's unused pages (and, forced, those of threads that
    /// ended) back to the system now, rather than after its purge delay.
    fn mi_collect(force: bool);
}

/// mimalloc otherwise keeps pages a month freed in the thread's cache, partly used, and a
/// 36-month build's memory climbed with each month (a 12-month build peaked 20 % higher).
#[cfg(feature = "mimalloc")]
fn collect() {
    // SAFETY: `mi_collect` takes no pointers and may be called on any thread at any time.
    unsafe { mi_collect(true) }
}
