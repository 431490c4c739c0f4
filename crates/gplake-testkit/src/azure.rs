//! A real Azure Blob Storage emulator on 127.0.0.1 for tests: Azurite (`npm install azurite`;
//! `scripts/test` installs it and puts it on PATH), which honours conditional PUTs
//! (`If-None-Match: *`, `If-Match`) as Azure does.
//!
//! `scripts/test` starts one, in memory, and sets `AZURITE_BLOB_STORAGE_URL`
//! (`http://127.0.0.1:PORT`), which object_store's emulator mode and every child process read.

use std::sync::OnceLock;
use std::time::Duration;

/// Azurite's account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published development key (the same in every Azurite; not a secret).
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The blob service URL of the test server, `http://127.0.0.1:PORT` (without the account).
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let url = std::env::var("AZURITE_BLOB_STORAGE_URL").expect(
            "AZURITE_BLOB_STORAGE_URL is not set: run the tests with scripts/test, which starts \
             Azurite, or start one (azurite-blob --inMemoryPersistence) and set it",
        );
        wait_for(&url);
        url
    })
}

fn wait_for(url: &str) {
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    for _ in 0..300 {
        if std::net::TcpStream::connect(authority).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("Azurite does not answer at {url}");
}

/// Store options for the test server: object_store's emulator mode, which reads the server's
/// URL from `AZURITE_BLOB_STORAGE_URL` and knows Azurite's gaps (it lists without `startFrom`).
///
/// Idle connections are dropped after 2 s, under Azurite's 5 s keep-alive, so a request is
/// never sent on a connection Azurite is closing. (That race also needs the client to be
/// slow to notice a close: see the multi-thread runtime of the Azure sync test.)
pub fn options(_endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("azure_storage_use_emulator", "true".into()),
        ("azure_pool_idle_timeout", "2s".into()),
    ]
}

/// The same settings as `AZURE_*` environment variables, for a child `gplake` process.
pub fn env(endpoint: &str) -> Vec<(String, String)> {
    options(endpoint)
        .into_iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v))
        .collect()
}

/// Creates a fresh, uniquely named container on the shared server and returns its name
/// (with the Python Azure SDK from the test environment: object stores cannot make one).
pub fn new_container(tag: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let container = format!("gplake-{tag}-{}-{n}", std::process::id()).to_ascii_lowercase();
    let connection = format!(
        "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={}/{ACCOUNT};",
        endpoint().trim_end_matches('/')
    );
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys; from azure.storage.blob import BlobServiceClient as B; \
             B.from_connection_string(sys.argv[1]).create_container(sys.argv[2])",
            &connection,
            &container,
        ])
        .output()
        .expect("run python3 (scripts/test makes .venv with azure-storage-blob)");
    assert!(
        out.status.success(),
        "create container {container}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    container
}
