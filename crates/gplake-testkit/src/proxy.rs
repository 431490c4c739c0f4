//! A store double: an HTTP proxy on 127.0.0.1 that forwards every request to a real S3
//! server with its conditional-write headers (`If-None-Match`, `If-Match`) removed, as some
//! S3-compatible stores silently do.
//!
//! One request per connection (it asks both sides to close after the response), so a
//! request's headers are always the first bytes of a connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// Starts the proxy in front of `upstream` (`http://127.0.0.1:port`); its endpoint URL.
pub fn without_conditional_writes(upstream: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let port = listener.local_addr().expect("addr").port();
    let authority = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let authority = authority.clone();
            std::thread::spawn(move || forward(client, &authority));
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn forward(client: TcpStream, authority: &str) {
    let Ok(mut upstream) = TcpStream::connect(authority) else {
        return;
    };
    let mut reader = BufReader::new(client.try_clone().expect("clone socket"));
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let lower = line.to_ascii_lowercase();
        if line == "\r\n" {
            head.push_str("Connection: close\r\n\r\n");
            break;
        }
        if !(lower.starts_with("if-none-match:")
            || lower.starts_with("if-match:")
            || lower.starts_with("connection:"))
        {
            head.push_str(&line);
        }
    }
    if upstream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut to_upstream = upstream.try_clone().expect("clone socket");
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut to_upstream);
    });
    let mut to_client = client;
    let mut response = Vec::new();
    let _ = upstream.read_to_end(&mut response);
    let _ = to_client.write_all(&response);
    let _ = to_client.shutdown(std::net::Shutdown::Both);
}
