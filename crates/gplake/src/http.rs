//! HTTP with the patience the publisher's site needs, and the suspicion the lake needs.
//!
//! Every request is retried on connection errors, timeouts, 429 and 5xx with exponential
//! backoff and jitter, honouring `Retry-After`. A download streams to a local file while its
//! SHA-256 is computed; a body shorter than its `Content-Length` (or cut off) is retried and,
//! if it never arrives whole, is an error — never a file. Redirects are followed only to
//! hosts on the allow-list, and only over https (a loopback mirror, or `allow_http`,
//! excepted). Every request has a total deadline and every body a size cap; meeting one is a
//! final error naming the URL and the limit, never retried.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, RETRY_AFTER};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use url::Url;

/// Longest `Retry-After` honoured; a server asking for more is reported instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How requests behave. `Default` is right for the live site.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// First backoff delay; doubled each retry, with jitter.
    pub base_backoff: Duration,
    /// Longest backoff delay between attempts (Retry-After may ask for more).
    pub max_backoff: Duration,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Longest silence allowed while reading a response.
    pub read_timeout: Duration,
    /// Hosts links and redirects may lead to (the source's own host is always allowed).
    pub allowed_hosts: Vec<String>,
    /// Longest one attempt at a request may take, first byte to last.
    pub request_deadline: Duration,
    /// Largest page (HTML) read.
    pub max_page_bytes: u64,
    /// Largest file downloaded.
    pub max_file_bytes: u64,
    /// Follow plain `http://` links and redirects to other than loopback hosts (an internal
    /// mirror); https only otherwise.
    pub allow_http: bool,
    /// Extra trusted certificate authorities (PEM files), for networks that inspect TLS; the
    /// system's trusted certificates (and `SSL_CERT_FILE`) are always used.
    pub ca_cert_files: Vec<std::path::PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            attempts: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            allowed_hosts: PUBLISHER_HOSTS.iter().map(|h| h.to_string()).collect(),
            request_deadline: Duration::from_secs(30 * 60),
            max_page_bytes: 20 << 20,
            max_file_bytes: 2 << 30,
            allow_http: false,
            ca_cert_files: Vec::new(),
        }
    }
}

/// The publisher's hosts, past and present: older month pages still link to files on
/// `content.digital.nhs.uk` and the HSCIC's `hscic.gov.uk`. Plain `http://` links to them are
/// upgraded to `https://` ([`upgrade_publisher_link`]).
pub const PUBLISHER_HOSTS: [&str; 5] = [
    "digital.nhs.uk",
    "files.digital.nhs.uk",
    "content.digital.nhs.uk",
    "hscic.gov.uk",
    "www.hscic.gov.uk",
];

/// `http://` links to one of the [`PUBLISHER_HOSTS`] as `https://`; other links unchanged.
pub fn upgrade_publisher_link(url: &mut Url) {
    let publisher = url
        .host_str()
        .is_some_and(|h| PUBLISHER_HOSTS.iter().any(|p| p.eq_ignore_ascii_case(h)));
    if url.scheme() == "http" && publisher {
        // Both are special schemes, so the change cannot fail.
        let _ = url.set_scheme("https");
    }
}

/// An HTTP failure, naming the URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// 404 or 410.
    #[error("{url}: not found (HTTP {status})")]
    NotFound {
        /// The URL.
        url: String,
        /// 404 or 410.
        status: u16,
    },
    /// Another status, final or still failing after every attempt.
    #[error("{url}: HTTP {status} after {attempts} attempt(s)")]
    Status {
        /// The URL.
        url: String,
        /// The last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },
    /// No connection could be made (or kept) after every attempt.
    #[error("{url}: cannot connect after {attempts} attempt(s): {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// The last cause.
        reason: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The body never arrived whole.
    #[error("{url}: download incomplete after {attempts} attempt(s): {reason}")]
    Truncated {
        /// The URL.
        url: String,
        /// What was wrong with the last attempt.
        reason: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The URL's host is not on the allow-list.
    #[error(
        "{url}: host not on the allow-list ({allowed}); add it with --allow-host if it is trusted"
    )]
    ForeignHost {
        /// The URL.
        url: String,
        /// The allow-list.
        allowed: String,
    },
    /// A plain `http://` URL where https is required.
    #[error(
        "{url}: plain http refused (https only; a loopback mirror excepted, --allow-http for an internal mirror)"
    )]
    Insecure {
        /// The URL.
        url: String,
    },
    /// A redirect led off the allow-list (or from https to http): refused at once.
    #[error("{url}: redirected to {target}, refused: {reason}")]
    Redirect {
        /// The URL asked for.
        url: String,
        /// Where the server sent it.
        target: String,
        /// Why that is refused.
        reason: String,
    },
    /// A limit was met: the body is too big or the request too slow.
    #[error("{url}: {limit}")]
    Limit {
        /// The URL.
        url: String,
        /// The limit met, with the flag that sets it.
        limit: String,
    },
    /// A `--ca-cert` file cannot be read as a PEM certificate.
    #[error("certificate authority {file}: {reason}")]
    BadCertificate {
        /// The file (or its index).
        file: String,
        /// Why.
        reason: String,
    },
    /// The local download file could not be written.
    #[error("cannot write download of {url} to {file}: {source}")]
    LocalIo {
        /// The URL.
        url: String,
        /// The local file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server asked to wait longer than gplake will.
    #[error("{url}: server asks to retry after {seconds} s; try again later")]
    TooLongRetryAfter {
        /// The URL.
        url: String,
        /// The wait asked for.
        seconds: u64,
    },
}

impl HttpError {
    /// The URL the failure names (none for a bad certificate file).
    pub fn url(&self) -> Option<&str> {
        match self {
            HttpError::NotFound { url, .. }
            | HttpError::Status { url, .. }
            | HttpError::Unreachable { url, .. }
            | HttpError::Truncated { url, .. }
            | HttpError::ForeignHost { url, .. }
            | HttpError::Insecure { url, .. }
            | HttpError::Redirect { url, .. }
            | HttpError::Limit { url, .. }
            | HttpError::LocalIo { url, .. }
            | HttpError::TooLongRetryAfter { url, .. } => Some(url),
            HttpError::BadCertificate { .. } => None,
        }
    }
}

/// What the lake already knows of a file, to ask the server for changes only.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    /// The ETag last seen.
    pub etag: Option<String>,
    /// The Last-Modified last seen.
    pub last_modified: Option<String>,
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Download {
    /// The server says the file has not changed (HTTP 304); nothing was written.
    NotModified,
    /// The whole body is in the local file.
    Fetched(Fetched),
}

/// The facts of a whole body written to a local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes written.
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// The response's ETag.
    pub etag: Option<String>,
    /// The response's Last-Modified.
    pub last_modified: Option<String>,
}

/// Byte progress of downloads, for progress bars.
pub type Progress = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// One step of a download's progress.
#[derive(Debug, Clone)]
pub enum ProgressEvent {
    /// A download (re)started; `total` when the server gave a length.
    Started {
        /// The file's key (`YYYY-MM/name`).
        key: String,
        /// Expected bytes.
        total: Option<u64>,
    },
    /// More bytes arrived.
    Advanced {
        /// The file's key.
        key: String,
        /// Bytes in this step.
        bytes: u64,
    },
    /// The download ended (either way).
    Finished {
        /// The file's key.
        key: String,
    },
}

/// The outcome of one attempt: done, worth retrying (after a server-given delay), or final.
enum Attempt<T> {
    Done(T),
    Retry(HttpError, Option<Duration>),
    Fatal(HttpError),
}

/// An HTTP client bound to an allow-list and a retry policy.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    config: HttpConfig,
}

impl Http {
    /// A client for `config`; `source_host` (the series page's host) is always allowed.
    /// Panics if a `config.ca_cert_files` file cannot be read as PEM: use [`Http::try_new`]
    /// for certificates from users.
    pub fn new(config: HttpConfig, source_host: Option<&str>) -> Http {
        Http::try_new(config, source_host).expect("valid certificates")
    }

    /// A client for `config`, or an error naming a certificate that cannot be used.
    pub fn try_new(mut config: HttpConfig, source_host: Option<&str>) -> Result<Http, HttpError> {
        if let Some(host) = source_host {
            config.allowed_hosts.push(host.to_string());
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("gplake/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .redirect(redirect_policy(&config));
        for file in &config.ca_cert_files {
            let bad = |reason: String| HttpError::BadCertificate {
                file: file.display().to_string(),
                reason,
            };
            let pem = std::fs::read(file).map_err(|e| bad(e.to_string()))?;
            // reqwest accepts a text without any certificate and would trust nothing new.
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(bad("no PEM certificate in it".into()));
            }
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| bad(e.to_string()))?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder.build().map_err(|e| HttpError::BadCertificate {
            file: "--ca-cert".into(),
            reason: e.to_string(),
        })?;
        Ok(Http { client, config })
    }

    /// True when links to `url` may be followed.
    pub fn allows(&self, url: &Url) -> bool {
        refusal(&self.config, url).is_none()
    }

    /// The allow-list, for messages.
    pub fn allowed_hosts(&self) -> &[String] {
        &self.config.allowed_hosts
    }

    /// A page's text.
    pub async fn get_text(&self, url: &Url) -> Result<String, HttpError> {
        self.check_host(url)?;
        self.retrying(url, || async {
            let response = match self.client.get(url.clone()).send().await {
                Ok(r) => r,
                Err(e) => return self.send_failed(url, &e),
            };
            if let Some(outcome) = classify_status(url, &response) {
                return outcome;
            }
            self.read_page(url, response).await
        })
        .await
    }

    /// Downloads `url` into `dest` (replacing it), hashing as it streams.
    pub async fn download(
        &self,
        url: &Url,
        validators: &Validators,
        dest: &std::path::Path,
        key: &str,
        progress: Option<&Progress>,
    ) -> Result<Download, HttpError> {
        self.check_host(url)?;
        let result = self
            .retrying(url, || {
                self.download_once(url, validators, dest, key, progress)
            })
            .await;
        if let Some(p) = progress {
            p(ProgressEvent::Finished { key: key.into() });
        }
        result
    }

    async fn download_once(
        &self,
        url: &Url,
        validators: &Validators,
        dest: &std::path::Path,
        key: &str,
        progress: Option<&Progress>,
    ) -> Attempt<Download> {
        let mut request = self.client.get(url.clone());
        if let Some(etag) = &validators.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &validators.last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return self.send_failed(url, &e),
        };
        if response.status() == StatusCode::NOT_MODIFIED {
            return Attempt::Done(Download::NotModified);
        }
        if let Some(outcome) = classify_status(url, &response) {
            return outcome;
        }
        let max = self.config.max_file_bytes;
        if let Some(len) = response.content_length().filter(|len| *len > max) {
            let what =
                format!("{len} bytes, more than the file limit of {max} bytes (--max-file-size)");
            return Attempt::Fatal(limit(url, what));
        }
        if let Some(p) = progress {
            p(ProgressEvent::Started {
                key: key.into(),
                total: response.content_length(),
            });
        }
        let sink = Sink {
            dest,
            key,
            progress,
            max,
        };
        stream_to_file(url, response, sink).await
    }

    /// A request that got no response: a refused redirect is final, the rest worth a retry.
    fn send_failed<T>(&self, url: &Url, err: &reqwest::Error) -> Attempt<T> {
        match refused_redirect(url, err) {
            Some(refused) => Attempt::Fatal(refused),
            None => Attempt::Retry(unreachable(url, err), None),
        }
    }

    /// A page's body as text, refused past the page limit.
    async fn read_page(&self, url: &Url, response: reqwest::Response) -> Attempt<String> {
        let max = self.config.max_page_bytes;
        let too_big = |got: u64| {
            let what = format!(
                "{got} bytes or more, more than the page limit of {max} bytes (--max-page-size)"
            );
            Attempt::Fatal(limit(url, what))
        };
        if let Some(len) = response.content_length().filter(|len| *len > max) {
            return too_big(len);
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) if (body.len() + c.len()) as u64 > max => {
                    return too_big((body.len() + c.len()) as u64);
                }
                Ok(c) => body.extend_from_slice(&c),
                Err(e) => return Attempt::Retry(truncated(url, e.to_string()), None),
            }
        }
        Attempt::Done(String::from_utf8_lossy(&body).into_owned())
    }

    fn check_host(&self, url: &Url) -> Result<(), HttpError> {
        match refusal(&self.config, url) {
            None => Ok(()),
            Some(Refusal::Insecure) => Err(HttpError::Insecure {
                url: url.to_string(),
            }),
            Some(Refusal::Foreign) => Err(HttpError::ForeignHost {
                url: url.to_string(),
                allowed: self.config.allowed_hosts.join(", "),
            }),
        }
    }

    /// Runs `attempt` until it is done, final, or out of attempts, sleeping between tries.
    async fn retrying<T, F, Fut>(&self, url: &Url, mut attempt: F) -> Result<T, HttpError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt<T>>,
    {
        let mut tries = 0;
        let deadline = self.config.request_deadline;
        loop {
            tries += 1;
            let outcome = match tokio::time::timeout(deadline, attempt()).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    let what = format!(
                        "not done within the request deadline of {deadline:?} (--request-deadline)"
                    );
                    return Err(limit(url, what));
                }
            };
            match outcome {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fatal(err) => return Err(err),
                Attempt::Retry(err, _) if tries >= self.config.attempts => {
                    return Err(with_attempts(err, tries));
                }
                Attempt::Retry(err, Some(wait)) if wait > MAX_RETRY_AFTER => {
                    tracing::warn!(%url, "{err}");
                    return Err(HttpError::TooLongRetryAfter {
                        url: url.to_string(),
                        seconds: wait.as_secs(),
                    });
                }
                Attempt::Retry(err, wait) => {
                    let delay = wait.unwrap_or_else(|| self.backoff(tries));
                    tracing::debug!(%url, attempt = tries, ?delay, "retrying: {err}");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Exponential backoff with "equal jitter": half fixed, half random.
    fn backoff(&self, tries: u32) -> Duration {
        let exp = self
            .config
            .base_backoff
            .saturating_mul(1 << (tries - 1).min(16));
        let capped = exp.min(self.config.max_backoff);
        let half = capped / 2;
        half + half.mul_f64(jitter_fraction())
    }
}

/// Why a URL may not be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Foreign,
    Insecure,
}

fn refusal(config: &HttpConfig, url: &Url) -> Option<Refusal> {
    let Some(host) = url.host_str() else {
        return Some(Refusal::Foreign);
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback || config.allow_http => {}
        "http" => return Some(Refusal::Insecure),
        _ => return Some(Refusal::Foreign),
    }
    let listed = config
        .allowed_hosts
        .iter()
        .any(|a| a.eq_ignore_ascii_case(host));
    (!listed).then_some(Refusal::Foreign)
}

/// A redirect refused by the policy, found again in the request's error to report it whole.
#[derive(Debug)]
struct RedirectRefused {
    target: String,
    reason: String,
}

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redirect to {} refused: {}", self.target, self.reason)
    }
}

impl std::error::Error for RedirectRefused {}

/// Follows up to five redirects, each to an allowed host, never from https down to http.
fn redirect_policy(config: &HttpConfig) -> reqwest::redirect::Policy {
    let config = config.clone();
    reqwest::redirect::Policy::custom(move |attempt| {
        let target = attempt.url().clone();
        let reason = if attempt.previous().len() > 5 {
            Some("more than five redirects".to_string())
        } else {
            match refusal(&config, &target) {
                None => None,
                Some(Refusal::Insecure) => {
                    Some("plain http (https only; --allow-http for an internal mirror)".to_string())
                }
                Some(Refusal::Foreign) => Some(format!(
                    "host {} is not on the allow-list; add it with --allow-host if it is trusted",
                    target.host_str().unwrap_or("(none)")
                )),
            }
        };
        match reason {
            None => attempt.follow(),
            Some(reason) => attempt.error(RedirectRefused {
                target: target.to_string(),
                reason,
            }),
        }
    })
}

/// The refused redirect inside a request error, if that is what failed.
fn refused_redirect(url: &Url, err: &reqwest::Error) -> Option<HttpError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<RedirectRefused>() {
            return Some(HttpError::Redirect {
                url: url.to_string(),
                target: r.target.clone(),
                reason: r.reason.clone(),
            });
        }
        source = e.source();
    }
    None
}

/// Maps a response status to an outcome, or `None` to go on reading the body.
fn classify_status<T>(url: &Url, response: &reqwest::Response) -> Option<Attempt<T>> {
    let status = response.status();
    if status.is_success() {
        return None;
    }
    let err = HttpError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        attempts: 1,
    };
    Some(match status.as_u16() {
        404 | 410 => Attempt::Fatal(HttpError::NotFound {
            url: url.to_string(),
            status: status.as_u16(),
        }),
        429 | 500..=599 => Attempt::Retry(err, retry_after(response)),
        _ => Attempt::Fatal(err),
    })
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Where a download goes, and how much of it may come.
struct Sink<'a> {
    dest: &'a std::path::Path,
    key: &'a str,
    progress: Option<&'a Progress>,
    max: u64,
}

async fn stream_to_file(
    url: &Url,
    response: reqwest::Response,
    sink: Sink<'_>,
) -> Attempt<Download> {
    let Sink {
        dest,
        key,
        progress,
        max,
    } = sink;
    let local_err = |source| {
        Attempt::Fatal(HttpError::LocalIo {
            url: url.to_string(),
            file: dest.display().to_string(),
            source,
        })
    };
    let expected = response.content_length();
    let etag = header_string(&response, ETAG);
    let last_modified = header_string(&response, LAST_MODIFIED);
    let mut file = match tokio::fs::File::create(dest).await {
        Ok(f) => f,
        Err(e) => return local_err(e),
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                return Attempt::Retry(truncated(url, format!("after {size} bytes: {e}")), None);
            }
        };
        hasher.update(&chunk);
        size += chunk.len() as u64;
        if size > max {
            let what = format!("more than the file limit of {max} bytes (--max-file-size)");
            return Attempt::Fatal(limit(url, what));
        }
        if let Err(e) = file.write_all(&chunk).await {
            return local_err(e);
        }
        if let Some(p) = progress {
            p(ProgressEvent::Advanced {
                key: key.into(),
                bytes: chunk.len() as u64,
            });
        }
    }
    if let Err(e) = file.flush().await {
        return local_err(e);
    }
    if let Some(expected) = expected.filter(|e| *e != size) {
        return Attempt::Retry(
            truncated(
                url,
                format!("got {size} of {expected} bytes (Content-Length)"),
            ),
            None,
        );
    }
    Attempt::Done(Download::Fetched(Fetched {
        size,
        sha256: hex::encode(hasher.finalize()),
        etag,
        last_modified,
    }))
}

/// A limit met by the request for `url`: `what`, with the flag that sets it.
fn limit(url: &Url, what: String) -> HttpError {
    HttpError::Limit {
        url: url.to_string(),
        limit: what,
    }
}

fn header_string(
    response: &reqwest::Response,
    name: reqwest::header::HeaderName,
) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A request that got no response: no connection at all, or one dropped mid-response.
fn unreachable(url: &Url, err: &reqwest::Error) -> HttpError {
    let mut reason = String::new();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        reason = if reason.is_empty() {
            s.to_string()
        } else {
            format!("{reason}: {s}")
        };
        source = s.source();
    }
    if err.is_connect() {
        HttpError::Unreachable {
            url: url.to_string(),
            reason,
            attempts: 1,
        }
    } else {
        truncated(url, format!("no complete response ({reason})"))
    }
}

fn truncated(url: &Url, reason: String) -> HttpError {
    HttpError::Truncated {
        url: url.to_string(),
        reason,
        attempts: 1,
    }
}

fn with_attempts(err: HttpError, tries: u32) -> HttpError {
    match err {
        HttpError::Status { url, status, .. } => HttpError::Status {
            url,
            status,
            attempts: tries,
        },
        HttpError::Unreachable { url, reason, .. } => HttpError::Unreachable {
            url,
            reason,
            attempts: tries,
        },
        HttpError::Truncated { url, reason, .. } => HttpError::Truncated {
            url,
            reason,
            attempts: tries,
        },
        other => other,
    }
}

/// A fraction in [0, 1) from the standard library's per-process random hasher keys.
fn jitter_fraction() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}
