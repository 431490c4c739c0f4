//! Network limits: a page or file too big, a request too slow, a redirect off the allow-list,
//! plain http — each one final error naming the URL and the limit, asked once, never retried;
//! and a mirror behind a private certificate authority reached only when told to trust it.

use std::time::Duration;

use gplake::discover::Source;
use gplake::http::{Download, Http, HttpConfig, HttpError, Validators};
use gplake_testkit::{Fault, Mirror, Population, release};
use url::Url;

const ALL: &str = "gp-reg-pat-prac-all.csv";

fn config() -> HttpConfig {
    HttpConfig {
        attempts: 4,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        read_timeout: Duration::from_secs(2),
        ..HttpConfig::default()
    }
}

fn mirror() -> Mirror {
    Mirror::start(vec![release(&Population::new(5, 8), (2021, 1)).unwrap()])
}

fn client(mirror: &Mirror, config: HttpConfig) -> Http {
    Http::new(config, Source::parse(&mirror.series_url()).host())
}

async fn download(http: &Http, url: &str) -> Result<Download, HttpError> {
    let dir = tempfile::tempdir().unwrap();
    let url = Url::parse(url).unwrap();
    let dest = dir.path().join("f");
    http.download(&url, &Validators::default(), &dest, "2021-01/f", None)
        .await
}

#[tokio::test]
async fn a_page_or_file_past_its_cap_is_refused_at_once() {
    let mirror = mirror();
    let series = Url::parse(&mirror.series_url()).unwrap();
    let small_pages = client(
        &mirror,
        HttpConfig {
            max_page_bytes: 100,
            ..config()
        },
    );
    let err = small_pages.get_text(&series).await.unwrap_err().to_string();
    assert!(err.contains(series.as_str()), "{err}");
    assert!(
        err.contains("page limit of 100 bytes (--max-page-size)"),
        "{err}"
    );
    assert_eq!(mirror.requests_for(series.path()).len(), 1, "not retried");

    let url = mirror.file_url((2021, 1), ALL).unwrap();
    let small_files = client(
        &mirror,
        HttpConfig {
            max_file_bytes: 100,
            ..config()
        },
    );
    let err = download(&small_files, &url).await.unwrap_err().to_string();
    assert!(
        err.contains(&url) && err.contains("file limit of 100 bytes (--max-file-size)"),
        "{err}"
    );
    assert_eq!(mirror.requests_for(ALL).len(), 1, "not retried");
}

#[tokio::test]
async fn a_request_past_its_deadline_is_stopped_and_named() {
    let mirror = mirror();
    let url = mirror.file_url((2021, 1), ALL).unwrap();
    mirror.inject(
        ALL,
        vec![Fault::Slow {
            chunk: 64,
            pause: Duration::from_millis(40),
        }],
    );
    let http = client(
        &mirror,
        HttpConfig {
            request_deadline: Duration::from_millis(300),
            ..config()
        },
    );
    let err = download(&http, &url).await.unwrap_err().to_string();
    assert!(err.contains(&url), "{err}");
    assert!(
        err.contains("request deadline of 300ms (--request-deadline)"),
        "{err}"
    );
    assert_eq!(mirror.requests_for(ALL).len(), 1, "not retried");
}

#[tokio::test]
async fn a_redirect_off_the_allow_list_is_refused_at_once_naming_the_host() {
    let mirror = mirror();
    let url = mirror.file_url((2021, 1), ALL).unwrap();
    mirror.inject(
        ALL,
        vec![Fault::Redirect("https://elsewhere.invalid/x.csv".into())],
    );
    let err = download(&client(&mirror, config()), &url)
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Redirect { .. }), "{err:?}");
    let err = err.to_string();
    assert!(
        err.contains("host elsewhere.invalid is not on the allow-list"),
        "{err}"
    );
    assert_eq!(
        mirror.requests_for(ALL).len(),
        1,
        "asked once, not five times"
    );
}

#[tokio::test]
async fn plain_http_is_refused_except_on_loopback_or_when_allowed() {
    let mut config = config();
    config.allowed_hosts.push("mirror.internal".into());
    let http = Http::new(config.clone(), None);
    let url = Url::parse("http://mirror.internal/series").unwrap();
    let err = http.get_text(&url).await.unwrap_err();
    assert!(matches!(err, HttpError::Insecure { .. }), "{err:?}");
    assert!(err.to_string().contains("--allow-http"), "{err}");
    assert!(!http.allows(&url));
    let allowed = Http::new(
        HttpConfig {
            allow_http: true,
            ..config
        },
        None,
    );
    assert!(allowed.allows(&url));
    let mirror = mirror();
    let loopback = Url::parse(&mirror.series_url()).unwrap();
    assert!(client(&mirror, self::config()).allows(&loopback));
}

/// A private CA and a certificate for `localhost` signed by it, made with `openssl`.
fn private_ca(dir: &std::path::Path) {
    let run = |args: &str| {
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("cd {} && {args}", dir.display()))
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{args}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
    };
    run(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=gplake-test-ca",
    );
    run(
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost",
    );
    run("printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ext.cnf");
    run(
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf",
    );
}

/// An HTTPS server on loopback serving `dir`; killed with the returned child.
fn https_server(dir: &std::path::Path) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = format!(
        "import http.server, ssl, functools\n\
         h = functools.partial(http.server.SimpleHTTPRequestHandler, directory='{dir}')\n\
         s = http.server.HTTPServer(('127.0.0.1', {port}), h)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         c.load_cert_chain('{dir}/server.pem', '{dir}/server.key')\n\
         s.socket = c.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n",
        dir = dir.display()
    );
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (child, port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the HTTPS server did not start");
}

#[tokio::test]
async fn a_mirror_behind_a_private_ca_is_reached_only_with_ca_cert() {
    let dir = tempfile::tempdir().unwrap();
    private_ca(dir.path());
    std::fs::write(dir.path().join("page.html"), "<html>series</html>").unwrap();
    let (mut server, port) = https_server(dir.path());
    let url = Url::parse(&format!("https://localhost:{port}/page.html")).unwrap();
    let mut config = config();
    config.attempts = 1;
    config.allowed_hosts.push("localhost".into());
    let untrusting = Http::new(config.clone(), None);
    let err = untrusting.get_text(&url).await.unwrap_err().to_string();
    assert!(err.contains("cannot connect"), "{err}");
    config.ca_cert_files.push(dir.path().join("ca.pem"));
    let trusting = Http::try_new(config.clone(), None).unwrap();
    assert_eq!(
        trusting.get_text(&url).await.unwrap(),
        "<html>series</html>"
    );
    config.ca_cert_files = vec![dir.path().join("ext.cnf")];
    let err = Http::try_new(config, None).unwrap_err().to_string();
    assert!(err.contains("ext.cnf"), "{err}");
    server.kill().unwrap();
    let _ = server.wait();
}
