//! Month leases on every backend: a stale lease goes to exactly one of two racing waiters, a
//! holder paused past its lease is refused its next write, and concurrent syncs of the same
//! months lose no revision and leave every manifest true to its bytes.
//!
//! Budget: about 30 s (200 races per backend, a paused holder, four syncs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gplake::discover::Source;
use gplake::fetch::LockError;
use gplake::fetch::lease::{LEASE_NAME, MonthLease};
use gplake::{Lake, Month};
use gplake_testkit::{Mirror, Population, release, release_with_duplicated_95};
use sha2::{Digest, Sha256};

use crate::support::{Backend, local_lake, manifest, s3_lake, sync};

/// Races per backend.
const RACES: usize = 200;
const TTL: Duration = Duration::from_millis(40);
/// The races' time-to-live: far above any stall of a loaded test machine, so only the
/// stale lease is ever taken over (it is stale at once: its process is dead).
const RACE_TTL: Duration = Duration::from_secs(5);

fn month() -> Month {
    Month::new(2024, 5).unwrap()
}

/// Leaves the lease of a run that died on this host (a process id that cannot exist).
async fn leave_stale_lease(lake: &Lake) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let body = format!(
        r#"{{"host":"{}","pid":4294967294,"acquired_at":"2020-01-01T00:00:00Z"}}"#,
        host.trim()
    );
    let body = Bytes::from(body);
    let path = Lake::bronze_month_dir(month()).join(LEASE_NAME);
    match lake.local_file(&path).filter(|_| lake.is_local()) {
        Some(file) => {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, &body).unwrap();
        }
        None => lake.put_bytes(&path, body).await.unwrap(),
    }
}

/// One waiter: takes the lease and, when its check before writing passes, counts itself as
/// a writer while it "writes". A check that finds the lease lost is the fence doing its job:
/// on a starved CI machine a waiter can stall between taking the lease and its first check
/// for longer than the lease lives, and the other waiter rightly takes over. It never
/// writes, and is counted in `fenced`.
async fn waiter(
    lake: &Lake,
    ttl: Duration,
    writers: &AtomicUsize,
    most: &AtomicUsize,
    fenced: &AtomicUsize,
) {
    let lease = MonthLease::acquire(lake, month(), ttl).await.unwrap();
    match lease.check().await {
        Ok(()) => {}
        Err(LockError::Lost { .. }) => {
            fenced.fetch_add(1, Ordering::SeqCst);
            return;
        }
        Err(e) => panic!("{e}"),
    }
    let now = writers.fetch_add(1, Ordering::SeqCst) + 1;
    most.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2)).await;
    lease.check().await.unwrap();
    writers.fetch_sub(1, Ordering::SeqCst);
    lease.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_waiters_racing_for_a_stale_lease_make_exactly_one_writer_each_time() {
    for (backend, lake) in Backend::all().await {
        let name = backend.name();
        let ttl = RACE_TTL;
        let started = Instant::now();
        let fenced = AtomicUsize::new(0);
        for race in 0..RACES {
            leave_stale_lease(&lake).await;
            let (writers, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
            tokio::join!(
                waiter(&lake, ttl, &writers, &most, &fenced),
                waiter(&lake, ttl, &writers, &most, &fenced)
            );
            assert_eq!(most.load(Ordering::SeqCst), 1, "{name}, race {race}");
        }
        eprintln!(
            "{name}: {RACES} races, one writer each, {} stopped by the fence, {:.1} s",
            fenced.load(Ordering::SeqCst),
            started.elapsed().as_secs_f64()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_paused_past_its_lease_is_refused_its_next_write() {
    for lake in [Lake::open("memory://").unwrap(), s3_lake("paused").await] {
        let paused = MonthLease::acquire(&lake, month(), TTL).await.unwrap();
        paused.stop_renewing();
        let successor = MonthLease::acquire(&lake, month(), TTL).await.unwrap();
        let err = paused.check().await.unwrap_err();
        assert!(matches!(err, LockError::Lost { .. }), "{err}");
        assert!(err.to_string().contains("taken over"), "{err}");
        successor.check().await.unwrap();
        paused.release().await.unwrap();
        successor.check().await.unwrap();
        successor.release().await.unwrap();
    }
}

#[tokio::test]
async fn on_a_local_lake_a_live_holder_is_never_taken_over_however_long_it_pauses() {
    let (_dir, lake) = local_lake();
    let holder = MonthLease::acquire(&lake, month(), TTL).await.unwrap();
    tokio::time::sleep(TTL * 3).await;
    let err = MonthLease::acquire(&lake, month(), TTL).await.unwrap_err();
    let pid = std::process::id().to_string();
    assert!(
        matches!(err, LockError::Busy { .. }) && err.to_string().contains(&pid),
        "{err}"
    );
    assert!(
        err.to_string().contains("gplake unlock --month 2024-05"),
        "{err}"
    );
    holder.check().await.unwrap();
    holder.release().await.unwrap();
    MonthLease::acquire(&lake, month(), TTL)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every path each manifest names holds the bytes it records, and every lease is free.
async fn assert_manifest_true(lake: &Lake, label: &str) {
    let m = manifest(lake, "2024-05").await.unwrap();
    for f in &m.files {
        for rev in f.revisions.iter().chain([&f.current]) {
            let bytes = crate::support::bronze_bytes(lake, "2024-05", &rev.path)
                .await
                .unwrap_or_else(|| panic!("{label}: {} missing", rev.path));
            assert_eq!(
                sha(&bytes),
                rev.sha256,
                "{label}: {} holds other bytes",
                rev.path
            );
        }
    }
}

/// `n` syncs at once of a first issue, then `n` at once of its reissue.
async fn concurrent_syncs(lake: &Lake, n: usize, label: &str) {
    let pop = Population::new(7, 3);
    let first = release_with_duplicated_95(&pop, (2024, 5)).unwrap();
    let mirror = Mirror::start(vec![first]);
    let source = Source::parse(&mirror.series_url());
    for round in ["first issue", "reissue"] {
        if round == "reissue" {
            mirror.publish(release(&pop, (2024, 5)).unwrap());
        }
        let runs = (0..n).map(|_| sync(lake, &source, "2024-05", "2024-05"));
        for result in futures::future::join_all(runs).await {
            if let Err(e) = result {
                let text = e.to_string();
                assert!(
                    text.contains("being written by another gplake"),
                    "{label}: {text}"
                );
            }
        }
        assert_manifest_true(lake, &format!("{label}, {round}")).await;
    }
    let m = manifest(lake, "2024-05").await.unwrap();
    let revised: Vec<_> = m.files.iter().filter(|f| !f.revisions.is_empty()).collect();
    assert_eq!(
        revised.len(),
        2,
        "{label}: the two reissued files, each kept once"
    );
    for f in revised {
        assert_eq!(
            (f.current.revision, f.revisions.len()),
            (2, 1),
            "{label}: {}",
            f.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_and_four_concurrent_syncs_lose_no_revision() {
    for n in [2, 4] {
        let (_dir, local) = local_lake();
        concurrent_syncs(&local, n, &format!("local x{n}")).await;
        concurrent_syncs(&s3_lake("concurrent").await, n, &format!("s3 x{n}")).await;
    }
}

/// The copy into bronze on S3 cannot be conditional, so a writer frozen past its lease can
/// still put other bytes under a current name. The build proves every file against its
/// manifest before reading it: the month is kept out (its earlier silver stays) with one
/// line naming the file and the repair, and `fetch --verify` puts the recorded bytes back.
/// A local lake's files are read in place, not copied, and are proved the same way.
#[tokio::test]
async fn bronze_bytes_a_lost_writer_replaced_are_caught_and_restored() {
    let (_dir, local) = local_lake();
    altered_bronze_is_caught_and_restored(local).await;
    altered_bronze_is_caught_and_restored(s3_lake("altered").await).await;
}

async fn altered_bronze_is_caught_and_restored(lake: Lake) {
    let pop = Population::new(11, 8);
    let good = release(&pop, (2024, 5)).unwrap();
    let other = release_with_duplicated_95(&pop, (2024, 5)).unwrap();
    let mirror = Mirror::start(vec![good.clone()]);
    let source = Source::parse(&mirror.series_url());
    crate::support::full_sync(&lake, &source, "2024-05", "2024-05")
        .await
        .unwrap();
    let total = "SELECT sex, sum(registered_population) FROM fact_gp_registered_patients GROUP BY sex ORDER BY sex";
    let before = crate::support::rows(&lake, total).await;
    let name = "gp-reg-pat-prac-sing-age-male.zip";
    let stray = other.files.iter().find(|f| f.name == name).unwrap();
    let path = Lake::bronze_month_dir(month()).join(name);
    lake.put_bytes(&path, Bytes::from(stray.bytes.clone()))
        .await
        .unwrap();

    let options = gplake::BuildOptions {
        months: vec![month()],
        force: true,
        ..gplake::BuildOptions::default()
    };
    let clock = crate::support::clock();
    let report = gplake::build::build(&lake, &clock, &options).await.unwrap();
    let failures = &report.months[0].failures;
    assert!(!report.months[0].committed);
    assert!(
        failures.iter().any(|f| f.contains(name)
            && f.contains("bronze holds other bytes than its manifest records")
            && f.contains("gplake fetch --month 2024-05 --verify")),
        "{failures:?}"
    );
    assert_eq!(crate::support::rows(&lake, total).await, before);

    let verified = crate::support::verify_sync(&lake, &source, "2024-05").await;
    assert_eq!(verified.fetch.restored, 1, "{:?}", verified.fetch.files);
    assert_eq!(verified.fetch.fetched, 0);
    let good_bytes = &good.files.iter().find(|f| f.name == name).unwrap().bytes;
    let held = crate::support::bronze_bytes(&lake, "2024-05", name).await;
    assert!(
        held.as_ref() == Some(good_bytes),
        "the recorded bytes are back"
    );
    let rebuilt = &verified.build.as_ref().unwrap().months;
    assert!(rebuilt.iter().any(|m| m.month == month() && m.committed));
    assert_eq!(crate::support::rows(&lake, total).await, before);
    let again = crate::support::verify_sync(&lake, &source, "2024-05").await;
    assert_eq!(again.fetch.restored, 0);
}

/// A local file's hash is recorded with its stamp once the file has settled, so a rebuild
/// need not read every byte again; a write in place (same size, the stamp's change time
/// moved) is still caught.
#[tokio::test]
async fn a_recorded_hash_does_not_hide_bytes_written_in_place() {
    let (_dir, lake) = local_lake();
    let pop = Population::new(11, 8);
    let mirror = Mirror::start(vec![release(&pop, (2024, 5)).unwrap()]);
    let source = Source::parse(&mirror.series_url());
    crate::support::full_sync(&lake, &source, "2024-05", "2024-05")
        .await
        .unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let options = gplake::BuildOptions {
        months: vec![month()],
        force: true,
        ..gplake::BuildOptions::default()
    };
    let clock = crate::support::clock();
    let rebuild = || gplake::build::build(&lake, &clock, &options);
    let recorded = || async {
        let state = gplake::build::state::MonthState::read(&lake, month()).await;
        state.unwrap().unwrap().bronze
    };
    assert!(rebuild().await.unwrap().months[0].committed);
    let bronze = recorded().await;
    assert!(
        !bronze.is_empty() && bronze.iter().all(|b| b.hashed.stamp.is_some()),
        "settled files have their stamps recorded: {bronze:?}"
    );
    assert!(rebuild().await.unwrap().months[0].committed);
    assert_eq!(recorded().await, bronze, "the same files, the same record");

    let name = "gp-reg-pat-prac-sing-age-male.zip";
    let local = lake
        .local_file(&Lake::bronze_month_dir(month()).join(name))
        .unwrap();
    let mut bytes = std::fs::read(&local).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&local)
        .unwrap();
    std::io::Write::write_all(&mut file, &bytes).unwrap();
    drop(file);
    let report = rebuild().await.unwrap();
    let failures = &report.months[0].failures;
    assert!(!report.months[0].committed);
    assert!(
        failures.iter().any(|f| f.contains(name)
            && f.contains("bronze holds other bytes than its manifest records")),
        "{failures:?}"
    );
}
