//! Finding the servers backend tests talk to. `scripts/test` starts them and exports their
//! addresses; with `MIGRATE_REQUIRE_SERVICES=1` (which `scripts/test` sets) a missing one is a
//! test failure, never a silent skip.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Whether tests must fail rather than skip when a server is missing.
pub fn services_required() -> bool {
    std::env::var("MIGRATE_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The value of `var` (a server address exported by `scripts/test`). When unset: panics if
/// services are required, otherwise prints why the calling test does nothing and returns `None`.
pub fn service_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if services_required() => {
            panic!("MIGRATE_REQUIRE_SERVICES=1 but {var} is not set: run the tests through scripts/test")
        }
        _ => {
            eprintln!(
                "{var} is not set: this test needs its server; run scripts/test to provide it"
            );
            None
        }
    }
}

/// An HTTP response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body as text (chunked encoding decoded).
    pub body: String,
}

/// A minimal blocking HTTP/1.1 request to a loopback test server (`base` like
/// `http://127.0.0.1:1234`), for smoke tests that should not pull in an HTTP client.
pub fn http_request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<HttpResponse> {
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let host = base
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// test servers are supported"))?
        .trim_end_matches('/');
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| invalid("no header terminator"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok(HttpResponse { status, body })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
