//! A real S3-compatible server on 127.0.0.1 for tests: moto's server (`pip install
//! 'moto[server]'`), which does conditional PUTs atomically.
//!
//! `GPLAKE_TEST_S3_ENDPOINT` names a running server (CI starts one); otherwise the first
//! call starts one for this test process, with a watchdog that stops it when the process ends.

use std::sync::OnceLock;
use std::time::Duration;

/// The endpoint URL of the shared test server.
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| match std::env::var("GPLAKE_TEST_S3_ENDPOINT") {
        Ok(url) => url,
        Err(_) => start_moto(&[]),
    })
}

/// Starts a private moto server with extra environment (e.g. enforced authentication).
pub fn start_moto(env: &[(&str, &str)]) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let script = format!(
        "moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
        parent = std::process::id()
    );
    let mut command = std::process::Command::new("sh");
    command.arg("-c").arg(script);
    for (k, v) in env {
        command.env(k, v);
    }
    // The shell exits with the watchdog; a thread reaps it so it never lingers as a zombie.
    let mut child = command
        .spawn()
        .expect("start moto_server (pip install 'moto[server]')");
    std::thread::spawn(move || child.wait());
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return format!("http://127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server did not start on port {port}: is moto[server] installed?");
}

/// Store options (and the matching `AWS_*` environment) for a server at `endpoint`.
pub fn options(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("aws_endpoint", endpoint.to_string()),
        ("aws_access_key_id", "testing".into()),
        ("aws_secret_access_key", "testing".into()),
        ("aws_region", "us-east-1".into()),
        ("aws_allow_http", "true".into()),
    ]
}

/// The same settings as environment variables, for a child `gplake` process.
pub fn env(endpoint: &str) -> Vec<(String, String)> {
    options(endpoint)
        .into_iter()
        .map(|(k, v)| {
            (
                if k == "aws_endpoint" {
                    "AWS_ENDPOINT_URL".into()
                } else {
                    k.to_ascii_uppercase()
                },
                v,
            )
        })
        .collect()
}

/// Creates a fresh, uniquely named bucket on the shared server and returns its name.
pub fn new_bucket(tag: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let bucket = format!("gplake-{tag}-{}-{n}", std::process::id());
    let (status, _, _) = raw(endpoint(), "PUT", &format!("/{bucket}"));
    assert!(
        (200..300).contains(&status),
        "create bucket {bucket}: HTTP {status}"
    );
    bucket
}

/// One unsigned request to the test server (moto needs no signature): status, response
/// head and body.
pub fn raw(endpoint: &str, method: &str, path_and_query: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority).expect("connect to S3 server");
    let request = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Every key in `bucket` under `prefix`.
pub fn keys(endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let (_, _, body) = raw(
        endpoint,
        "GET",
        &format!("/{bucket}?list-type=2&max-keys=1000&prefix={prefix}"),
    );
    xml_values(&body, "Key")
}

/// The keys of the multipart uploads open in `bucket`.
pub fn open_uploads(endpoint: &str, bucket: &str) -> Vec<String> {
    let (_, _, body) = raw(endpoint, "GET", &format!("/{bucket}?uploads"));
    xml_values(&body, "Key")
}

/// The text of every `<tag>` element.
fn xml_values(body: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    body.split(&open)
        .skip(1)
        .filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_string()))
        .collect()
}

/// The server-side encryption of each key, read with signed HEAD requests (boto3, which the
/// test server's Python environment has: moto answers an unsigned HEAD of an SSE-KMS object
/// with 403): `(key, x-amz-server-side-encryption, KMS key id)`.
pub fn encryption(endpoint: &str, bucket: &str, keys: &[String]) -> Vec<(String, String, String)> {
    const SCRIPT: &str = r#"
import json, sys, boto3
endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
for key in json.load(sys.stdin):
    h = s3.head_object(Bucket=bucket, Key=key)
    print(json.dumps([key, h.get("ServerSideEncryption", ""), h.get("SSEKMSKeyId", "")]))
"#;
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT, endpoint, bucket])
        // Not from a folder whose Python files could shadow the standard library.
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (with boto3, from requirements-test.txt)");
    let keys = serde_json::to_vec(keys).expect("keys as JSON");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&keys)
        .expect("send keys");
    let out = child.wait_with_output().expect("boto3 HEADs");
    assert!(
        out.status.success(),
        "boto3 HEAD failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}
