//! Shared test helpers: lakes of every backend (a real S3-compatible server on 127.0.0.1
//! included), a fetch context over a mirror, and readers of bronze.

use std::time::Duration;

use gplake::fetch::{FetchContext, FetchOptions, Manifest};
use gplake::http::{Http, HttpConfig};
use gplake::{FixedClock, Lake, Month, Source, SyncOptions, SyncReport};
use gplake_testkit::s3;
use object_store::path::Path;

/// A lake on the local S3 server, in a fresh bucket, under a prefix.
pub(crate) async fn s3_lake(tag: &str) -> Lake {
    let bucket = tokio::task::spawn_blocking({
        let tag = tag.to_string();
        move || s3::new_bucket(&tag)
    })
    .await
    .unwrap();
    Lake::open_with(&format!("s3://{bucket}/lake"), s3::options(s3::endpoint()))
        .expect("open s3 lake")
}

/// A lake on the local Azure emulator (Azurite), in a fresh container, under a prefix.
pub(crate) async fn azure_lake(tag: &str) -> Lake {
    let container = tokio::task::spawn_blocking({
        let tag = tag.to_string();
        move || gplake_testkit::azure::new_container(&tag)
    })
    .await
    .unwrap();
    let endpoint = gplake_testkit::azure::endpoint();
    Lake::open_with(
        &format!("az://{container}/lake"),
        gplake_testkit::azure::options(endpoint),
    )
    .expect("open azure lake")
}

/// A lake in a fresh temporary folder (kept while the `TempDir` lives).
pub(crate) fn local_lake() -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    (dir, lake)
}

/// The three kinds of lake a conformance test runs against.
pub(crate) enum Backend {
    Memory,
    Local(tempfile::TempDir),
    S3,
    Azure,
}

impl Backend {
    pub(crate) async fn all() -> Vec<(Backend, Lake)> {
        let dir = tempfile::tempdir().unwrap();
        let local = Lake::open(dir.path().to_str().unwrap()).unwrap();
        vec![
            (Backend::Memory, Lake::open("memory://").unwrap()),
            (Backend::Local(dir), local),
            (Backend::S3, s3_lake("conf").await),
            (Backend::Azure, azure_lake("conf").await),
        ]
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Local(_) => "local",
            Backend::S3 => "s3",
            Backend::Azure => "azure",
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

/// Runs a sync of `from..=to` from `source` into `lake`: bronze only.
pub(crate) async fn sync(
    lake: &Lake,
    source: &Source,
    from: &str,
    to: &str,
) -> Result<SyncReport, gplake::Error> {
    sync_with(lake, source, from, to, false).await
}

/// Runs a whole sync (bronze, silver, checks) of `from..=to`.
pub(crate) async fn full_sync(
    lake: &Lake,
    source: &Source,
    from: &str,
    to: &str,
) -> Result<SyncReport, gplake::Error> {
    sync_with(lake, source, from, to, true).await
}

/// A whole sync of one month with `--verify`: every file downloaded whole and bronze
/// compared with its manifest.
pub(crate) async fn verify_sync(lake: &Lake, source: &Source, month: &str) -> SyncReport {
    let fetch = FetchOptions {
        verify: true,
        ..FetchOptions::default()
    };
    sync_options(lake, source, month, month, true, fetch)
        .await
        .unwrap()
}

async fn sync_with(
    lake: &Lake,
    source: &Source,
    from: &str,
    to: &str,
    build: bool,
) -> Result<SyncReport, gplake::Error> {
    let fetch = FetchOptions {
        jobs: 3,
        ..FetchOptions::default()
    };
    sync_options(lake, source, from, to, build, fetch).await
}

async fn sync_options(
    lake: &Lake,
    source: &Source,
    from: &str,
    to: &str,
    build: bool,
    fetch: FetchOptions,
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
        fetch,
        build: build.then(gplake::BuildOptions::default),
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

/// Runs SQL over every table of the lake (as `gplake query` does); rows as tab-separated text.
pub(crate) async fn rows(lake: &Lake, sql: &str) -> Vec<String> {
    use deltalake::arrow::array::Array;
    let options = gplake::query::QueryOptions::default();
    let (_, batches) = gplake::query::run(lake, sql, &options).await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let cols: Vec<_> = (0..b.num_columns())
            .map(|i| {
                let text = deltalake::arrow::compute::cast(
                    b.column(i),
                    &deltalake::arrow::datatypes::DataType::Utf8,
                )
                .unwrap();
                deltalake::arrow::array::AsArray::as_string::<i32>(&text).clone()
            })
            .collect();
        for r in 0..b.num_rows() {
            let cells: Vec<String> = cols
                .iter()
                .map(|c| {
                    if c.is_null(r) {
                        "NULL".to_string()
                    } else {
                        c.value(r).to_string()
                    }
                })
                .collect();
            out.push(cells.join("\t"));
        }
    }
    out
}

/// The Parquet data files under a local table folder (not its Delta log), as paths.
pub(crate) fn parquet_files(dir: &std::path::Path) -> Vec<String> {
    walkdir(dir)
        .into_iter()
        .filter(|p| p.ends_with(".parquet") && !p.contains("_delta_log"))
        .collect()
}

fn walkdir(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path.to_string_lossy().into_owned());
        }
    }
    out
}
