//! The threads a build's months are parsed and written on: `jobs` of them for the whole
//! build, so every month runs on the same few threads. On tokio's blocking pool a month
//! could land on any thread (the pool grows whenever none is idle, and every local file
//! operation takes one), and the allocator keeps what a month freed in the cache of the
//! thread that freed it: memory grew with each month built (9 → 40 threads and 55 → 935 MiB
//! over a 12-month sync).
//!
//! Each job belongs to a month, and a free thread takes the earliest month's job first: a
//! month's last steps run before the next month's reading goes on, so one month is read at
//! a time and the one before it is put together and let go, not held while both read.

use std::collections::BinaryHeap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex};

use crate::month::Month;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of month threads; they end when this is dropped and their queue is empty.
pub(crate) struct Workers {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or the threads are to end.
    changed: Condvar,
}

#[derive(Default)]
struct Queue {
    jobs: BinaryHeap<Queued>,
    /// Jobs queued so far: the order among one month's jobs.
    queued: u64,
    /// Set when the [`Workers`] are dropped: the threads end once the queue is empty.
    closed: bool,
}

/// A job and its place: the earliest month first, then the order it was queued in.
struct Queued {
    month: Month,
    seq: u64,
    job: Job,
}

impl Workers {
    /// Starts `n` threads (at least one), each calling `after_job` after every job.
    pub(crate) fn start(n: usize, after_job: Option<fn()>) -> Workers {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        });
        for i in 0..n.max(1) {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("gplake-month-{i}"))
                .spawn(move || work(&shared, after_job))
                .expect("a month thread starts");
        }
        Workers { shared }
    }

    /// Runs `job`, of `month`, on a month thread; `None` if it panicked (the thread
    /// carries on).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        month: Month,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(job());
        });
        {
            let mut queue = self.shared.queue.lock().ok()?;
            let seq = queue.queued;
            queue.queued += 1;
            queue.jobs.push(Queued { month, seq, job });
        }
        self.shared.changed.notify_one();
        result.await.ok()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.closed = true;
        }
        self.shared.changed.notify_all();
    }
}

fn work(shared: &Shared, after_job: Option<fn()>) {
    while let Some(job) = next(shared) {
        // A panicking job drops its result sender, which its waiter reports.
        drop(std::panic::catch_unwind(AssertUnwindSafe(job)));
        if let Some(after_job) = after_job {
            after_job();
        }
    }
}

/// The next job, waiting for one; `None` once the workers are dropped and none is left.
fn next(shared: &Shared) -> Option<Job> {
    let mut queue = shared.queue.lock().ok()?;
    loop {
        if let Some(queued) = queue.jobs.pop() {
            return Some(queued.job);
        }
        if queue.closed {
            return None;
        }
        queue = shared.changed.wait(queue).ok()?;
    }
}

impl Queued {
    /// `BinaryHeap` pops the greatest: the earliest month, then the first queued.
    fn rank(&self) -> std::cmp::Reverse<(Month, u64)> {
        std::cmp::Reverse((self.month, self.seq))
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Queued) -> bool {
        self.rank() == other.rank()
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Queued) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Queued) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(m: u32) -> Month {
        Month::new(2026, m).unwrap()
    }

    #[tokio::test]
    async fn jobs_run_on_the_same_threads_and_a_panic_is_reported_not_fatal() {
        let workers = Workers::start(2, Some(count_job));
        let mut names = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let name = workers
                .run(month(1), || {
                    std::thread::current().name().map(str::to_string)
                })
                .await
                .flatten();
            names.insert(name.expect("a named month thread"));
        }
        assert!(names.len() <= 2, "{names:?}");
        assert_eq!(
            workers
                .run(month(1), || -> u8 { panic!("a month failed") })
                .await,
            None
        );
        assert_eq!(
            workers.run(month(1), || 7).await,
            Some(7),
            "the threads carry on"
        );
        // The hook runs after a job has handed back its result: wait for the last one's.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while JOBS_DONE.load(std::sync::atomic::Ordering::SeqCst) < 22
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(
            JOBS_DONE.load(std::sync::atomic::Ordering::SeqCst),
            22,
            "each job, the panicked one too, is followed by the hook"
        );
    }

    static JOBS_DONE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    fn count_job() {
        JOBS_DONE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    #[tokio::test]
    async fn a_free_thread_takes_the_earliest_months_job_first() {
        let workers = Workers::start(1, None);
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let order = Arc::new(Mutex::new(Vec::new()));
        // The one thread is held while later months' jobs, then an earlier month's, queue.
        let busy = workers.run(month(1), move || hold.recv().unwrap());
        let jobs = [
            (3, "March"),
            (2, "February, first"),
            (2, "February, second"),
        ];
        let queued = jobs.map(|(m, name)| {
            let order = Arc::clone(&order);
            workers.run(month(m), move || order.lock().unwrap().push(name))
        });
        let all = futures::future::join(busy, futures::future::join_all(queued));
        let release = async {
            tokio::task::yield_now().await;
            release.send(()).unwrap();
        };
        futures::future::join(all, release).await;
        assert_eq!(
            *order.lock().unwrap(),
            ["February, first", "February, second", "March"]
        );
    }
}
