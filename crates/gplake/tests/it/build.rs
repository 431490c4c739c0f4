//! The build pipeline through the library's API: cancellation stops at a safe point, and the
//! derived tables record the silver they were built from.

use gplake::{BuildEvent, BuildOptions, Cancel, ErrorKind, Source};
use gplake_testkit::{Mirror, Population, release};

use crate::support::{clock, local_lake, rows, sync};

#[tokio::test]
async fn a_cancelled_build_stops_at_a_safe_point_and_the_next_build_carries_on() {
    let pop = Population::new(21, 5);
    let months = [(2025, 1), (2025, 2)];
    let mirror = Mirror::start(months.iter().map(|&m| release(&pop, m).unwrap()).collect());
    let (_dir, lake) = local_lake();
    sync(
        &lake,
        &Source::parse(&mirror.series_url()),
        "2025-01",
        "2025-02",
    )
    .await
    .unwrap();
    let cancel = Cancel::new();
    cancel.cancel();
    let options = BuildOptions {
        cancel: cancel.clone(),
        ..BuildOptions::default()
    };
    let err = gplake::build(&lake, &clock(), &options).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert!(err.to_string().contains("the next run carries on"), "{err}");
    let status = gplake::status::status(&lake).await.unwrap();
    assert!(status.months.iter().all(|m| m.built_at.is_none()));

    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let options = BuildOptions {
        progress: Some(std::sync::Arc::new(move |e: BuildEvent| {
            seen.lock().unwrap().push(format!("{e:?}"))
        })),
        ..BuildOptions::default()
    };
    let report = gplake::build(&lake, &clock(), &options).await.unwrap();
    assert_eq!(report.months.len(), 2);
    assert!(report.derived.rebuilt);
    let events = events.lock().unwrap().clone();
    assert_eq!(
        events.first().map(String::as_str),
        Some("Planned { months: 2 }")
    );
    assert_eq!(
        events.iter().filter(|e| e.starts_with("MonthDone")).count(),
        2
    );
    let last: Vec<&str> = events.iter().rev().take(2).map(String::as_str).collect();
    assert_eq!(last, ["Finished", "Deriving"]);
    assert!(
        events
            .iter()
            .any(|e| e.contains("rows: ") && !e.contains("rows: 0,")),
        "{events:?}"
    );
    let derived = gplake::build::derived::read(&lake).await.unwrap();
    assert!(
        derived.sources.contains_key("practice_snapshot"),
        "{derived:?}"
    );
    assert_eq!(derived.outputs.len(), 5, "{derived:?}");
    assert!(
        gplake::build::derived::behind(&lake)
            .await
            .unwrap()
            .is_empty()
    );
    let gold = rows(
        &lake,
        "SELECT COUNT(DISTINCT snapshot_date) FROM practice_list_size_monthly",
    )
    .await;
    assert_eq!(gold, vec!["2"]);
}
