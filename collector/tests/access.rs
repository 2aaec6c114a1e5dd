//! Who may send, how much, and connection hygiene, over real sockets: write keys per source
//! (401), allowed origins (403, CORS only for them), key rotation by SIGHUP (a broken config is
//! refused), bot dropping, per-IP and per-source rate limits (429), slowloris and body timeouts,
//! oversized headers, the connection cap, and TLS with HTTP/2.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{client, read_capture, track, Collector};
use serde_json::{json, Value};

const CONFIG: &str = r#"
[[sources]]
name = "website"
write_keys = ["wk_web_1"]
allowed_origins = ["https://shop.example", "*.shop.example"]

[[sources]]
name = "backend"
write_keys = ["wk_srv_1"]
allowed_origins = ["https://admin.example"]
drop_bots = true
"#;

fn batch() -> String {
    json!({"batch": [track(1, "acc")]}).to_string()
}

async fn post(
    c: &Collector,
    key: Option<&str>,
    origin: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = client()
        .post(c.url("/v1/batch"))
        .header("content-type", "text/plain")
        .body(batch());
    if let Some(k) = key {
        r = r.basic_auth(k, Some(""));
    }
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    let r = r.send().await.unwrap();
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    (s, r.json().await.unwrap_or(Value::Null), h)
}

fn hup(c: &Collector) {
    Command::new("kill")
        .args(["-HUP", &c.child.id().to_string()])
        .status()
        .unwrap();
}

async fn wait_log(c: &Collector, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in log:\n{}",
            c.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn write_keys_origins_and_source_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let c = Collector::start(dir.path(), &["--config", cfg.to_str().unwrap()]);
    assert!(c.log().contains("write keys enforced"));

    let (s, v, _) = post(&c, None, None).await;
    assert_eq!(s, 401);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("missing write key"),
        "{v}"
    );
    let (s, v, _) = post(&c, Some("wk_typo"), None).await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (401, "unknown write key")
    );
    let (s, v, h) = post(&c, Some("wk_web_1"), Some("https://evil.example")).await;
    assert_eq!(s, 403);
    assert!(v["error"].as_str().unwrap().contains("not allowed"), "{v}");
    assert!(
        h.get("access-control-allow-origin").is_none(),
        "no CORS for a disallowed origin"
    );
    let (s, _, h) = post(&c, Some("wk_web_1"), Some("https://m.shop.example")).await;
    assert_eq!(s, 200);
    assert_eq!(h["access-control-allow-origin"], "https://m.shop.example");
    // The key in the body works too (beacons cannot set headers).
    let body = json!({"batch": [track(2, "acc")], "writeKey": "wk_srv_1"}).to_string();
    let r = client()
        .post(c.url("/v1/batch"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Preflight from a disallowed origin is refused.
    let r = client()
        .request(reqwest::Method::OPTIONS, c.url("/v1/batch"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    assert!(c.terminate().success());
    let recs = read_capture(dir.path());
    let sources: Vec<&str> = recs
        .iter()
        .map(|r| r.body["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["website", "backend"]);
    assert!(
        recs.iter().all(|r| r.body.get("writeKey").is_none()),
        "the write key is never stored"
    );
    for f in ["spool", "capture", "deadletter"]
        .iter()
        .flat_map(|d| common::files_with_suffix(&dir.path().join(d), ""))
    {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("wk_web_1"),
            "key found in {}",
            f.display()
        );
    }
}

#[tokio::test]
async fn keys_rotate_on_sighup_and_a_broken_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let c = Collector::start(dir.path(), &["--config", cfg.to_str().unwrap()]);
    assert_eq!(post(&c, Some("wk_web_1"), None).await.0, 200);
    assert_eq!(post(&c, Some("wk_web_2"), None).await.0, 401);

    std::fs::write(&cfg, CONFIG.replace("[\"wk_web_1\"]", "[\"wk_web_2\"]")).unwrap();
    hup(&c);
    wait_log(&c, "config reloaded").await;
    assert_eq!(
        post(&c, Some("wk_web_2"), None).await.0,
        200,
        "the new key works without a restart"
    );
    assert_eq!(
        post(&c, Some("wk_web_1"), None).await.0,
        401,
        "the old key is gone"
    );

    std::fs::write(&cfg, "[[sources]]\nname = \"website\"\nwrite_keys = []\n").unwrap();
    hup(&c);
    wait_log(&c, "config reload refused").await;
    assert!(c.log().contains("no write_keys"), "the log says why");
    assert_eq!(
        post(&c, Some("wk_web_2"), None).await.0,
        200,
        "the running config is kept"
    );
}

#[tokio::test]
async fn a_source_can_drop_bots() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let c = Collector::start(dir.path(), &["--config", cfg.to_str().unwrap()]);
    let send = |key: &'static str| {
        client()
            .post(c.url("/v1/batch"))
            .basic_auth(key, Some(""))
            .header(
                "user-agent",
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            )
            .body(batch())
            .send()
    };
    let v: Value = send("wk_srv_1").await.unwrap().json().await.unwrap();
    assert_eq!(v["rejected"], 1);
    assert_eq!(
        v["errors"][0]["reason"],
        "bot user agent; this source drops bot traffic"
    );
    let v: Value = send("wk_web_1").await.unwrap().json().await.unwrap();
    assert_eq!(
        v["accepted"], 1,
        "the website source keeps bots (flagged in context.bot)"
    );
}

#[tokio::test]
async fn rate_limits_per_ip_and_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(
        dir.path(),
        &["--rate-limit-ip", "2", "--rate-limit-ip-burst", "3"],
    );
    for _ in 0..3 {
        assert_eq!(post(&c, None, None).await.0, 200);
    }
    let (s, v, h) = post(&c, None, None).await;
    assert_eq!(s, 429);
    assert_eq!(h["retry-after"], "1");
    assert!(v["error"].as_str().unwrap().contains("too many requests"));
    assert_eq!(
        client()
            .get(c.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "health is not limited"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(post(&c, None, None).await.0, 200, "the bucket refills");
    let metrics = c.metrics().await;
    assert!(
        metrics.contains("collector_rate_limited_total{scope=\"ip\"} 1"),
        "{metrics}"
    );
    drop(c);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("collector.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let c = Collector::start(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--rate-limit-source",
            "1",
            "--rate-limit-source-burst",
            "2",
        ],
    );
    assert_eq!(post(&c, Some("wk_srv_1"), None).await.0, 200);
    assert_eq!(post(&c, Some("wk_srv_1"), None).await.0, 200);
    assert_eq!(post(&c, Some("wk_srv_1"), None).await.0, 429);
    assert_eq!(
        post(&c, Some("wk_web_1"), None).await.0,
        200,
        "another source has its own bucket"
    );
}

#[tokio::test]
async fn default_limits_leave_room_for_a_page_burst() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &["--rate-limit-ip", "50"]);
    // A busy page: batches while browsing, then a beacon on unload, all at once.
    for _ in 0..40 {
        assert_eq!(post(&c, None, None).await.0, 200);
    }
}

fn raw(c: &Collector) -> TcpStream {
    let s = TcpStream::connect(c.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Read until the server closes or answers; return what it sent.
fn read_all(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                break
            }
            Err(_) => break,
        }
        if buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.starts_with(b"HTTP/1.1 100") {
            // Give the body a moment to arrive, then stop.
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn slow_clients_big_headers_and_the_connection_cap() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(
        dir.path(),
        &[
            "--header-timeout-secs",
            "1",
            "--body-timeout-secs",
            "1",
            "--max-connections",
            "4",
            "--max-header-bytes",
            "8192",
        ],
    );
    // Slowloris: headers that never finish are cut off after the header timeout.
    let started = Instant::now();
    let mut s = raw(&c);
    s.write_all(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let answer = read_all(&mut s);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // A body that never arrives gets 408 with a JSON error.
    let mut s = raw(&c);
    s.write_all(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"batch\":")
        .unwrap();
    let answer = read_all(&mut s);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1 s"), "{answer}");

    // Oversized request head.
    let mut s = raw(&c);
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    )
    .unwrap();
    let answer = read_all(&mut s);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // The connection cap: 4 idle keep-alive connections hold every slot; a fifth client waits
    // until one of them goes (here: the header timeout closes idle ones).
    let held: Vec<TcpStream> = (0..4).map(|_| raw(&c)).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let r = client().get(c.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the fifth connection waited ({:?})",
        started.elapsed()
    );
    drop(held);
    assert_eq!(
        client()
            .get(c.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn tls_with_http2() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let c = Collector::start(
        dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(c.log().contains("listening on https://"));
    // The certificate is self-signed: trust it blindly (this test is about serving TLS).
    let https = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/v1/batch", c.addr.port());
    let r = https.post(&url).body(batch()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.version(),
        reqwest::Version::HTTP_2,
        "ALPN negotiates HTTP/2"
    );
    // Plain HTTP to the TLS port fails cleanly.
    assert!(client().get(c.url("/healthz")).send().await.is_err());
    // A broken certificate on reload is refused; HTTPS keeps working.
    std::fs::write(&cert, "not a certificate").unwrap();
    hup(&c);
    wait_log(&c, "config reload refused").await;
    assert_eq!(
        https
            .get(format!("https://localhost:{}/healthz", c.addr.port()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
