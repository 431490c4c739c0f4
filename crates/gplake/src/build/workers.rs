//! The threads a build's months are parsed and written on: `jobs` of them for the whole
//! build, so every month runs on the same few threads. On tokio's blocking pool a month
//! could land on any thread (the pool grows whenever none is idle, and every local file
//! operation takes one), and the allocator keeps what a month freed in the cache of the
//! thread that freed it: memory grew with each month built (9 → 40 threads and 55 → 935 MiB
//! over a 12-month sync).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of month threads; they end when this is dropped and their queue is empty.
pub(crate) struct Workers {
    queue: Mutex<Sender<Job>>,
}

impl Workers {
    /// Starts `n` threads (at least one), each calling `after_job` after every job.
    pub(crate) fn start(n: usize, after_job: Option<fn()>) -> Workers {
        let (queue, jobs) = channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..n.max(1) {
            let jobs = Arc::clone(&jobs);
            std::thread::Builder::new()
                .name(format!("gplake-month-{i}"))
                .spawn(move || work(&jobs, after_job))
                .expect("a month thread starts");
        }
        Workers {
            queue: Mutex::new(queue),
        }
    }

    /// Runs `job` on a month thread; `None` if it panicked (the thread carries on).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(job());
        });
        self.queue.lock().ok()?.send(job).ok()?;
        result.await.ok()
    }
}

fn work(jobs: &Mutex<Receiver<Job>>, after_job: Option<fn()>) {
    loop {
        let next = match jobs.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match next {
            // A panicking month drops its result sender, which its waiter reports.
            Ok(job) => {
                drop(std::panic::catch_unwind(AssertUnwindSafe(job)));
                if let Some(after_job) = after_job {
                    after_job();
                }
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_same_threads_and_a_panic_is_reported_not_fatal() {
        let workers = Workers::start(2, Some(count_job));
        let mut names = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let name = workers
                .run(|| std::thread::current().name().map(str::to_string))
                .await
                .flatten();
            names.insert(name.expect("a named month thread"));
        }
        assert!(names.len() <= 2, "{names:?}");
        assert_eq!(
            workers.run(|| -> u8 { panic!("a month failed") }).await,
            None
        );
        assert_eq!(workers.run(|| 7).await, Some(7), "the threads carry on");
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
}
