//! Cancellation: a token the caller trips (Ctrl-C in the CLI, a notebook's interrupt) and the
//! pipeline checks between steps. A cancelled fetch abandons its downloads (bronze is only
//! written under a month's lease, after every file of the month has arrived) and lets a month
//! already being written finish; a cancelled build stops before its next month or stage.
//! Those are points where a killed run is already safe, so nothing is half-written, and the
//! next run carries on from there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A shared cancellation flag; clones trip the same flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    tripped: AtomicBool,
    /// Wakes the tasks waiting in [`Cancel::cancelled`].
    waiters: Notify,
}

impl Cancel {
    /// A token not yet tripped.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks every holder to stop at its next safe point.
    pub fn cancel(&self) {
        self.0.tripped.store(true, Ordering::SeqCst);
        self.0.waiters.notify_waiters();
    }

    /// True once [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.tripped.load(Ordering::SeqCst)
    }

    /// Completes once the token is tripped (at once if it already is).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.waiters.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a trip in between is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_wakes_when_tripped_and_a_tripped_token_does_not_wait() {
        let cancel = Cancel::new();
        let waiter = tokio::spawn({
            let cancel = cancel.clone();
            async move { cancel.cancelled().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        cancel.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        cancel.cancelled().await;
    }
}
