//! Hostile and broken input against the real binary over a real socket. Every case must get a
//! specific 4xx with a JSON error naming the problem (or, for per-event problems, a 200 that
//! names the event and the reason), the process must not panic, its memory must stay bounded,
//! and it must keep serving afterwards.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{client, read_capture, Collector};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Peak resident memory the collector may reach across the whole corpus. The body cap is
/// 512 KB; a collector that buffered a bomb, or copied shared context into thousands of events,
/// would blow well past this.
const MAX_PEAK_RSS_KIB: u64 = 160 * 1024;

/// The body-read timeout the tests ask for.
const BODY_TIMEOUT_SECS: u64 = 2;

/// Times the corpus is sent: the memory after the rounds of the second half is compared with
/// the memory after those of the first half.
const ROUNDS: usize = 8;

/// How much more memory, on average, the second half of the rounds may hold than the first.
/// Measured: 0-10 MB more in seven runs (the spool's 16 MiB window of recent records fills over
/// the first rounds); with a planted leak of 100 KB per request (about 8 MB a round), 26 and
/// 30 MB more.
const LEAK_TOLERANCE_KIB: u64 = 18 * 1024;

fn start(dir: &std::path::Path) -> Collector {
    // (The common helper turns the per-IP rate limit off: the corpus sends a few hundred
    // requests from one address in seconds, and tests input handling, not the limit.) Freed
    // memory goes back to the system at once: see the memory check at the end.
    Collector::start_with_env(
        dir,
        &["--body-timeout-secs", &BODY_TIMEOUT_SECS.to_string()],
        std::process::Stdio::null(),
        &[("MIMALLOC_PURGE_DELAY", "0")],
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// (current, peak) resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
    /// Must appear in the JSON `error` (for 4xx) or in the first per-event reason (for 200).
    error: &'static str,
}

fn case(
    name: &'static str,
    path: &str,
    body: impl Into<Vec<u8>>,
    status: u16,
    error: &'static str,
) -> Case {
    Case {
        name,
        method: "POST",
        path: path.to_string(),
        headers: vec![("content-type", "application/json")],
        body: body.into(),
        status,
        error,
    }
}

fn nest(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

/// `"k000":0,"k001":0,...`: `n` top-level keys.
fn keys(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!(r#""{prefix}{i:03}":0"#))
        .collect::<Vec<_>>()
        .join(",")
}

fn batch_of(event: &str) -> Vec<u8> {
    format!(r#"{{"batch":[{event}]}}"#).into_bytes()
}

const GOOD: &str = r#"{"type":"track","event":"Good","userId":"u"}"#;

fn b64(data: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A gzip bomb: `members` concatenated gzip members, each `member_mib` MiB of zeros.
fn bomb(member_mib: usize, members: usize) -> Vec<u8> {
    let one = gzip(&vec![0u8; member_mib << 20]);
    one.repeat(members)
}

fn corpus() -> Vec<Case> {
    let mut cases = vec![
        // Malformed and truncated JSON.
        case(
            "truncated batch",
            "/v1/batch",
            r#"{"batch":[{"type":"track","#,
            400,
            "EOF while parsing",
        ),
        case(
            "truncated single",
            "/v1/track",
            r#"{"event":"x","userId":"#,
            400,
            "EOF while parsing",
        ),
        case(
            "trailing comma",
            "/v1/batch",
            r#"{"batch":[{"type":"track",}]}"#,
            400,
            "not valid JSON",
        ),
        case(
            "trailing garbage",
            "/v1/batch",
            format!(r#"{{"batch":[{GOOD}]}} x"#),
            400,
            "trailing characters",
        ),
        case(
            "single quotes",
            "/v1/batch",
            "{'batch':[]}",
            400,
            "key must be a string",
        ),
        case(
            "NaN",
            "/v1/batch",
            r#"{"batch":[{"type":"track","n":NaN}]}"#,
            400,
            "not valid JSON",
        ),
        case(
            "control character in a string",
            "/v1/batch",
            b"{\"batch\":[{\"p\":\"a\x01b\"}]}".to_vec(),
            400,
            "control character",
        ),
        case(
            "bad escape",
            "/v1/batch",
            r#"{"batch":[{"p":"\q"}]}"#,
            400,
            "invalid escape",
        ),
        case(
            "a bare string",
            "/v1/batch",
            r#""batch""#,
            400,
            "JSON object",
        ),
        case(
            "an array for a single message",
            "/v1/track",
            "[1]",
            400,
            "one message",
        ),
        case(
            "batch of the wrong type",
            "/v1/batch",
            r#"{"batch":{"type":"track"}}"#,
            400,
            "`batch` must be an array",
        ),
        case(
            "context of the wrong type",
            "/v1/batch",
            format!(r#"{{"batch":[{GOOD}],"context":"x"}}"#),
            400,
            "`context` must be an object",
        ),
        case(
            "sentAt not a date",
            "/v1/batch",
            format!(r#"{{"batch":[{GOOD}],"sentAt":[1]}}"#),
            400,
            "`sentAt`",
        ),
        // Invalid UTF-8 and invalid Unicode.
        case(
            "invalid UTF-8 in a value",
            "/v1/batch",
            b"{\"batch\":[{\"type\":\"track\",\"event\":\"\xff\xfe\"}]}".to_vec(),
            400,
            "not valid UTF-8 (invalid byte at offset 35)",
        ),
        case(
            "invalid UTF-8 in a key",
            "/v1/track",
            b"{\"\xc0\xaf\":1}".to_vec(),
            400,
            "not valid UTF-8",
        ),
        case(
            "UTF-16 body",
            "/v1/batch",
            b"\xff\xfe{\x00}\x00".to_vec(),
            400,
            "not valid JSON",
        ),
        case(
            "unpaired surrogate",
            "/v1/batch",
            batch_of(r#"{"type":"track","event":"\ud800x","userId":"u"}"#),
            400,
            "unpaired surrogate escape \\ud800",
        ),
        // Deep nesting.
        case(
            "65 levels in properties",
            "/v1/batch",
            batch_of(&format!(
                r#"{{"type":"track","event":"x","userId":"u","properties":{{"p":{}}}}}"#,
                nest(61)
            )),
            400,
            "deeper than 64 levels",
        ),
        case(
            "62 levels in an event are fine",
            "/v1/batch",
            batch_of(&format!(
                r#"{{"type":"track","event":"x","userId":"u","properties":{{"p":{}}}}}"#,
                nest(60)
            )),
            200,
            "",
        ),
        case(
            "200 000 open brackets",
            "/v1/batch",
            format!(r#"{{"batch":{}"#, "[".repeat(200_000)),
            400,
            "deeper than 64 levels (at byte 72)",
        ),
        case(
            "deep sentAt",
            "/v1/batch",
            format!(r#"{{"batch":[{GOOD}],"sentAt":{}}}"#, nest(200)),
            400,
            "deeper than 64",
        ),
        case(
            "deep single message",
            "/v1/identify",
            format!(
                r#"{{"userId":"u","traits":{}}}"#,
                "{\"a\":".repeat(100) + "1" + &"}".repeat(100)
            ),
            400,
            "deeper than 64",
        ),
        // Huge numbers and strings.
        case(
            "1e400",
            "/v1/batch",
            batch_of(r#"{"type":"track","event":"x","userId":"u","properties":{"n":1e400}}"#),
            400,
            "number 1e400 at byte",
        ),
        case(
            "400-digit integer id",
            "/v1/batch",
            batch_of(&format!(
                r#"{{"type":"track","event":"x","userId":{}}}"#,
                "9".repeat(400)
            )),
            400,
            "out of range",
        ),
        case(
            "-1e400 sentAt",
            "/v1/batch",
            format!(r#"{{"batch":[{GOOD}],"sentAt":-1e400}}"#),
            400,
            "out of range",
        ),
        case(
            "huge string over the body cap",
            "/v1/batch",
            batch_of(&format!(
                r#"{{"type":"track","event":"{}"}}"#,
                "x".repeat(600_000)
            )),
            413,
            "512000-byte limit",
        ),
        case(
            "huge string over the event cap",
            "/v1/batch",
            batch_of(&format!(
                r#"{{"type":"track","event":"x","userId":"u","p":"{}"}}"#,
                "é".repeat(20_000)
            )),
            200,
            "limit is 32768 bytes",
        ),
        case(
            "170 000 tiny events",
            "/v1/batch",
            format!(r#"{{"batch":[{}]}}"#, vec!["{}"; 170_000].join(",")),
            413,
            "has 170000 events; the limit is 10000",
        ),
        case(
            "10 000 tiny events, all rejected",
            "/v1/batch",
            format!(r#"{{"batch":[{}]}}"#, vec!["{}"; 10_000].join(",")),
            200,
            "missing `type`",
        ),
        case(
            "10 000 small events, stored up to the request's budget",
            "/v1/batch",
            format!(
                r#"{{"batch":[{}]}}"#,
                vec![r#"{"type":"identify","userId":"u"}"#; 10_000].join(",")
            ),
            200,
            "the request's storage budget is spent",
        ),
        case(
            "batch context copied into many events",
            "/v1/batch",
            format!(
                r#"{{"batch":[{}],"context":{{"p":"{}"}}}}"#,
                vec![r#"{"type":"identify","userId":"u"}"#; 5_000].join(","),
                "x".repeat(300_000)
            ),
            413,
            "would be copied into each of 5000 events",
        ),
        case(
            "an event with 300 top-level keys",
            "/v1/batch",
            batch_of(&format!(
                r#"{{"type":"identify","userId":"u",{}}}"#,
                keys("k", 300)
            )),
            200,
            "object has more than 256 top-level keys",
        ),
        case(
            "a batch context with 300 keys",
            "/v1/batch",
            format!(r#"{{"batch":[{GOOD}],"context":{{{}}}}}"#, keys("k", 300)),
            400,
            "`context`: object has more than 256 top-level keys",
        ),
        case(
            "256-key batch and event contexts",
            "/v1/batch",
            format!(
                r#"{{"batch":[{}],"context":{{{}}}}}"#,
                vec![
                    format!(
                        r#"{{"type":"identify","userId":"u","context":{{{}}}}}"#,
                        keys("e", 250)
                    );
                    150
                ]
                .join(","),
                keys("k", 256)
            ),
            200,
            "",
        ),
        // Duplicate keys.
        case(
            "duplicate batch",
            "/v1/batch",
            format!(r#"{{"batch":[{GOOD}],"batch":[{GOOD}]}}"#),
            400,
            "duplicate key `batch` in the request body",
        ),
        case(
            "duplicate sentAt",
            "/v1/batch",
            format!(r#"{{"batch":[{GOOD}],"sentAt":null,"sentAt":null}}"#),
            400,
            "duplicate key `sentAt`",
        ),
        case(
            "duplicate writeKey in a single message",
            "/v1/track",
            r#"{"event":"x","userId":"u","writeKey":"a","writeKey":"b"}"#,
            400,
            "duplicate key `writeKey`",
        ),
        case(
            "duplicate top-level key in an event",
            "/v1/batch",
            batch_of(r#"{"type":"track","event":"x","userId":"u","userId":"v"}"#),
            200,
            "duplicate key `userId`",
        ),
        case(
            "duplicate key in the event's context",
            "/v1/batch",
            batch_of(
                r#"{"type":"track","event":"x","userId":"u","context":{"ip":"1.2.3.4","ip":"5.6.7.8"}}"#,
            ),
            200,
            "`context`: duplicate key `ip`",
        ),
        case(
            "duplicate key in batch context",
            "/v1/batch",
            format!(r#"{{"batch":[{GOOD}],"context":{{"a":1,"a":2}}}}"#),
            400,
            "`context`: duplicate key `a`",
        ),
        // Empty bodies.
        case("empty batch body", "/v1/batch", "", 400, "body is empty"),
        case(
            "whitespace batch body",
            "/v1/batch",
            " \r\n\t ",
            400,
            "body is empty",
        ),
        case("empty single body", "/v1/page", "", 400, "body is empty"),
        case("empty object", "/v1/batch", "{}", 400, "no `batch`"),
        case(
            "empty batch",
            "/v1/batch",
            r#"{"batch":[]}"#,
            400,
            "`batch` is empty",
        ),
        // Encodings.
        case(
            "gzip bomb, one member",
            "/v1/batch",
            gzip(&vec![b' '; 64 << 20]),
            413,
            "512000-byte limit",
        ),
        case(
            "gzip bomb, many members",
            "/v1/batch",
            bomb(1, 400),
            413,
            "512000-byte limit",
        ),
        case(
            "gzip without the header",
            "/v1/batch",
            gzip(GOOD.as_bytes()),
            400,
            "no `Content-Encoding: gzip`",
        ),
        case(
            "gzip header, plain body",
            "/v1/batch",
            batch_of(GOOD),
            400,
            "not valid gzip",
        ),
        case(
            "truncated gzip",
            "/v1/batch",
            gzip(&batch_of(GOOD))[..20].to_vec(),
            400,
            "not valid gzip",
        ),
        case(
            "brotli",
            "/v1/batch",
            batch_of(GOOD),
            415,
            "Content-Encoding \"br\" is not supported",
        ),
        case(
            "deflate",
            "/v1/batch",
            batch_of(GOOD),
            415,
            "Content-Encoding \"deflate\"",
        ),
        case(
            "gzip twice",
            "/v1/batch",
            gzip(&gzip(&batch_of(GOOD))),
            415,
            "Content-Encoding \"gzip, gzip\"",
        ),
        case(
            "XML",
            "/v1/batch",
            "<batch/>",
            415,
            "Content-Type \"application/xml\"",
        ),
        // Routes and methods.
        case(
            "unknown route",
            "/v2/batch",
            batch_of(GOOD),
            404,
            "no route for POST /v2/batch",
        ),
        case(
            "no pixel for this type",
            "/v1/pixel/click",
            "",
            404,
            "no pixel for type \"click\"",
        ),
        // The pixel.
        case(
            "pixel: base64 error",
            "/v1/pixel/track?data=%25%25%25",
            "",
            400,
            "not valid base64",
        ),
        case(
            "pixel: truncated base64",
            "/v1/pixel/track?data=eyJldmVudCI6",
            "",
            400,
            "not valid",
        ),
        case(
            "pixel: no data",
            "/v1/pixel/page?x=1",
            "",
            400,
            "`data` query parameter",
        ),
        case(
            "pixel: base64 of invalid UTF-8",
            &format!("/v1/pixel/track?data={}", b64(b"{\"event\":\"\xff\"}")),
            "",
            400,
            "not valid UTF-8",
        ),
        case(
            "pixel: base64 of deep JSON",
            &format!(
                "/v1/pixel/track?data={}",
                b64(format!(r#"{{"event":"x","userId":"u","p":{}}}"#, nest(80)))
            ),
            "",
            400,
            "deeper than 64",
        ),
        case(
            "pixel: base64 of 1e400",
            &format!(
                "/v1/pixel/track?data={}",
                b64(r#"{"event":"x","userId":"u","p":-1e400}"#)
            ),
            "",
            400,
            "out of range",
        ),
        case(
            "pixel: invalid event",
            &format!("/v1/pixel/track?data={}", b64(r#"{"userId":"u"}"#)),
            "",
            400,
            "pixel event rejected: track needs a non-empty string `event`",
        ),
    ];
    let header = |name: &str, v: Vec<(&'static str, &'static str)>| (name.to_string(), v);
    for (name, headers) in [
        header("gzip bomb, one member", vec![("content-encoding", "gzip")]),
        header(
            "gzip bomb, many members",
            vec![("content-encoding", "gzip")],
        ),
        header(
            "gzip header, plain body",
            vec![("content-encoding", "gzip")],
        ),
        header("truncated gzip", vec![("content-encoding", "gzip")]),
        header("brotli", vec![("content-encoding", "br")]),
        header("deflate", vec![("content-encoding", "deflate")]),
        header("gzip twice", vec![("content-encoding", "gzip, gzip")]),
        header("XML", vec![]),
    ] {
        let c = cases.iter_mut().find(|c| c.name == name).unwrap();
        c.headers.extend(headers);
        if name == "XML" {
            c.headers = vec![("content-type", "application/xml")];
        }
    }
    for c in cases
        .iter_mut()
        .filter(|c| c.name.starts_with("pixel") || c.name == "no pixel for this type")
    {
        c.method = "GET";
        c.headers.clear();
    }
    for (name, method, path, status, error) in [
        (
            "GET on the batch route",
            "GET",
            "/v1/batch",
            405,
            "method not allowed; use POST, OPTIONS",
        ),
        (
            "PUT on a single route",
            "PUT",
            "/v1/track",
            405,
            "method not allowed",
        ),
        (
            "DELETE on the pixel",
            "DELETE",
            "/v1/pixel/track",
            405,
            "use GET, HEAD, OPTIONS",
        ),
        (
            "an invented method",
            "BREW",
            "/v1/batch",
            405,
            "method not allowed",
        ),
        (
            "an invented method elsewhere",
            "BREW",
            "/coffee",
            404,
            "no route for BREW /coffee",
        ),
        (
            "GET an unknown path",
            "GET",
            "/wp-login.php",
            404,
            "no route for GET /wp-login.php",
        ),
    ] {
        cases.push(Case {
            name,
            method,
            path: path.to_string(),
            headers: vec![],
            body: vec![],
            status,
            error,
        });
    }
    cases
}

async fn healthy(c: &Collector) {
    let r = client().get(c.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the collector keeps serving");
}

#[tokio::test]
async fn every_hostile_input_gets_a_specific_error_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path());
    let pid = c.child.id();
    healthy(&c).await;
    let (base_rss, _) = rss_kib(pid);
    // HOSTILE_ONLY=<part of a case name> runs only the matching cases (for a closer look).
    let only = std::env::var("HOSTILE_ONLY").unwrap_or_default();
    let corpus: Vec<Case> = corpus()
        .into_iter()
        .filter(|c| c.name.contains(only.as_str()))
        .collect();
    let mut expected_stored = 0;
    let mut report = Vec::new();
    // Several rounds: a leak or a cache that grows per request shows up as growth between
    // rounds. (The first rounds grow too while the allocator's per-thread arenas fill.)
    let mut after_round = Vec::new();
    for round in 0..ROUNDS {
        for case in &corpus {
            let mut req = client().request(case.method.parse().unwrap(), c.url(&case.path));
            for (k, v) in &case.headers {
                req = req.header(*k, *v);
            }
            let started = Instant::now();
            let r = req.body(case.body.clone()).send().await.unwrap();
            let status = r.status().as_u16();
            let content_type = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            let text = r.text().await.unwrap();
            let took = started.elapsed();
            assert_eq!(status, case.status, "{}: {text}", case.name);
            assert_eq!(
                content_type.as_deref(),
                Some("application/json"),
                "{}: a JSON answer",
                case.name
            );
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}: {text}", case.name));
            let said = if status == 200 {
                assert_eq!(v["success"], true, "{}: {v}", case.name);
                expected_stored += v["accepted"].as_u64().unwrap();
                // At most 100 rejections are listed; the rest are counted.
                let rejected = v["rejected"].as_u64().unwrap();
                let listed = v["errors"].as_array().unwrap().len() as u64;
                assert_eq!(listed, rejected.min(100), "{}", case.name);
                assert_eq!(
                    v["errorsOmitted"].as_u64(),
                    (rejected > 100).then(|| rejected - 100)
                );
                v["errors"][0]["reason"].as_str().unwrap_or("").to_string()
            } else {
                assert_eq!(v["success"], false, "{}: {v}", case.name);
                v["error"].as_str().unwrap().to_string()
            };
            assert!(
                said.contains(case.error),
                "{}: expected {:?} in {said:?}",
                case.name,
                case.error
            );
            assert!(
                took < Duration::from_secs(5),
                "{}: took {took:?}",
                case.name
            );
            if round == 0 {
                report.push(format!(
                    "{status} {:<40} {:>6} ms  {}",
                    case.name,
                    took.as_millis(),
                    said.chars().take(90).collect::<String>()
                ));
            }
            assert!(
                c.child.try_wait().unwrap().is_none(),
                "{}: the collector died",
                case.name
            );
        }
        healthy(&c).await;
        after_round.push(rss_kib(pid));
    }
    // A good batch still goes through and lands.
    let r = client()
        .post(c.url("/v1/batch"))
        .body(batch_of(GOOD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    expected_stored += 1;
    let (rss, peak) = rss_kib(pid);
    println!("{}", report.join("\n"));
    println!(
        "RSS: {base_rss} KiB at start, {:?} KiB after each round, {rss} KiB at the end, peak {peak} KiB",
        after_round.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(
        peak < MAX_PEAK_RSS_KIB,
        "peak RSS {peak} KiB over {MAX_PEAK_RSS_KIB} KiB"
    );
    // A leak per request grows the resident memory round after round, while bounded caches
    // (the spool's window of recent records, the dedupe set, the allocator's per-thread pages)
    // fill early and stop. The collector runs with `MIMALLOC_PURGE_DELAY=0`, so memory it frees
    // goes back to the system at once and its resident size follows what it holds. So the
    // rounds of the second half may hold at most LEAK_TOLERANCE_KIB more, on average, than
    // those of the first half.
    let mean =
        |rounds: &[(u64, u64)]| rounds.iter().map(|r| r.0).sum::<u64>() / rounds.len() as u64;
    let (early, late) = after_round.split_at(ROUNDS / 2);
    assert!(
        mean(late) <= mean(early) + LEAK_TOLERANCE_KIB,
        "resident memory still grows round after round: {after_round:?}"
    );
    let log = c.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(c.terminate().success());
    assert_eq!(read_capture(dir.path()).len() as u64, expected_stored);
}

/// What a raw exchange came to.
#[derive(Debug)]
struct Raw {
    /// Everything the server sent.
    text: String,
    /// The server closed the connection (EOF or reset) within the wait.
    closed: bool,
    waited: Duration,
}

impl Raw {
    fn statuses(&self) -> Vec<u16> {
        self.text
            .split("HTTP/1.1 ")
            .skip(1)
            .filter_map(|s| s.get(..3)?.parse().ok())
            .collect()
    }
}

/// How many complete responses (head and Content-Length body) `buf` holds.
fn complete_responses(buf: &[u8]) -> usize {
    let mut n = 0;
    let mut rest = buf;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if rest.len() < end + 4 + len {
            break;
        }
        n += 1;
        rest = &rest[end + 4 + len..];
    }
    n
}

/// Send bytes on a fresh connection, keep it open, and read until the server closes it,
/// `responses` complete responses have arrived, or `wait` passes.
async fn raw(c: &Collector, bytes: &[u8], responses: usize, wait: Duration) -> Raw {
    let mut s = TcpStream::connect(c.addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut closed = false;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => break,
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if complete_responses(&buf) >= responses {
                    break;
                }
            }
        }
    }
    Raw {
        text: String::from_utf8_lossy(&buf).into_owned(),
        closed,
        waited: started.elapsed(),
    }
}

fn post_head(extra: &str) -> String {
    format!("POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\r\n")
}

#[tokio::test]
async fn broken_framing_is_answered_or_closed_never_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path());
    let pid = c.child.id();

    // A body longer than Content-Length says: the server reads exactly Content-Length bytes
    // (here a truncated batch: a JSON error), then takes the rest as the next request, which is
    // not HTTP: hyper answers 400 and closes.
    let body = batch_of(GOOD);
    let mut req = post_head(&format!("Content-Length: {}\r\n", 20)).into_bytes();
    req.extend_from_slice(&body);
    let r = raw(&c, &req, usize::MAX, Duration::from_secs(10)).await;
    assert!(r.closed, "closed after the garbage: {r:?}");
    assert_eq!(r.statuses(), [400, 400], "{}", r.text);
    assert!(r.text.contains("EOF while parsing"), "{}", r.text);

    // Content-Length over the cap: refused before reading the body.
    let r = raw(
        &c,
        post_head("Content-Length: 10000000000\r\n").as_bytes(),
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(r.statuses(), [413], "{r:?}");
    assert!(r.text.contains("512000-byte limit"), "{}", r.text);

    // A malformed chunk size: a JSON 400 naming the body read.
    let mut req = post_head("Transfer-Encoding: chunked\r\n").into_bytes();
    req.extend_from_slice(b"zz\r\nhello\r\n0\r\n\r\n");
    let r = raw(&c, &req, 1, Duration::from_secs(10)).await;
    assert_eq!(r.statuses()[0], 400, "{r:?}");
    assert!(
        r.text.contains("could not read the request body"),
        "{}",
        r.text
    );

    // Chunks adding up to more than the cap: 413 without reading them all.
    let mut req = post_head("Transfer-Encoding: chunked\r\n").into_bytes();
    let chunk = format!("{:x}\r\n{}\r\n", 100_000, " ".repeat(100_000));
    for _ in 0..6 {
        req.extend_from_slice(chunk.as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = raw(&c, &req, 1, Duration::from_secs(10)).await;
    assert_eq!(r.statuses()[0], 413, "{r:?}");

    // A chunked body without its last chunk, and a body shorter than Content-Length, with the
    // client keeping the connection open: the body-read timeout answers 408.
    let mut unfinished = post_head("Transfer-Encoding: chunked\r\n").into_bytes();
    unfinished.extend_from_slice(format!("{:x}\r\n{}\r\n", 12, "{\"batch\":[{}").as_bytes());
    let mut short = post_head("Content-Length: 1000\r\n").into_bytes();
    short.extend_from_slice(b"{\"batch\":[");
    for (name, req) in [
        ("unfinished chunked body", &unfinished),
        ("short body", &short),
    ] {
        let exchange = raw(&c, req, 1, Duration::from_secs(BODY_TIMEOUT_SECS + 8));
        let (r, _) = tokio::join!(exchange, async {
            // Other clients are served meanwhile.
            tokio::time::sleep(Duration::from_millis(300)).await;
            healthy(&c).await;
        });
        assert_eq!(r.statuses(), [408], "{name}: {r:?}");
        assert!(
            r.text.contains(&format!(
                r#""error":"the request body did not arrive within {BODY_TIMEOUT_SECS} s""#
            )),
            "{name}: {r:?}"
        );
        assert!(
            r.waited >= Duration::from_secs(BODY_TIMEOUT_SECS) - Duration::from_millis(200),
            "{name}: {r:?}"
        );
    }
    healthy(&c).await;
    assert_eq!(c.child.id(), pid);
    let log = c.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(c.terminate().success());
}
