//! Faults over the mirror: 5xx, 429 with Retry-After, truncated and slow bodies, 404 files,
//! foreign hosts, unreachable sources, pages without links — each either survived or
//! reported in one line that names the month and URL, with the lake left as it was.

use std::time::Duration;

use gplake::{ErrorKind, Lake, Source};
use gplake_testkit::{Fault, Mirror, Population, release};

use crate::support::{bronze_bytes, local_lake, manifest, snapshot, sync};

const ALL: &str = "gp-reg-pat-prac-all.csv";

fn january_2021() -> gplake_testkit::SynthRelease {
    release(&Population::new(5, 8), (2021, 1)).unwrap()
}

async fn sync_january(mirror: &Mirror, lake: &Lake) -> Result<gplake::SyncReport, gplake::Error> {
    sync(
        lake,
        &Source::parse(&mirror.series_url()),
        "2021-01",
        "2021-01",
    )
    .await
}

fn file_bytes(r: &gplake_testkit::SynthRelease, name: &str) -> Vec<u8> {
    r.files
        .iter()
        .find(|f| f.name == name)
        .unwrap()
        .bytes
        .clone()
}

#[tokio::test]
async fn server_errors_then_success() {
    let r = january_2021();
    let mirror = Mirror::start(vec![r.clone()]);
    mirror.inject(ALL, vec![Fault::Status(503), Fault::Status(500)]);
    let (_dir, lake) = local_lake();
    let report = sync_january(&mirror, &lake).await.unwrap();
    assert_eq!(report.fetch.fetched, r.files.len());
    let statuses: Vec<u16> = mirror.requests_for(ALL).iter().map(|l| l.status).collect();
    assert_eq!(statuses, [503, 500, 200]);
    assert!(bronze_bytes(&lake, "2021-01", ALL).await.unwrap() == file_bytes(&r, ALL));
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let mirror = Mirror::start(vec![january_2021()]);
    mirror.inject(
        ALL,
        vec![Fault::TooManyRequests {
            retry_after_secs: 1,
        }],
    );
    let (_dir, lake) = local_lake();
    sync_january(&mirror, &lake).await.unwrap();
    let log = mirror.requests_for(ALL);
    assert_eq!(log.iter().map(|l| l.status).collect::<Vec<_>>(), [429, 200]);
    let waited = log[1].at - log[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?} after Retry-After: 1"
    );
}

#[tokio::test]
async fn a_truncated_body_is_detected_and_retried() {
    let r = january_2021();
    let mirror = Mirror::start(vec![r.clone()]);
    mirror.inject(ALL, vec![Fault::Truncate { after: 100 }]);
    let (_dir, lake) = local_lake();
    sync_january(&mirror, &lake).await.unwrap();
    assert_eq!(mirror.requests_for(ALL).len(), 2);
    assert!(bronze_bytes(&lake, "2021-01", ALL).await.unwrap() == file_bytes(&r, ALL));
}

#[tokio::test]
async fn a_body_that_never_arrives_whole_is_an_error_and_the_month_stays_as_it_was() {
    let mut r = january_2021();
    let mirror = Mirror::start(vec![r.clone()]);
    let (_dir, lake) = local_lake();
    sync_january(&mirror, &lake).await.unwrap();
    let before = snapshot(&lake).await;
    let before_manifest = manifest(&lake, "2021-01").await;
    for f in &mut r.files {
        f.bytes.extend_from_slice(
            b"GP_PRAC_PAT_LIST,01JAN2021,GP,00L,E38000130,Z99999,NE1 1AA,ALL,ALL,5\r\n",
        );
    }
    mirror.publish(r);
    mirror.inject(ALL, vec![Fault::Truncate { after: 10 }; 10]);
    let err = sync_january(&mirror, &lake).await.unwrap_err();
    let line = err.to_string();
    assert!(
        line.contains("month 2021-01") && line.contains(ALL) && line.contains("incomplete"),
        "{line}"
    );
    assert!(!line.contains('\n'), "one line: {line}");
    assert_eq!(err.kind(), ErrorKind::Http);
    assert_eq!(
        snapshot(&lake).await,
        before,
        "no file of the failed month changed"
    );
    assert_eq!(manifest(&lake, "2021-01").await, before_manifest);
}

#[tokio::test]
async fn slow_bodies_within_the_timeout_arrive_and_stalled_ones_are_retried() {
    let r = january_2021();
    let mirror = Mirror::start(vec![r.clone()]);
    let map = "gp-reg-pat-prac-map.csv";
    mirror.inject(
        ALL,
        vec![Fault::Slow {
            chunk: 4096,
            pause: Duration::from_millis(30),
        }],
    );
    mirror.inject(
        map,
        vec![Fault::Slow {
            chunk: 4096,
            pause: Duration::from_secs(3),
        }],
    );
    let (_dir, lake) = local_lake();
    sync_january(&mirror, &lake).await.unwrap();
    assert_eq!(mirror.requests_for(ALL).len(), 1, "slow but steady is fine");
    assert_eq!(
        mirror.requests_for(map).len(),
        2,
        "a stall past the read timeout is retried"
    );
    assert!(bronze_bytes(&lake, "2021-01", map).await.unwrap() == file_bytes(&r, map));
}

#[tokio::test]
async fn a_link_to_a_foreign_host_is_never_followed() {
    let r = january_2021();
    let mirror = Mirror::start(vec![r.clone()]);
    mirror.add_foreign_link((2021, 1));
    let (_dir, lake) = local_lake();
    let report = sync_january(&mirror, &lake).await.unwrap();
    let release = &report.discovery.releases[0];
    assert_eq!(release.files.len(), r.files.len());
    assert_eq!(release.skipped.len(), 1);
    assert!(release.skipped[0].url.contains("foreign.invalid"));
    assert!(release.skipped[0].reason.contains("allow-list"));
}

#[tokio::test]
async fn a_missing_file_names_the_month_and_url_and_writes_nothing() {
    let mirror = Mirror::start(vec![january_2021()]);
    mirror.inject(ALL, vec![Fault::Status(404)]);
    let (_dir, lake) = local_lake();
    let err = sync_january(&mirror, &lake).await.unwrap_err().to_string();
    assert!(
        err.contains("month 2021-01")
            && err.contains(&mirror.file_url((2021, 1), ALL).unwrap())
            && err.contains("not found"),
        "{err}"
    );
    assert!(snapshot(&lake).await.is_empty());
}

#[tokio::test]
async fn an_unreachable_source_points_to_source_dir() {
    let (_dir, lake) = local_lake();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = Source::parse(&format!("http://127.0.0.1:{port}/series"));
    let err = sync(&lake, &source, "2021-01", "2021-01")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SourceUnreachable);
    assert!(err.to_string().contains("--source DIR"), "{err}");
}

#[tokio::test]
async fn a_series_page_without_links_is_an_error() {
    let mirror = Mirror::start(vec![]);
    mirror.set_page(
        "/empty",
        "<html><body><p>Service unavailable</p></body></html>",
    );
    let (_dir, lake) = local_lake();
    let source = Source::parse(&format!("{}/empty", mirror.base_url()));
    let err = sync(&lake, &source, "2021-01", "2021-01")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has no links") && err.contains("/empty"),
        "{err}"
    );
}

#[tokio::test]
async fn a_month_page_that_keeps_failing_is_reported_and_the_other_months_proceed() {
    let pop = Population::new(5, 8);
    let months = [(2021, 1), (2021, 2), (2021, 3)];
    let mirror = Mirror::start(months.iter().map(|&m| release(&pop, m).unwrap()).collect());
    // February's page answers 500 every time (more than the client's attempts).
    mirror.inject("february-2021", vec![Fault::Status(500); 10]);
    let (_dir, lake) = local_lake();
    let report = sync(
        &lake,
        &Source::parse(&mirror.series_url()),
        "2021-01",
        "2021-03",
    )
    .await
    .unwrap();
    let fetched: Vec<String> = report
        .discovery
        .releases
        .iter()
        .map(|r| r.month.to_string())
        .collect();
    assert_eq!(fetched, ["2021-01", "2021-03"]);
    let failed = &report.discovery.failed;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].month.to_string(), "2021-02");
    assert!(
        failed[0].reason.contains("february-2021") && failed[0].reason.contains("500"),
        "{}",
        failed[0].reason
    );
    assert!(manifest(&lake, "2021-03").await.is_some());
    assert!(manifest(&lake, "2021-02").await.is_none());
}
