//! The `gplake._gplake` extension module: the command line ([`run_cli`]) and a [`Lake`] whose
//! methods call the gplake library with the GIL released, return reports as JSON text (the
//! Python layer turns them into dicts) and query results as Arrow C streams, and raise one
//! Python exception class per kind of failure, never a panic across the boundary.

use deltalake::arrow::array::{RecordBatch, RecordBatchIterator};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::ffi_stream::FFI_ArrowArrayStream;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

mod progress;

create_exception!(_gplake, GplakeError, PyException, "Any gplake failure.");
create_exception!(
    _gplake,
    UsageError,
    GplakeError,
    "A request gplake refuses or cannot read (exit code 2)."
);
create_exception!(
    _gplake,
    QualityGateError,
    GplakeError,
    "A month or table kept out by the quality gate (exit code 3)."
);
create_exception!(
    _gplake,
    SourceUnreachable,
    GplakeError,
    "The NHS site or a mirror could not be reached (exit code 4)."
);
create_exception!(
    _gplake,
    LakeError,
    GplakeError,
    "The lake's storage failed, or another gplake holds a month (exit code 5)."
);

/// Runs the `gplake` command line (`args[0]` is the program name); returns its exit code.
#[pyfunction]
fn run_cli(py: Python<'_>, args: Vec<String>) -> u8 {
    py.detach(|| gplake_cli::run(args))
}

/// A lake: a folder, `s3://bucket/prefix` or `az://container/prefix`.
#[pyclass(module = "gplake._gplake", frozen)]
struct Lake {
    lake: gplake::Lake,
    runtime: tokio::runtime::Runtime,
}

#[pymethods]
impl Lake {
    #[new]
    fn new(url: &str) -> PyResult<Lake> {
        let lake = gplake::Lake::open(url).map_err(|e| to_py(e.into()))?;
        let runtime = gplake::runtime()
            .map_err(|e| GplakeError::new_err(format!("cannot start a runtime: {e}")))?;
        Ok(Lake { lake, runtime })
    }

    /// The lake's URL.
    #[getter]
    fn url(&self) -> String {
        self.lake.url().to_string()
    }

    /// Discover, fetch, build and check `months` (first, last; all when None) from `source`
    /// (the live site when None); the report as JSON. `progress`, when given, is called
    /// with a dict of what has been done so far (see [`SyncProgress`]) about ten times a
    /// second while anything changes, and once at the end.
    #[pyo3(signature = (source=None, months=None, dry_run=false, progress=None))]
    fn sync_json(
        &self,
        py: Python<'_>,
        source: Option<String>,
        months: Option<(String, String)>,
        dry_run: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let range = months.map(|(a, b)| Ok::<_, PyErr>((month(&a)?, month(&b)?)));
        let range = range.transpose()?;
        let cancel = gplake::Cancel::new();
        let state = progress::Shared::default();
        let mut shown = None;
        let mut tick = |py: Python<'_>| match &progress {
            Some(callback) => state.report(py, callback, &mut shown),
            None => Ok(()),
        };
        let run = Run {
            source: source.as_deref(),
            months: range,
            dry_run,
            cancel: cancel.clone(),
            progress: progress.is_some().then(|| state.clone()),
        };
        let report = interruptible(py, &cancel, &mut tick, || {
            self.runtime.block_on(sync(&self.lake, run))
        })?;
        report.map_err(to_py).and_then(|r| json(&r))
    }

    /// What the lake holds, as JSON.
    fn status_json(&self, py: Python<'_>) -> PyResult<String> {
        let status = py.detach(|| self.runtime.block_on(gplake::status::status(&self.lake)));
        status.map_err(to_py).and_then(|s| json(&s))
    }

    /// The quality standing of every month and the series, as JSON, with `gate_failed` (a
    /// month or table kept out, or derived tables behind) and, with `max_age_days`, `stale`.
    #[pyo3(signature = (max_age_days=None))]
    fn check_json(&self, py: Python<'_>, max_age_days: Option<u32>) -> PyResult<String> {
        let checked = py.detach(|| self.runtime.block_on(check(&self.lake, max_age_days)));
        checked.map_err(to_py).and_then(|c| json(&c))
    }

    /// Where table `name` lives, as engines (and the `deltalake` package) address it.
    fn table_uri(&self, name: &str) -> PyResult<String> {
        let table = gplake::catalog::LAKE_TABLES
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = gplake::catalog::LAKE_TABLES
                    .iter()
                    .map(|t| t.name)
                    .collect();
                UsageError::new_err(format!(
                    "no table '{name}': the tables are {}",
                    names.join(", ")
                ))
            })?;
        Ok(format!(
            "{}/{}",
            self.lake.root_location().trim_end_matches('/'),
            table.path
        ))
    }

    /// Registered population over time for a practice, ICB, region or England, drawn as
    /// `format` ("svg" or "png"); the image's bytes.
    #[pyo3(signature = (practice=None, icb=None, region=None, format="svg"))]
    fn plot_trend_bytes(
        &self,
        py: Python<'_>,
        practice: Option<String>,
        icb: Option<String>,
        region: Option<String>,
        format: &str,
    ) -> PyResult<Vec<u8>> {
        use gplake::plot::Scope;
        let scope = match (practice, icb, region) {
            (Some(p), _, _) => Scope::Practice(p.to_ascii_uppercase()),
            (_, Some(i), _) => Scope::Icb(i.to_ascii_uppercase()),
            (_, _, Some(r)) => Scope::Region(r.to_ascii_uppercase()),
            _ => Scope::National,
        };
        if !matches!(format, "svg" | "png") {
            return Err(UsageError::new_err(format!(
                "format '{format}': use svg or png"
            )));
        }
        let dir = tempfile_dir()?;
        let path = dir.join(format!("trend.{format}"));
        let drawn = py.detach(|| {
            self.runtime.block_on(async {
                let points = gplake::plot::trend(&self.lake, &scope).await?;
                gplake::plot::draw_trend(&path, &scope, &points)
            })
        });
        let bytes = drawn
            .map_err(|e| to_py(e.into()))
            .and_then(|()| std::fs::read(&path).map_err(|e| GplakeError::new_err(e.to_string())));
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    }

    /// Runs read-only SQL over every table; the result as an Arrow C stream.
    fn query_stream(&self, py: Python<'_>, sql: &str) -> PyResult<ArrowStream> {
        let options = gplake::query::QueryOptions::default();
        let ran = py.detach(|| {
            self.runtime
                .block_on(gplake::query::run(&self.lake, sql, &options))
        });
        let (schema, batches) = ran.map_err(|e| to_py(e.into()))?;
        Ok(ArrowStream {
            stream: std::sync::Mutex::new(Some((schema, batches))),
        })
    }
}

/// A query result, handed to pyarrow once through the Arrow PyCapsule stream interface.
#[pyclass(module = "gplake._gplake", frozen)]
struct ArrowStream {
    stream: std::sync::Mutex<Option<(SchemaRef, Vec<RecordBatch>)>>,
}

#[pymethods]
impl ArrowStream {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let taken = self.stream.lock().map(|mut s| s.take()).ok().flatten();
        let (schema, batches) =
            taken.ok_or_else(|| GplakeError::new_err("this query result was already read"))?;
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }
}

/// Runs `work` on its own thread with the GIL released, coming back every 100 ms to call
/// `tick` (progress) and look for Ctrl-C (Python's signals). The first Ctrl-C trips
/// `cancel`, so the run stops at its next safe point (downloads are abandoned, a month being
/// written is finished, what was committed stays, the next run carries on), and
/// KeyboardInterrupt is raised once `work` has returned. Later ones only say it is still
/// stopping: returning sooner would leave the run writing behind the caller's back.
fn interruptible<T: Send>(
    py: Python<'_>,
    cancel: &gplake::Cancel,
    tick: &mut dyn FnMut(Python<'_>) -> PyResult<()>,
    work: impl FnOnce() -> T + Send,
) -> PyResult<T> {
    let (done, mut result) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let _ = done.send(work());
        });
        let mut interrupted: Option<PyErr> = None;
        loop {
            // The receiver goes into the GIL-free wait and comes back (it is Send, not Sync).
            let (back, waited) = py.detach(move || {
                let waited = result.recv_timeout(std::time::Duration::from_millis(100));
                (result, waited)
            });
            result = back;
            let ticked = tick(py);
            match waited {
                Ok(value) => return interrupted.map_or(ticked.map(|()| value), Err),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(GplakeError::new_err("the run stopped unexpectedly"));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Err(stop) = ticked.and_then(|()| py.check_signals()) {
                say_stopping(py, interrupted.is_some());
                cancel.cancel();
                interrupted.get_or_insert(stop);
            }
        }
    })
}

/// Tells the user (on Python's stderr, which a notebook shows) that the run is stopping.
fn say_stopping(py: Python<'_>, again: bool) {
    let message = if again {
        "gplake: still stopping: the month being written is finished first, so nothing is \
         half-written\n"
    } else {
        "gplake: stopping at the next safe point (downloads are abandoned; a month being \
         written is finished)\n"
    };
    let _ = py
        .import("sys")
        .and_then(|sys| sys.getattr("stderr"))
        .and_then(|stderr| stderr.call_method1("write", (message,)));
}

/// One sync's settings, as the Python method received them.
struct Run<'a> {
    source: Option<&'a str>,
    months: Option<(gplake::Month, gplake::Month)>,
    dry_run: bool,
    cancel: gplake::Cancel,
    progress: Option<progress::Shared>,
}

async fn sync(lake: &gplake::Lake, run: Run<'_>) -> Result<gplake::SyncReport, gplake::Error> {
    let source = run
        .source
        .map_or_else(gplake::Source::live, gplake::Source::parse);
    let http = gplake::http::Http::try_new(gplake::http::HttpConfig::default(), source.host())?;
    let clock = gplake::SystemClock;
    let ctx = gplake::fetch::FetchContext {
        lake,
        http: &http,
        clock: &clock,
        progress: run.progress.as_ref().map(progress::Shared::downloads),
    };
    let options = gplake::SyncOptions {
        source,
        from: run.months.map(|m| m.0),
        to: run.months.map(|m| m.1),
        fetch: gplake::fetch::FetchOptions {
            dry_run: run.dry_run,
            cancel: run.cancel.clone(),
            ..gplake::fetch::FetchOptions::default()
        },
        build: Some(gplake::BuildOptions {
            cancel: run.cancel,
            progress: run.progress.as_ref().map(progress::Shared::builds),
            ..gplake::BuildOptions::default()
        }),
    };
    let report = gplake::sync::sync(&ctx, &options).await;
    if let Some(progress) = &run.progress {
        progress.finish();
    }
    report
}

/// The check report: what `gplake check --json` prints, and whether the gate failed.
#[derive(serde::Serialize)]
struct Checked {
    months: Vec<gplake::status::MonthStatus>,
    series: Vec<gplake::check::QualityResult>,
    gaps: Vec<gplake::Month>,
    derived_behind: Vec<String>,
    gate_failed: bool,
    stale: Option<String>,
}

async fn check(lake: &gplake::Lake, max_age_days: Option<u32>) -> Result<Checked, gplake::Error> {
    let series = gplake::build::series(lake).await?;
    let status = gplake::status::status(lake).await?;
    let today = chrono_today();
    let stale = max_age_days.and_then(|days| status.staleness(today, days));
    Ok(Checked {
        gate_failed: status.gate_failed() || stale.is_some(),
        months: status.months,
        series,
        gaps: status.gaps,
        derived_behind: status.derived_behind,
        stale,
    })
}

fn chrono_today() -> chrono::NaiveDate {
    use gplake::Clock;
    gplake::SystemClock.now().date_naive()
}

/// A fresh private folder for a chart file.
fn tempfile_dir() -> PyResult<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "gplake-py-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| GplakeError::new_err(e.to_string()))?;
    Ok(dir)
}

fn month(text: &str) -> PyResult<gplake::Month> {
    text.parse()
        .map_err(|_| UsageError::new_err(format!("'{text}' is not a month (YYYY-MM)")))
}

fn json(value: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| GplakeError::new_err(e.to_string()))
}

/// The Python exception for a gplake failure, by its kind.
fn to_py(e: gplake::Error) -> PyErr {
    use gplake::ErrorKind;
    let message = e.to_string();
    match e.kind() {
        ErrorKind::Refused | ErrorKind::BadInput => UsageError::new_err(message),
        ErrorKind::SourceUnreachable | ErrorKind::Http => SourceUnreachable::new_err(message),
        ErrorKind::Storage | ErrorKind::Busy => LakeError::new_err(message),
        ErrorKind::Cancelled => pyo3::exceptions::PyKeyboardInterrupt::new_err(message),
        _ => GplakeError::new_err(message),
    }
}

/// The extension module.
#[pymodule]
fn _gplake(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_class::<Lake>()?;
    m.add_class::<ArrowStream>()?;
    m.add("GplakeError", py.get_type::<GplakeError>())?;
    m.add("UsageError", py.get_type::<UsageError>())?;
    m.add("QualityGateError", py.get_type::<QualityGateError>())?;
    m.add("SourceUnreachable", py.get_type::<SourceUnreachable>())?;
    m.add("LakeError", py.get_type::<LakeError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
