//! A local mirror of the NHS Digital series: series page, month pages, files under opaque
//! `/XX/YYYYYY/` folders — with faults injected on demand.
//!
//! It serves on `127.0.0.1` from its own thread and runtime, so both async tests and tests
//! that run the `gplake` binary can use it. ETag / If-None-Match are honoured (304), like the
//! real file host. Faults are queued per file name and used up one per request: an HTTP
//! status, 429 with `Retry-After`, a body cut short of its `Content-Length`, a slow body.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::population::Ym;
use crate::synth::SynthRelease;

/// The series page's path, as on the live site.
pub const SERIES_PATH: &str =
    "/data-and-information/publications/statistical/patients-registered-at-a-gp-practice";
const LAST_MODIFIED: &str = "Wed, 10 Jan 2024 09:30:00 GMT";

/// A misbehaviour for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and no body.
    Status(u16),
    /// 429 Too Many Requests with `Retry-After: seconds`.
    TooManyRequests {
        /// The Retry-After value.
        retry_after_secs: u64,
    },
    /// Send the full `Content-Length` but only this many bytes, then drop the connection.
    Truncate {
        /// Bytes sent.
        after: usize,
    },
    /// 302 Found to this URL.
    Redirect(String),
    /// Send the body in chunks with a pause before each.
    Slow {
        /// Bytes per chunk.
        chunk: usize,
        /// Pause before each chunk.
        pause: Duration,
    },
}

/// One request the mirror answered.
#[derive(Debug, Clone)]
pub struct Logged {
    /// When it arrived.
    pub at: Instant,
    /// Its path.
    pub path: String,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug, Clone)]
struct Served {
    bytes: Arc<Vec<u8>>,
    etag: String,
}

#[derive(Debug, Default)]
struct Site {
    releases: BTreeMap<Ym, SynthRelease>,
    /// Months whose page exists but has no files yet.
    upcoming: Vec<Ym>,
    /// Months whose page carries a link to a foreign host.
    foreign: Vec<Ym>,
    /// Pages set by hand.
    extra_pages: HashMap<String, String>,
    /// Pages by path, rebuilt after every change.
    pages: HashMap<String, String>,
    files: HashMap<String, Served>,
    faults: Vec<(String, VecDeque<Fault>)>,
    log: Vec<Logged>,
    /// One bandwidth shared by every file download, when set.
    throttle: Option<Arc<Throttle>>,
}

/// A bandwidth shared by all connections: each chunk books the next free slot on one line,
/// so parallel downloads split the rate instead of each getting it (a real uplink).
#[derive(Debug)]
struct Throttle {
    bytes_per_sec: f64,
    next_free: Mutex<Instant>,
}

impl Throttle {
    /// When a chunk of `len` bytes may be sent.
    fn book(&self, len: usize) -> Instant {
        let mut next = self.next_free.lock().expect("throttle lock");
        let start = (*next).max(Instant::now());
        *next = start + Duration::from_secs_f64(len as f64 / self.bytes_per_sec);
        *next
    }
}

/// A running mirror; stops when dropped.
#[derive(Debug)]
pub struct Mirror {
    base: String,
    site: Arc<Mutex<Site>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Mirror {
    /// Starts a mirror serving `releases` on 127.0.0.1.
    pub fn start(releases: Vec<SynthRelease>) -> Mirror {
        let site = Arc::new(Mutex::new(Site::default()));
        {
            let mut s = site.lock().expect("site lock");
            s.releases = releases.into_iter().map(|r| (r.month, r)).collect();
            s.rebuild();
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let state = site.clone();
        std::thread::spawn(move || serve(listener, state, rx));
        Mirror {
            base,
            site,
            shutdown: Some(tx),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The series page URL: what `--source` takes.
    pub fn series_url(&self) -> String {
        format!("{}{SERIES_PATH}", self.base)
    }

    /// The URL a month's file is served at now.
    pub fn file_url(&self, month: Ym, name: &str) -> Option<String> {
        let site = self.lock();
        let release = site.releases.get(&month)?;
        let index = release.files.iter().position(|f| f.name == name)?;
        Some(format!("{}{}", self.base, file_path(release, index)))
    }

    /// Publishes (or republishes) a month: a changed file gets new bytes under a new folder.
    pub fn publish(&self, release: SynthRelease) {
        let mut site = self.lock();
        site.releases.insert(release.month, release);
        site.rebuild();
    }

    /// Adds a month page that has no data files yet.
    pub fn add_upcoming(&self, month: Ym) {
        let mut site = self.lock();
        site.upcoming.push(month);
        site.rebuild();
    }

    /// Adds a data link to a foreign host on a month's page.
    pub fn add_foreign_link(&self, month: Ym) {
        let mut site = self.lock();
        site.foreign.push(month);
        site.rebuild();
    }

    /// Serves `html` at `path` (a page of one's own: empty, odd markup…).
    pub fn set_page(&self, path: &str, html: &str) {
        let mut site = self.lock();
        site.extra_pages.insert(path.to_string(), html.to_string());
        site.rebuild();
    }

    /// Queues faults for requests whose path contains `path_part` (a file name, say).
    pub fn inject(&self, path_part: &str, faults: Vec<Fault>) {
        self.lock()
            .faults
            .push((path_part.to_string(), faults.into()));
    }

    /// Limits every file download, all connections together, to `bytes_per_sec` (pages are
    /// not limited): for measuring fetch throughput when the network is the bottleneck.
    pub fn throttle(&self, bytes_per_sec: u64) {
        self.lock().throttle = Some(Arc::new(Throttle {
            bytes_per_sec: bytes_per_sec.max(1) as f64,
            next_free: Mutex::new(Instant::now()),
        }));
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// Requests whose path contains `path_part`.
    pub fn requests_for(&self, path_part: &str) -> Vec<Logged> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.contains(path_part))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Site> {
        self.site.lock().expect("site lock")
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn serve(
    listener: std::net::TcpListener,
    site: Arc<Mutex<Site>>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let app = axum::Router::new().fallback(handle).with_state(site);
        let server = axum::serve(listener, app);
        tokio::select! {
            _ = server => {}
            _ = stop => {}
        }
    });
}

async fn handle(State(site): State<Arc<Mutex<Site>>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let (response, status) = answer(&site, &path, request.headers());
    site.lock().expect("site lock").log.push(Logged {
        at: Instant::now(),
        path,
        status,
    });
    response
}

fn answer(site: &Mutex<Site>, path: &str, headers: &HeaderMap) -> (Response, u16) {
    let mut site = site.lock().expect("site lock");
    let fault = site
        .faults
        .iter_mut()
        .find(|(part, queue)| path.contains(part.as_str()) && !queue.is_empty())
        .and_then(|(_, queue)| queue.pop_front());
    if let Some(page) = site.pages.get(path) {
        match fault {
            Some(Fault::Status(code)) => return status_only(code),
            Some(Fault::Redirect(to)) => return redirect(&to),
            _ => {}
        }
        let mut r = page.clone().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return (r, 200);
    }
    let Some(file) = site.files.get(path).cloned() else {
        return status_only(404);
    };
    let throttle = site.throttle.clone();
    drop(site);
    serve_file(file, fault, throttle, headers)
}

fn serve_file(
    file: Served,
    fault: Option<Fault>,
    throttle: Option<Arc<Throttle>>,
    headers: &HeaderMap,
) -> (Response, u16) {
    match fault {
        Some(Fault::Status(code)) => return status_only(code),
        Some(Fault::Redirect(to)) => return redirect(&to),
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut r = StatusCode::TOO_MANY_REQUESTS.into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return (r, 429);
        }
        _ => {}
    }
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(file.etag.as_str())
    {
        return status_only(304);
    }
    let len = file.bytes.len();
    let body = match fault {
        Some(Fault::Truncate { after }) => truncated_body(file.bytes, after),
        Some(Fault::Slow { chunk, pause }) => slow_body(file.bytes, chunk, pause),
        _ if throttle.is_some() => throttled_body(file.bytes, throttle.expect("checked")),
        _ => Body::from(file.bytes.as_ref().clone()),
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&file.etag).expect("ascii etag"),
    );
    h.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_static(LAST_MODIFIED),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    (r, 200)
}

fn redirect(to: &str) -> (Response, u16) {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    (r, 302)
}

fn status_only(code: u16) -> (Response, u16) {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status.into_response(), code)
}

fn truncated_body(bytes: Arc<Vec<u8>>, after: usize) -> Body {
    let head = bytes[..after.min(bytes.len())].to_vec();
    let stream = futures::stream::iter(vec![
        Ok(bytes::Bytes::from(head)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "mirror: truncated on purpose",
        )),
    ]);
    Body::from_stream(stream)
}

fn slow_body(bytes: Arc<Vec<u8>>, chunk: usize, pause: Duration) -> Body {
    let chunks: Vec<bytes::Bytes> = bytes
        .chunks(chunk.max(1))
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let stream = futures::StreamExt::then(futures::stream::iter(chunks), move |c| async move {
        tokio::time::sleep(pause).await;
        Ok::<_, std::io::Error>(c)
    });
    Body::from_stream(stream)
}

fn throttled_body(bytes: Arc<Vec<u8>>, throttle: Arc<Throttle>) -> Body {
    let chunks: Vec<bytes::Bytes> = bytes
        // Chunks long enough (≈ 5 ms at 50 MB/s) that the timer's millisecond ticks do not
        // slow one stream below the rate.
        .chunks(256 * 1024)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let stream = futures::StreamExt::then(futures::stream::iter(chunks), move |c| {
        let at = throttle.book(c.len());
        async move {
            tokio::time::sleep_until(at.into()).await;
            Ok::<_, std::io::Error>(c)
        }
    });
    Body::from_stream(stream)
}

impl Site {
    fn rebuild(&mut self) {
        self.pages.clear();
        self.files.clear();
        let mut months: Vec<Ym> = self.releases.keys().copied().collect();
        months.extend(self.upcoming.iter().copied());
        months.sort();
        self.pages
            .insert(SERIES_PATH.to_string(), series_page(&months));
        self.pages.insert(
            format!("{SERIES_PATH}/data-quality-statement"),
            "<html><body><p>Data quality</p></body></html>".into(),
        );
        for &month in &self.upcoming {
            self.pages.insert(month_path(month), upcoming_page(month));
        }
        let extra: Vec<(String, String)> = self.extra_pages.clone().into_iter().collect();
        self.pages.extend(extra);
        let releases: Vec<SynthRelease> = self.releases.values().cloned().collect();
        for release in releases {
            for (i, f) in release.files.iter().enumerate() {
                let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&f.bytes))[..16]);
                self.files.insert(
                    file_path(&release, i),
                    Served {
                        bytes: Arc::new(f.bytes.clone()),
                        etag,
                    },
                );
            }
            let page = month_page(&release, self.foreign.contains(&release.month));
            self.pages.insert(month_path(release.month), page);
        }
    }
}

/// Month slugs as on the live site, with the two special-topic months (nhs-formats §4).
pub fn month_slug(month: Ym) -> String {
    match month {
        (2017, 10) => "patients-registered-at-a-gp-practice-october-2017-special-topic-practice-list-size-comparison-october-2013-to-october-2017".into(),
        (2018, 4) => "patients-registered-at-a-gp-practice-april-2018-special-topic---registered-patients-compared-to-the-projected-resident-population-in-england".into(),
        (y, m) => format!("{}-{y}", ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"][m as usize - 1]),
    }
}

fn month_path(month: Ym) -> String {
    format!("{SERIES_PATH}/{}", month_slug(month))
}

/// `/XX/YYYYYY/name`: opaque, and new whenever the bytes change (like a reissue upstream).
fn file_path(release: &SynthRelease, index: usize) -> String {
    let f = &release.files[index];
    let mut h = Sha256::new();
    h.update(format!("{:?}/{index}/{}", release.month, f.name));
    h.update(&f.bytes);
    let hex = hex::encode_upper(h.finalize());
    format!("/{}/{}/{}", &hex[..2], &hex[2..8], f.name)
}

/// The series page links every other month (the rest are found by slug), special months,
/// and unrelated pages.
fn series_page(months: &[Ym]) -> String {
    let mut html = String::from(
        "<html><head><title>Patients Registered at a GP Practice</title></head><body><h1>Patients Registered at a GP Practice</h1><ul>",
    );
    for (i, &m) in months.iter().enumerate() {
        let special = matches!(m, (2017, 10) | (2018, 4));
        if i % 2 == 0 || special || i + 1 == months.len() {
            html.push_str(&format!("<li><a href=\"{}\">{m:?}</a></li>", month_path(m)));
        }
    }
    html.push_str(&format!("</ul><p><a href=\"{SERIES_PATH}/data-quality-statement\">Data quality statement</a></p></body></html>"));
    html
}

fn month_page(release: &SynthRelease, foreign: bool) -> String {
    let (y, m) = release.month;
    let mut html = format!(
        "<html><body><h1>Patients Registered at a GP Practice, {m}/{y}</h1><dl><dt>Publication date:</dt><dd>{}</dd></dl><div class=\"resources\">",
        release.published.format("%-d %B %Y")
    );
    for (i, f) in release.files.iter().enumerate() {
        html.push_str(&format!(
            "<div class=\"nhsd-m-card\"><a class=\"nhsd-a-box-link\" href=\"{}\"><span>{}</span></a></div>",
            file_path(release, i),
            f.link_text
        ));
    }
    if foreign {
        html.push_str("<p><a href=\"http://foreign.invalid/AA/BBBBBB/gp-reg-pat-prac-all.csv\">Elsewhere</a></p>");
    }
    html.push_str("<p><a href=\"/static/Pre-Release%20Access%20List.pdf\">Pre-release access list</a></p></div></body></html>");
    html
}

fn upcoming_page(month: Ym) -> String {
    format!(
        "<html><body><h1>Upcoming: {month:?}</h1><p>Publication date: 10 {} {}</p><p><a href=\"/static/notice.pdf\">Notice</a></p></body></html>",
        month_slug(month).split('-').next().unwrap_or(""),
        month.0
    )
}
