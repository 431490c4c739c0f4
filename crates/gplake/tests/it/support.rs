//! Shared test helpers: lakes of every backend (a real S3-compatible server on 127.0.0.1
//! included), a fetch context over a mirror, and readers of bronze.

use std::sync::OnceLock;
use std::time::Duration;

use gplake::fetch::{FetchContext, FetchOptions, Manifest};
use gplake::http::{Http, HttpConfig};
use gplake::{FixedClock, Lake, Month, Source, SyncOptions, SyncReport};
use object_store::path::Path;

/// The S3 endpoint: `GPLAKE_TEST_S3_ENDPOINT` (CI starts moto), else a moto server this test
/// binary starts once and that stops when the binary exits.
pub(crate) fn s3_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| match std::env::var("GPLAKE_TEST_S3_ENDPOINT") {
        Ok(url) => url,
        Err(_) => start_moto(),
    })
}

fn start_moto() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The watchdog ends moto when this test process is gone.
    let script = format!(
        "moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
        parent = std::process::id()
    );
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .spawn()
        .expect("start moto_server (pip install 'moto[server]')");
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return format!("http://127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server did not start on port {port}: is moto[server] installed?");
}

/// S3 options for the local server.
pub(crate) fn s3_options() -> Vec<(&'static str, String)> {
    vec![
        ("aws_endpoint", s3_endpoint().to_string()),
        ("aws_access_key_id", "testing".into()),
        ("aws_secret_access_key", "testing".into()),
        ("aws_region", "us-east-1".into()),
        ("aws_allow_http", "true".into()),
    ]
}

/// A fresh bucket on the local S3 server; returns its name.
pub(crate) async fn new_bucket(tag: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let bucket = format!("gplake-{tag}-{}-{n}", std::process::id());
    let response = reqwest::Client::new()
        .put(format!("{}/{bucket}", s3_endpoint()))
        .send()
        .await
        .expect("create bucket");
    assert!(
        response.status().is_success(),
        "create bucket: {}",
        response.status()
    );
    bucket
}

/// A lake on the local S3 server, under a prefix.
pub(crate) async fn s3_lake(tag: &str) -> Lake {
    let bucket = new_bucket(tag).await;
    Lake::open_with(&format!("s3://{bucket}/lake"), s3_options()).expect("open s3 lake")
}

/// The three kinds of lake a conformance test runs against.
pub(crate) enum Backend {
    Memory,
    Local(tempfile::TempDir),
    S3,
}

impl Backend {
    pub(crate) async fn all() -> Vec<(Backend, Lake)> {
        let dir = tempfile::tempdir().unwrap();
        let local = Lake::open(dir.path().to_str().unwrap()).unwrap();
        vec![
            (Backend::Memory, Lake::open("memory://").unwrap()),
            (Backend::Local(dir), local),
            (Backend::S3, s3_lake("conf").await),
        ]
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Local(_) => "local",
            Backend::S3 => "s3",
        }
    }
}

/// A clock fixed at 2026-11-01.
pub(crate) fn clock() -> FixedClock {
    FixedClock::new("2026-11-01T12:00:00Z".parse().unwrap())
}

/// HTTP settings for tests: quick backoff, short timeouts.
pub(crate) fn http_for(source: &Source) -> Http {
    let config = HttpConfig {
        attempts: 4,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        read_timeout: Duration::from_secs(2),
        ..HttpConfig::default()
    };
    Http::new(config, source.host())
}

/// Runs a sync of `from..=to` from `source` into `lake`.
pub(crate) async fn sync(
    lake: &Lake,
    source: &Source,
    from: &str,
    to: &str,
) -> Result<SyncReport, gplake::Error> {
    let http = http_for(source);
    let clock = clock();
    let ctx = FetchContext {
        lake,
        http: &http,
        clock: &clock,
        progress: None,
    };
    let options = SyncOptions {
        source: source.clone(),
        from: Some(from.parse().unwrap()),
        to: Some(to.parse().unwrap()),
        fetch: FetchOptions {
            jobs: 3,
            ..FetchOptions::default()
        },
    };
    gplake::sync::sync(&ctx, &options).await
}

/// Every object in the lake with its size and last-modified time, sorted by path.
pub(crate) async fn snapshot(
    lake: &Lake,
) -> Vec<(String, u64, chrono::DateTime<chrono::Utc>, Option<String>)> {
    let mut all: Vec<_> = lake
        .list(&Path::from(""))
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.location.to_string(), m.size, m.last_modified, m.e_tag))
        .collect();
    all.sort();
    all
}

/// The bytes of a file in bronze.
pub(crate) async fn bronze_bytes(lake: &Lake, month: &str, relative: &str) -> Option<Vec<u8>> {
    let month: Month = month.parse().unwrap();
    let path = relative
        .split('/')
        .fold(Lake::bronze_month_dir(month), |p, part| p.join(part));
    lake.get_bytes(&path).await.unwrap().map(|b| b.to_vec())
}

/// A month's manifest.
pub(crate) async fn manifest(lake: &Lake, month: &str) -> Option<Manifest> {
    Manifest::read(lake, month.parse().unwrap()).await.unwrap()
}
