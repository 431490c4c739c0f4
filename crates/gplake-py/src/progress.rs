//! A sync's progress for Python: the library's download and build events are folded into
//! one small state, which the waiting Python thread hands to the caller's callback (a
//! progress bar) as a dict. Events arrive on the run's threads without the GIL; the callback
//! is only ever called on the caller's thread, with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gplake::BuildEvent;
use gplake::http::ProgressEvent;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// What a sync has done so far.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct SyncProgress {
    /// `fetch`, `build`, `derive` (dims and gold) or `done`.
    stage: &'static str,
    /// Downloads started, and finished.
    files: u64,
    files_done: u64,
    /// Bytes downloaded, and expected (of the downloads whose size the server gave).
    bytes: u64,
    bytes_total: u64,
    /// Months to build, and built (committed or kept out).
    months: u64,
    months_done: u64,
    /// Rows written to silver.
    rows: u64,
}

#[derive(Debug, Default)]
struct State {
    shown: SyncProgress,
    /// Each download's expected and received bytes, by key: a retried download starts
    /// again from zero, and must not count twice.
    downloads: HashMap<String, (u64, u64)>,
    /// How each stage left off, when the next began since the last report: reported first,
    /// so the callback sees every stage the run went through however quickly it passed
    /// (two small months fetched in less than the 100 ms between reports).
    passed: Vec<SyncProgress>,
}

/// The state, shared between the run's event callbacks and the waiting thread.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shared(Arc<Mutex<State>>);

impl Shared {
    fn update(&self, change: impl FnOnce(&mut State)) {
        if let Ok(mut state) = self.0.lock() {
            change(&mut state);
        }
    }

    /// The download callback for the fetch.
    pub(crate) fn downloads(&self) -> gplake::http::Progress {
        let shared = self.clone();
        Arc::new(move |event| shared.update(|state| state.download(event)))
    }

    /// The build callback.
    pub(crate) fn builds(&self) -> gplake::BuildProgress {
        let shared = self.clone();
        Arc::new(move |event| shared.update(|state| state.build(event)))
    }

    /// Marks the run over.
    pub(crate) fn finish(&self) {
        self.update(|state| state.enter("done"));
    }

    /// Calls `callback` with the progress as a dict, when it changed since `last`.
    pub(crate) fn report(
        &self,
        py: Python<'_>,
        callback: &Py<PyAny>,
        last: &mut Option<SyncProgress>,
    ) -> PyResult<()> {
        let shown = match self.0.lock() {
            Ok(mut state) => {
                let mut shown = std::mem::take(&mut state.passed);
                shown.push(state.shown.clone());
                shown
            }
            Err(_) => return Ok(()),
        };
        for now in shown {
            if now.stage.is_empty() || last.as_ref() == Some(&now) {
                continue;
            }
            callback.call1(py, (now.to_dict(py)?,))?;
            *last = Some(now);
        }
        Ok(())
    }
}

impl State {
    /// Moves on to `stage`, keeping how the stage before left off for the next report.
    fn enter(&mut self, stage: &'static str) {
        if self.shown.stage != stage && !self.shown.stage.is_empty() {
            self.passed.push(self.shown.clone());
        }
        self.shown.stage = stage;
    }

    fn download(&mut self, event: ProgressEvent) {
        self.enter("fetch");
        match event {
            ProgressEvent::Started { key, total } => {
                let previous = self.downloads.insert(key, (total.unwrap_or(0), 0));
                let (old_total, old_bytes) = previous.unwrap_or_default();
                if previous.is_none() {
                    self.shown.files += 1;
                }
                self.shown.bytes_total += total.unwrap_or(0);
                self.shown.bytes_total -= old_total;
                self.shown.bytes -= old_bytes;
            }
            ProgressEvent::Advanced { key, bytes } => {
                if let Some(entry) = self.downloads.get_mut(&key) {
                    entry.1 += bytes;
                    self.shown.bytes += bytes;
                }
            }
            ProgressEvent::Finished { .. } => self.shown.files_done += 1,
        }
    }

    fn build(&mut self, event: BuildEvent) {
        match event {
            BuildEvent::Planned { months } => {
                self.enter("build");
                self.shown.months = months as u64;
            }
            BuildEvent::MonthDone { rows, .. } => {
                self.enter("build");
                self.shown.months_done += 1;
                self.shown.rows += rows;
            }
            BuildEvent::Deriving => self.enter("derive"),
            _ => {}
        }
    }
}

impl SyncProgress {
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("stage", self.stage)?;
        for (name, value) in [
            ("files", self.files),
            ("files_done", self.files_done),
            ("bytes", self.bytes),
            ("bytes_total", self.bytes_total),
            ("months", self.months),
            ("months_done", self.months_done),
            ("rows", self.rows),
        ] {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }
}
