//! The streaming sink of one table's rows for a month: rows gather into Arrow batches on the
//! reading thread, and each full batch is encoded into Parquet data files, on that thread
//! when months build a core each, or on a writer thread when a month has the cores to
//! itself, so that reading a file and encoding its rows run at once. Memory holds a batch
//! being filled and at most [`IN_FLIGHT`] waiting per table. Nothing becomes visible until
//! the month's build commits the files it returns.

use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use deltalake::DeltaTableError;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::Add;
use deltalake::writer::RecordBatchWriter;
use tokio::runtime::Handle;

use super::runs::{FactRow, RunBatch, RunBatcher, RunFile, RunValues};
use crate::batch::{Batcher, Val};
use crate::catalog::TableDef;
use crate::delta::{self, DeltaError, PartitionValues};

/// Full batches that may wait for the writer thread: enough to keep it busy while the
/// reader fills the next, few enough to keep memory flat.
const IN_FLIGHT: usize = 2;

/// A streaming writer of one table's rows for the month.
pub(crate) struct Sink {
    def: TableDef,
    rows: Rows,
    output: Output,
}

/// How a sink gathers its rows.
enum Rows {
    /// Whole rows into Arrow batches.
    Batches(Batcher),
    /// Runs of a practice's rows, its columns given once per run.
    Runs(RunBatcher),
}

/// A full batch of either kind.
enum Payload {
    Batch(RecordBatch),
    Runs(RunBatch),
}

/// What encodes a sink's batches into data files.
enum Writer {
    Delta(Box<RecordBatchWriter>),
    Runs(Box<RunFile>),
}

/// Where a sink's full batches are encoded.
enum Output {
    /// On the reading thread: several months build at once, a core each.
    Inline(Box<Encoder>),
    /// On a writer thread, while the reading thread reads on.
    Thread(ToThread),
}

/// The reading thread's ends of a writer thread's channels.
struct ToThread {
    /// To the writer thread; `None` once it has stopped.
    batches: Option<SyncSender<Message>>,
    /// What the writer thread ends with.
    written: Receiver<Result<Vec<Add>, DeltaError>>,
}

/// What the reading thread tells the writer thread.
enum Message {
    Batch(Payload),
    /// Every row was sent: write the last files and hand back their actions. A sink dropped
    /// without this (its month failed) leaves its files unfinished, never committed.
    Finish,
}

impl Sink {
    /// A sink for `def`'s rows of the month of `date`, encoded on one of `threads` when
    /// given, else on the caller's thread.
    pub(crate) fn new(
        def: TableDef,
        table: &deltalake::DeltaTable,
        date: NaiveDate,
        handle: &Handle,
        threads: Option<&WriterThreads>,
    ) -> Result<Sink, DeltaError> {
        let (rows, writer) = if super::runs::written_in_runs(&def) {
            (
                Rows::Runs(RunBatcher::new()),
                Writer::Runs(Box::new(RunFile::new(def, table, date)?)),
            )
        } else {
            (
                Rows::Batches(Batcher::new(def)),
                Writer::Delta(Box::new(delta::writer(table, &def)?)),
            )
        };
        let encoder = Encoder {
            def,
            writer,
            partition: delta::month_partition(&def, date),
            handle: handle.clone(),
        };
        let output = match threads {
            None => Output::Inline(Box::new(encoder)),
            Some(threads) => {
                let (batches, received) = sync_channel(IN_FLIGHT);
                let (done, written) = channel();
                threads
                    .run(Box::new(move || {
                        let _ = done.send(encoder.encode_all(received));
                    }))
                    .map_err(|e| thread_failed(def, &e))?;
                Output::Thread(ToThread {
                    batches: Some(batches),
                    written,
                })
            }
        };
        Ok(Sink { def, rows, output })
    }

    /// Appends a row of a table written in batches; `values` are in column order.
    pub(crate) fn push(&mut self, values: &[Val<'_>]) -> Result<(), DeltaError> {
        let Rows::Batches(batcher) = &mut self.rows else {
            panic!(
                "{}: rows of a table written in runs come in runs",
                self.def.name
            )
        };
        batcher.push(values);
        self.write_if_full()
    }

    /// True when rows pushed now would join a run (one was started and not ended).
    pub(crate) fn in_run(&self) -> bool {
        matches!(&self.rows, Rows::Runs(runs) if runs.current().is_some())
    }

    /// Ends the current run: the next row needs [`Sink::start_run`].
    pub(crate) fn end_run(&mut self) {
        if let Rows::Runs(runs) = &mut self.rows {
            runs.end();
        }
    }

    /// Starts a run of a table written in runs: the rows pushed from now on have `values`.
    pub(crate) fn start_run(&mut self, values: RunValues) {
        match &mut self.rows {
            Rows::Runs(runs) => runs.start(values),
            Rows::Batches(_) => panic!("{}: is not written in runs", self.def.name),
        }
    }

    /// Appends a row of the current run.
    pub(crate) fn push_in_run(&mut self, row: FactRow) -> Result<(), DeltaError> {
        let Rows::Runs(runs) = &mut self.rows else {
            panic!("{}: is not written in runs", self.def.name)
        };
        runs.push(row);
        self.write_if_full()
    }

    fn write_if_full(&mut self) -> Result<(), DeltaError> {
        let full = match &self.rows {
            Rows::Batches(b) => b.is_full(),
            Rows::Runs(r) => r.is_full(),
        };
        if full { self.write_waiting() } else { Ok(()) }
    }

    /// Hands on the rows gathered so far.
    fn write_waiting(&mut self) -> Result<(), DeltaError> {
        let payload = match &mut self.rows {
            Rows::Batches(b) if !b.is_empty() => Payload::Batch(b.finish()),
            Rows::Runs(r) if !r.is_empty() => Payload::Runs(r.finish()),
            _ => return Ok(()),
        };
        self.write(payload)
    }

    pub(crate) fn finish(mut self) -> Result<(TableDef, Vec<Add>), DeltaError> {
        self.write_waiting()?;
        let adds = match self.output {
            Output::Inline(encoder) => encoder.flush()?,
            Output::Thread(mut thread) => {
                thread.send(self.def, Message::Finish)?;
                thread.stopped(self.def)?
            }
        };
        Ok((self.def, adds))
    }

    /// Encodes `batch` here, or hands it to the writer thread.
    fn write(&mut self, batch: Payload) -> Result<(), DeltaError> {
        match &mut self.output {
            Output::Inline(encoder) => encoder.write(batch),
            Output::Thread(thread) => thread.send(self.def, Message::Batch(batch)),
        }
    }
}

impl ToThread {
    /// Hands `message` to the writer thread; when it has stopped, its error.
    fn send(&mut self, def: TableDef, message: Message) -> Result<(), DeltaError> {
        if self
            .batches
            .as_ref()
            .is_some_and(|b| b.send(message).is_ok())
        {
            return Ok(());
        }
        self.stopped(def)?;
        Err(thread_failed(def, &"it stopped before the last batch"))
    }

    /// Waits for the writer thread to end: the actions of the files it wrote, or its error.
    fn stopped(&mut self, def: TableDef) -> Result<Vec<Add>, DeltaError> {
        self.batches = None;
        self.written
            .recv()
            .unwrap_or_else(|_| Err(thread_failed(def, &"it panicked or had stopped")))
    }
}

/// Encodes batches into one table's data files for the month.
struct Encoder {
    def: TableDef,
    writer: Writer,
    /// The month's partition, when the table is partitioned by month.
    partition: Option<PartitionValues>,
    handle: Handle,
}

impl Encoder {
    fn write(&mut self, batch: Payload) -> Result<(), DeltaError> {
        let def = &self.def;
        match (&mut self.writer, batch) {
            (Writer::Runs(file), Payload::Runs(batch)) => file.write(batch),
            (Writer::Delta(writer), Payload::Batch(batch)) => match &self.partition {
                Some(p) => self.handle.block_on(delta::write_in(writer, def, p, batch)),
                None => self.handle.block_on(delta::write(writer, def, batch)),
            },
            _ => unreachable!("a sink's batches are of its writer's kind"),
        }
    }

    /// Writes the last files: the actions that commit them.
    fn flush(self) -> Result<Vec<Add>, DeltaError> {
        match self.writer {
            Writer::Runs(file) => self.handle.block_on(file.finish()),
            Writer::Delta(mut writer) => self.handle.block_on(delta::flush(&mut writer, &self.def)),
        }
    }

    /// The writer thread's work: each batch as it arrives; on `Finish`, the last files.
    fn encode_all(mut self, batches: Receiver<Message>) -> Result<Vec<Add>, DeltaError> {
        for message in batches {
            match message {
                Message::Batch(batch) => self.write(batch)?,
                Message::Finish => return self.flush(),
            }
        }
        Ok(Vec::new())
    }
}

fn thread_failed(def: TableDef, why: &dyn std::fmt::Display) -> DeltaError {
    DeltaError {
        table: def.name,
        source: Box::new(DeltaTableError::Generic(format!(
            "the thread writing its data files failed: {why}"
        ))),
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The threads sinks write on, kept for a whole build and ended when it drops them: one per
/// sink writing at once, started when none is free. A thread per sink left memory behind in
/// each one's allocator cache, month after month; a fixed number could leave a sink waiting
/// for a thread while the reader that would free one waits for that sink.
pub(crate) struct WriterThreads {
    queue: Mutex<Sender<Job>>,
    shared: Arc<Shared>,
}

struct Shared {
    jobs: Mutex<Receiver<Job>>,
    /// Threads waiting for a job and not yet promised one.
    free: Mutex<usize>,
}

impl Default for WriterThreads {
    fn default() -> WriterThreads {
        let (queue, jobs) = channel();
        WriterThreads {
            queue: Mutex::new(queue),
            shared: Arc::new(Shared {
                jobs: Mutex::new(jobs),
                free: Mutex::new(0),
            }),
        }
    }
}

impl WriterThreads {
    /// Runs `job` on a thread of its own until it returns.
    fn run(&self, job: Job) -> std::io::Result<()> {
        fn lost<T>(_: T) -> std::io::Error {
            std::io::Error::other("the writer threads' lock was poisoned")
        }
        let promised = {
            let mut free = self.shared.free.lock().map_err(lost)?;
            let promised = *free > 0;
            *free = free.saturating_sub(1);
            promised
        };
        if !promised {
            let shared = Arc::clone(&self.shared);
            std::thread::Builder::new()
                .name("gplake-write".into())
                .spawn(move || serve(&shared))?;
        }
        let queue = self.queue.lock().map_err(lost)?;
        queue
            .send(job)
            .map_err(|_| std::io::Error::other("the writer threads ended"))
    }
}

/// A writer thread: runs jobs until the build drops its [`WriterThreads`].
fn serve(shared: &Shared) {
    loop {
        let job = match shared.jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A panicking job drops its result sender, which its sink reports.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        match shared.free.lock() {
            Ok(mut free) => *free += 1,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::Barrier;

    /// Three jobs that each wait for the others to start: they can only all finish if each
    /// got a thread of its own at once.
    fn run_together(threads: &WriterThreads) -> BTreeSet<String> {
        let barrier = Arc::new(Barrier::new(3));
        let (seen, ids) = channel();
        for _ in 0..3 {
            let (barrier, seen) = (Arc::clone(&barrier), seen.clone());
            threads
                .run(Box::new(move || {
                    barrier.wait();
                    let _ = seen.send(format!("{:?}", std::thread::current().id()));
                }))
                .unwrap();
        }
        drop(seen);
        ids.iter().collect()
    }

    #[test]
    fn every_job_gets_a_thread_at_once_and_threads_are_kept_for_the_next() {
        let threads = WriterThreads::default();
        let first = run_together(&threads);
        assert_eq!(first.len(), 3);
        // Wait until the three are free again, then the next three run on them.
        while *threads.shared.free.lock().unwrap() < 3 {
            std::thread::yield_now();
        }
        assert_eq!(run_together(&threads), first);
    }
}
