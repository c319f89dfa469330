//! The guest page's HTTPS surface (hyper/axum, `relay/src/web/routes.rs`), against
//! the relay process over real TLS with raw HTTP/1.1: HEAD, caching, security
//! headers, the WebSocket's Origin check, body and head limits, keep-alive and
//! path traversal. The guest directory is a small stand-in for `ui/dist`.
#![cfg(feature = "browser-guests")]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const PAGE: &str =
    "<!doctype html><title>guest</title><script type=module src=./assets/guest-CDIXSRF_.js></script>";
const ASSET: &str = "/assets/guest-CDIXSRF_.js";

/// A relay whose guest directory (`<dir>/guest`) holds a page, a hashed asset and an
/// unhashed file; `<dir>/secret.txt` lies outside it.
fn relay_with_page(dir: &std::path::Path, extra: &[&str]) -> Relay {
    let guest = dir.join("guest");
    std::fs::create_dir_all(guest.join("assets")).unwrap();
    std::fs::write(guest.join("guest.html"), PAGE).unwrap();
    std::fs::write(guest.join("assets/guest-CDIXSRF_.js"), "console.log('guest');\n".repeat(100)).unwrap();
    std::fs::write(guest.join("robots.txt"), "User-agent: *\nDisallow: /\n").unwrap();
    std::fs::write(dir.join("secret.txt"), "not for guests").unwrap();
    let data = dir.join("data");
    let mut args =
        vec!["--https-listen", "127.0.0.1:0", "--webrtc-udp", "0", "--guest-dir", guest.to_str().unwrap()];
    args.extend_from_slice(extra);
    start(&data, &args)
}

struct Reply {
    status: u16,
    /// Lower-case names; `date` left out (it may tick between two requests).
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// Sends `GET`-like `method path` (plus `extra` header lines) on `s` and reads the
/// reply: a body of its Content-Length, none for HEAD.
async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    method: &str,
    path: &str,
    extra: &str,
) -> Reply {
    let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let head = tokio::time::timeout(Duration::from_secs(10), read_head(s)).await.expect("a reply").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(k, _)| k != "date")
        .collect();
    let len: usize = headers.get("content-length").map_or(0, |l| l.parse().unwrap());
    let mut body = vec![0; if method == "HEAD" { 0 } else { len }];
    s.read_exact(&mut body).await.unwrap();
    Reply { status, headers, body }
}

async fn connect(relay: &Relay) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    https_connect(relay, [127, 0, 0, 1].into()).await.unwrap()
}

const SECURITY: [(&str, &str); 6] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("strict-transport-security", "max-age=31536000"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    (
        "permissions-policy",
        "camera=(self), microphone=(self), display-capture=(), geolocation=(), payment=(), usb=()",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_like_get_without_a_body_on_one_kept_alive_connection() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_with_page(dir.path(), &[]);
    let mut s = connect(&relay).await;
    for path in ["/", "/join", ASSET, "/invite-info"] {
        let get = request(&mut s, "GET", path, "").await;
        let head = request(&mut s, "HEAD", path, "").await;
        assert_eq!(get.status, 200, "{path}");
        assert_eq!(head.status, get.status, "{path}");
        assert_eq!(head.headers, get.headers, "HEAD {path}: the same headers as GET");
        assert_eq!(get.headers["content-length"], get.body.len().to_string(), "{path}");
        assert!(!get.body.is_empty(), "{path}");
    }
    // Every reply above came on the same connection, each HEAD without body bytes
    // (the next reply's status line came right after its head).
    let page = request(&mut s, "GET", "/", "").await;
    assert_eq!(page.body, PAGE.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers_and_only_hashed_assets_are_cached() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_with_page(dir.path(), &[]);
    let mut s = connect(&relay).await;
    let cases = [
        ("GET", "/", 200, "no-cache"),
        ("GET", "/guest.html", 200, "no-cache"),
        ("GET", ASSET, 200, "public, max-age=31536000, immutable"),
        ("GET", "/robots.txt", 200, "no-cache"),
        ("GET", "/invite-info", 200, "no-cache"),
        ("GET", "/assets/guest-XXXXXXXX.js", 404, "no-cache"),
        ("GET", "/nope", 404, "no-cache"),
        ("DELETE", "/", 405, "no-cache"),
        ("GET", "/ws", 400, "no-cache"),
    ];
    for (method, path, status, cache) in cases {
        let r = request(&mut s, method, path, "").await;
        assert_eq!(r.status, status, "{method} {path}");
        for (name, value) in SECURITY {
            assert_eq!(r.headers.get(name).map(String::as_str), Some(value), "{method} {path}: {name}");
        }
        assert_eq!(r.headers.get("cache-control").map(String::as_str), Some(cache), "{method} {path}");
    }
    let js = request(&mut s, "GET", ASSET, "").await;
    assert!(js.headers["content-type"].starts_with("text/javascript"), "{:?}", js.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_get_405_with_allow_and_traversal_404() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_with_page(dir.path(), &[]);
    let mut s = connect(&relay).await;
    for (method, path) in [("POST", "/"), ("PUT", ASSET), ("BREW", "/join"), ("DELETE", "/invite-info")] {
        let r = request(&mut s, method, path, "Content-Length: 0\r\n").await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert!(
            r.headers.get("allow").is_some_and(|a| a.contains("GET")),
            "{method} {path}: {:?}",
            r.headers
        );
    }
    let r = request(&mut s, "HEAD", "/ws", "").await;
    assert_eq!((r.status, r.headers.get("allow").map(String::as_str)), (405, Some("GET")));
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/assets/../../secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "//secret.txt",
        "/assets",
        "/assets/",
    ] {
        let r = request(&mut s, "GET", path, "").await;
        assert_eq!(r.status, 404, "{path}");
        assert!(!String::from_utf8_lossy(&r.body).contains("not for guests"), "{path}");
    }
    assert_eq!(request(&mut s, "GET", "/", "").await.status, 200, "the connection still serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_opens_only_from_the_relays_own_origin() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_with_page(dir.path(), &["--public-name", "meet.clinic.example"]);
    let from = [127, 0, 0, 1].into();
    // The helper sends `Host: localhost`.
    for origin in ["https://evil.example", "https://localhost.evil.example", "http://localhost", "null"] {
        let refused =
            websocket_upgrade(&relay, from, &format!("Origin: {origin}\r\n")).await.expect_err(origin);
        assert!(refused.starts_with("HTTP/1.1 403"), "{origin}: {refused}");
        assert!(!refused.to_ascii_lowercase().contains("sec-websocket-accept"), "{origin}: no upgrade");
    }
    for origin in ["https://localhost", "https://LOCALHOST:443", "https://meet.clinic.example"] {
        websocket_upgrade(&relay, from, &format!("Origin: {origin}\r\n")).await.expect(origin);
    }
    // No Origin: not a browser page (command-line clients, these tests): allowed.
    websocket_upgrade(&relay, from, "").await.expect("no Origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_huge_heads_and_slow_heads_are_cut_off_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_with_page(dir.path(), &[]);
    // A declared 100 MB body is refused before any of it is read.
    let mut s = connect(&relay).await;
    let r = request(&mut s, "POST", "/", "Content-Length: 100000000\r\n").await;
    assert_eq!(r.status, 413);
    // A body nobody wants on a GET: answered, and the connection is closed or
    // stays usable — never a body read as the next request.
    let mut s = connect(&relay).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nabcd").await.unwrap();
    let r = request(&mut s, "GET", "/join", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PAGE.as_bytes());
    let r = request(&mut s, "GET", "/invite-info", "").await;
    assert_eq!(r.status, 200, "the small body was drained; the connection goes on");
    // A 20 KiB header: 431 and close.
    let mut s = connect(&relay).await;
    let big = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    let r = request(&mut s, "GET", "/", &big).await;
    assert_eq!(r.status, 431);
    // Garbage instead of a request: 400, nothing else.
    let mut s = connect(&relay).await;
    s.write_all(b"\x00\x01 not http at all\r\n\r\n").await.unwrap();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(got.starts_with(b"HTTP/1.1 400"), "{:?}", String::from_utf8_lossy(&got));
    assert!(closed);

    // Slowloris: a head that never ends, and a kept-alive connection left idle,
    // are both closed after the head timeout (10 s) while others are served.
    let started = Instant::now();
    let mut slow = connect(&relay).await;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.unwrap();
    let mut idle = connect(&relay).await;
    assert_eq!(request(&mut idle, "GET", "/", "").await.status, 200);
    let slow_task = tokio::spawn(async move {
        for _ in 0..30 {
            if slow.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        read_until_closed(&mut slow, Duration::from_secs(20)).await
    });
    let mut other = connect(&relay).await;
    assert_eq!(request(&mut other, "GET", "/", "").await.status, 200, "others are served meanwhile");
    let (_, idle_closed) = read_until_closed(&mut idle, Duration::from_secs(15)).await;
    let idle_after = started.elapsed();
    let (got, slow_closed) = slow_task.await.unwrap();
    let slow_after = started.elapsed();
    println!("idle keep-alive closed after {idle_after:?}; slow head closed after {slow_after:?}");
    assert!(idle_closed && idle_after < Duration::from_secs(14), "idle connection closed: {idle_after:?}");
    assert!(slow_closed && slow_after < Duration::from_secs(14), "slow head cut off: {slow_after:?}");
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "the slow request was never served");
    let mut s = connect(&relay).await;
    assert_eq!(request(&mut s, "GET", "/", "").await.status, 200, "the relay still serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_port_answers_health_and_metrics_once_per_connection() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(dir.path(), &[]);
    let http = relay.http.clone().unwrap();
    let mut cases = Vec::new();
    for (method, path) in
        [("GET", "/health"), ("HEAD", "/metrics"), ("GET", "/metrics"), ("GET", "/x"), ("POST", "/health")]
    {
        let mut s = tokio::net::TcpStream::connect(&http).await.unwrap();
        let r = request(&mut s, method, path, "Content-Length: 0\r\n").await;
        let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(closed, "{method} {path}: one request per connection");
        cases.push((method, path, r));
    }
    let [health, head, metrics, missing, post] = &cases[..] else { panic!() };
    assert_eq!((health.2.status, health.2.body.as_slice()), (200, &b"{\"status\":\"ok\"}\n"[..]));
    assert_eq!(head.2.status, 200);
    assert_eq!(metrics.2.status, 200);
    assert!(String::from_utf8_lossy(&metrics.2.body).contains("clinicmeet_connections "), "metrics text");
    assert_eq!(head.2.headers["content-type"], metrics.2.headers["content-type"]);
    assert_eq!(missing.2.status, 404);
    assert_eq!((post.2.status, post.2.headers.get("allow").map(String::as_str)), (405, Some("GET,HEAD")));
}
