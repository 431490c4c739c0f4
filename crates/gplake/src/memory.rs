//! How a build hands freed memory back to the system: the allocator's hooks, which the
//! binary gives because it owns the allocator, and [`Release`], which the derivation calls
//! between its steps so that every thread that may hold freed memory hands it back.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The allocator's ways of handing freed memory back to the system (see
/// [`crate::BuildOptions::memory`]).
#[derive(Debug, Clone, Copy)]
pub struct MemoryHooks {
    /// Hands back what the calling thread freed, now: called on a month thread after each
    /// job of a month, by a runtime worker going idle ([`crate::runtime_with`]), and on every
    /// thread of the runtime's blocking pool between the derivation's steps ([`Release`]).
    pub release: fn(),
    /// Hands back every freed page at once (`true`), or after the allocator's own delay
    /// (`false`, its setting). The build turns it on while it derives dims and gold: that
    /// phase frees most of what it allocates within a second, the allocator's delay kept
    /// it all (a 36-month derivation's peak 280 MiB against 200 MiB handed back at once),
    /// and handing it back costs that phase no measurable time. The month phase, whose
    /// page faults it would double, keeps the delay.
    pub eager: fn(bool),
}

/// Hands back, between the derivation's steps, what the runtime's threads freed.
///
/// A thread of the blocking pool allocates the bytes of every file the store reads for a
/// task, which frees them on another thread. mimalloc counts such a block as used until the
/// thread that allocated it collects its page, and a blocking thread that reads no more
/// never does: at a 36-month sync's list sizes mimalloc counted 12-13 MB used where about
/// 1 MB was live, on pages that kept 29-31 MB committed against 13 MB at one month. A blocking thread that ends
/// hands them back, but ending them after 1 ms idle instead of 50 made the month phase 12 %
/// slower (its files are read in bursts), so the derivation asks each thread instead.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Release(Option<MemoryHooks>);

/// How long the tasks of one [`Release::everywhere`] wait for each other: long enough for
/// the pool to start a thread for each, short enough that a step never waits on a pool busy
/// with other work.
const MEETING: Duration = Duration::from_millis(2);

impl Release {
    /// Releases through `hooks` (none without them).
    pub(crate) fn new(hooks: Option<MemoryHooks>) -> Release {
        Release(hooks)
    }

    /// The calling thread and every thread of the runtime's blocking pool hand back what
    /// they freed.
    pub(crate) async fn everywhere(self) {
        self.everywhere_within(MEETING).await;
    }

    /// [`Release::everywhere`], the pool's tasks waiting up to `meeting` for each other.
    async fn everywhere_within(self, meeting: Duration) {
        let Some(hooks) = self.0 else {
            return;
        };
        (hooks.release)();
        let threads = crate::BLOCKING_THREADS;
        let meeting = Arc::new(Meeting::new(threads, meeting));
        let tasks: Vec<_> = (0..threads)
            .map(|_| {
                let meeting = Arc::clone(&meeting);
                tokio::task::spawn_blocking(move || {
                    // Each task holds its thread until the others have started, so that the
                    // pool runs them on as many threads as it has.
                    meeting.arrive();
                    (hooks.release)();
                })
            })
            .collect();
        for task in tasks {
            // A task that panicked released nothing: nothing to undo.
            let _ = task.await;
        }
    }
}

/// Tasks that wait, each on its own thread, until all have arrived or the time is up.
struct Meeting {
    arrived: Mutex<usize>,
    changed: Condvar,
    expected: usize,
    until: Instant,
}

impl Meeting {
    fn new(expected: usize, within: Duration) -> Meeting {
        Meeting {
            arrived: Mutex::new(0),
            changed: Condvar::new(),
            expected,
            until: Instant::now() + within,
        }
    }

    /// Counts the caller in and waits for the others, at most until the meeting's end.
    fn arrive(&self) {
        let Ok(mut arrived) = self.arrived.lock() else {
            return;
        };
        *arrived += 1;
        self.changed.notify_all();
        while *arrived < self.expected {
            let left = self.until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            arrived = match self.changed.wait_timeout(arrived, left) {
                Ok((arrived, _)) => arrived,
                Err(_) => return,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::thread::ThreadId;
    use std::time::Duration;

    use super::{MemoryHooks, Release};

    static RELEASED_ON: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());

    fn record() {
        RELEASED_ON
            .lock()
            .unwrap()
            .push(std::thread::current().id());
    }

    #[test]
    fn every_thread_of_the_blocking_pool_and_the_caller_release_once() {
        let hooks = MemoryHooks {
            release: record,
            eager: |_| {},
        };
        let runtime = crate::runtime().unwrap();
        let caller = std::thread::current().id();
        // A generous meeting, so that a slow machine still starts a thread for each task.
        runtime.block_on(Release::new(Some(hooks)).everywhere_within(Duration::from_secs(5)));
        let released = RELEASED_ON.lock().unwrap().clone();
        assert_eq!(released.len(), crate::BLOCKING_THREADS + 1, "{released:?}");
        assert_eq!(released[0], caller, "the caller first");
        let pool: HashSet<_> = released[1..].iter().collect();
        assert_eq!(
            pool.len(),
            crate::BLOCKING_THREADS,
            "one release per pool thread"
        );
        assert!(!pool.contains(&caller));
    }
}
