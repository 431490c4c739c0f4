//! Cancellation: a token the caller trips (Ctrl-C in the CLI, a notebook's interrupt) and the
//! build pipeline checks between steps. A cancelled build stops before its next month or
//! stage — points where a killed run is already safe — so nothing is half-written, and the
//! next run carries on from there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared cancellation flag; clones trip the same flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token not yet tripped.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks every holder to stop at its next safe point.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
