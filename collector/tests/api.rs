//! The HTTP API over a real socket: every endpoint, encodings, CORS, errors, dead letters,
//! and what lands in the capture files, checked field by field.

mod common;

use std::io::Write;

use base64::Engine;
use common::{client, read_capture, track, Collector};
use serde_json::{json, Value};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn post_json(c: &Collector, path: &str, body: &Value) -> (u16, Value) {
    let r = client()
        .post(c.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn batch_lands_in_capture_files_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let batch = json!({
        "batch": [
            {"type": "track", "event": "Order Completed", "userId": "u-1", "anonymousId": "a-1", "messageId": "m-1",
             "timestamp": "2026-11-28T13:00:03.123456+01:00", "properties": {"total": 42.5, "items": [1, 2]},
             "integrations": {"All": true}, "context": {"locale": "de-DE"}, "unknownKey": {"kept": true}},
            {"type": "page", "name": "Home", "anonymousId": "a-2", "properties": {"path": "/"}, "userId": null},
            {"type": "identify", "userId": "u-3", "traits": {"email": "x@example.com"}},
            {"type": "group", "userId": "u-3", "groupId": "g-1", "traits": {"plan": "pro"}},
            {"type": "alias", "userId": "u-3", "previousId": "a-3"},
            {"type": "screen", "anonymousId": "a-4", "name": "Settings"}
        ],
        "sentAt": "2026-11-28T13:00:05+01:00",
        "context": {"library": {"name": "analytics-python", "version": "2.3.0"}}
    });
    let r = client()
        .post(c.url("/v1/batch"))
        .basic_auth("wk_live_123", Some(""))
        .header("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36")
        .header("content-type", "application/json")
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"success": true, "accepted": 6, "rejected": 0, "errors": []})
    );
    assert!(c.terminate().success());

    let recs = read_capture(dir.path());
    assert_eq!(recs.len(), 6);
    assert!(
        common::files_with_suffix(dir.path(), ".tmp").is_empty(),
        "SIGTERM finishes every file"
    );
    let rel = recs[0]
        .file
        .strip_prefix(dir.path())
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let parts: Vec<&str> = rel.split('/').collect();
    assert_eq!(
        &parts[..4],
        &["capture", "local", "clickstream", "0"],
        "{rel}"
    );
    assert_eq!(
        parts.len(),
        10,
        "capture/{{ns}}/{{hub}}/{{p}}/YYYY/MM/DD/HH/mm/ss.avro: {rel}"
    );
    assert!(parts[9].ends_with(".avro") && parts[9].len() == "ss.avro".len());
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.sequence_number, i as i64);
        assert_eq!(r.offset, i.to_string());
        assert_eq!(r.system_properties["content-type"], "application/json");
        assert_eq!(r.properties["schemaVersion"], "1");
        let b = &r.body;
        assert_eq!(b["writeKey"], "wk_live_123");
        assert_eq!(b["context"]["ip"], "127.0.0.0", "anonymized /24");
        assert_eq!(
            b["context"]["library"]["name"], "analytics-python",
            "batch context applies"
        );
        assert_eq!(b["context"]["browser"]["name"], "Chrome");
        assert_eq!(b["context"]["device"]["type"], "desktop");
        assert_eq!(b["context"]["bot"], false);
        assert_eq!(b["sentAt"], "2026-11-28T12:00:05.000Z");
        assert!(b["messageId"].as_str().unwrap().len() >= 3);
        let received =
            chrono::DateTime::parse_from_rfc3339(b["receivedAt"].as_str().unwrap()).unwrap();
        assert!(
            (chrono::Utc::now() - received.with_timezone(&chrono::Utc))
                .num_seconds()
                .abs()
                < 60
        );
        // EnqueuedTimeUtc is receivedAt in Capture's US format, e.g. 11/28/2026 3:09:38 PM.
        assert_eq!(
            r.enqueued_time_utc,
            received.format("%-m/%-d/%Y %-I:%M:%S %p").to_string()
        );
    }
    let order = &recs[0];
    assert_eq!(order.properties["type"], "track");
    assert_eq!(order.properties["event"], "Order Completed");
    assert_eq!(order.system_properties["x-opt-partition-key"], "u-1");
    let b = &order.body;
    assert_eq!(b["messageId"], "m-1");
    assert_eq!(b["properties"], json!({"total": 42.5, "items": [1, 2]}));
    assert_eq!(b["integrations"], json!({"All": true}));
    assert_eq!(b["unknownKey"], json!({"kept": true}));
    assert_eq!(b["context"]["locale"], "de-DE");
    assert_eq!(b["originalTimestamp"], "2026-11-28T13:00:03.123456+01:00");
    // timestamp = receivedAt - (sentAt - originalTimestamp) = receivedAt - 1.876544 s
    let ts = chrono::DateTime::parse_from_rfc3339(b["timestamp"].as_str().unwrap()).unwrap();
    let received = chrono::DateTime::parse_from_rfc3339(b["receivedAt"].as_str().unwrap()).unwrap();
    let skew_ms = (received - ts).num_milliseconds();
    assert!(
        (1876..=1877).contains(&skew_ms),
        "skew-corrected timestamp: {skew_ms} ms (ms precision)"
    );
    assert_eq!(recs[1].properties["event"], "Home");
    assert_eq!(recs[1].system_properties["x-opt-partition-key"], "a-2");
    assert_eq!(recs[2].body["traits"]["email"], "x@example.com");
    assert_eq!(recs[3].body["groupId"], "g-1");
    assert_eq!(recs[4].body["previousId"], "a-3");
    assert_eq!(recs[5].body["type"], "screen");
    assert_eq!(
        recs[2].body["timestamp"], recs[2].body["receivedAt"],
        "no client timestamp: timestamp = receivedAt"
    );
}

#[tokio::test]
async fn single_endpoints_gzip_text_plain_and_write_key_in_body() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let cases = [
        ("/v1/track", json!({"event": "Signed Up", "userId": "u"})),
        ("/v1/page", json!({"name": "Pricing", "anonymousId": "a"})),
        (
            "/v1/identify",
            json!({"userId": "u", "traits": {"name": "Ada"}}),
        ),
        ("/v1/group", json!({"userId": "u", "groupId": "g"})),
        ("/v1/alias", json!({"userId": "u", "previousId": "a"})),
        ("/v1/screen", json!({"userId": "u", "name": "Main"})),
    ];
    for (path, body) in &cases {
        let (status, resp) = post_json(&c, path, body).await;
        assert_eq!(
            (status, resp["accepted"].as_u64()),
            (200, Some(1)),
            "{path}: {resp}"
        );
    }
    let msg = json!({"batch": [{"type": "track", "event": "Beacon", "anonymousId": "a"}], "writeKey": "wk_body"});
    let r = client()
        .post(c.url("/v1/batch"))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(msg.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .post(c.url("/v1/batch"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(
            json!({"batch": [{"type": "track", "event": "Zipped", "userId": "u"}]})
                .to_string()
                .as_bytes(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(c.terminate().success());
    let recs = read_capture(dir.path());
    let types: Vec<&str> = recs
        .iter()
        .map(|r| r.body["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["track", "page", "identify", "group", "alias", "screen", "track", "track"]
    );
    assert_eq!(recs[6].body["writeKey"], "wk_body");
    assert_eq!(recs[6].body["event"], "Beacon");
    assert_eq!(recs[7].body["event"], "Zipped");
}

#[tokio::test]
async fn whole_request_errors_are_specific() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let send = |body: Vec<u8>, ct: &'static str| {
        let url = c.url("/v1/batch");
        async move {
            let r = client()
                .post(url)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, v["error"].as_str().unwrap_or("").to_string())
        }
    };
    let (s, e) = send(b"{not json".to_vec(), "application/json").await;
    assert_eq!(s, 400);
    assert!(e.contains("not valid JSON"), "{e}");
    let (s, e) = send(b"[1]".to_vec(), "application/json").await;
    assert!(s == 400 && e.contains("JSON object"), "{e}");
    let (s, e) = send(b"{\"batch\":\"x\"}".to_vec(), "application/json").await;
    assert!(s == 400 && e.contains("array"), "{e}");
    let (s, e) = send(
        b"{\"batch\":[{}],\"sentAt\":\"later\"}".to_vec(),
        "application/json",
    )
    .await;
    assert!(s == 400 && e.contains("sentAt"), "{e}");
    let (s, e) = send(b"".to_vec(), "application/json").await;
    assert!(s == 400 && e.contains("empty"), "{e}");
    let big = format!(
        "{{\"batch\":[{{\"type\":\"track\",\"event\":\"x\",\"userId\":\"u\",\"p\":\"{}\"}}]}}",
        "x".repeat(600_000)
    );
    let (s, e) = send(big.into_bytes(), "application/json").await;
    assert!(s == 413 && e.contains("limit"), "{s} {e}");
    let (s, e) = send(b"<xml/>".to_vec(), "application/xml").await;
    assert!(s == 415 && e.contains("Content-Type"), "{e}");

    let r = client().get(c.url("/v1/batch")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST, OPTIONS");
    let r = client().get(c.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("/nope"));
}

#[tokio::test]
async fn bad_events_are_dead_lettered_and_the_rest_stored() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let batch = json!({"batch": [
        {"type": "track", "event": "Good", "userId": "u"},
        {"type": "track", "userId": "u"},
        {"type": "launch", "userId": "u"},
        {"type": "page", "name": "No ids"},
        "not an object",
        {"type": "track", "event": "Huge", "userId": "u", "blob": "y".repeat(40_000)},
        {"type": "track", "event": "Bad time", "userId": "u", "timestamp": "tuesday"},
        {"type": "identify", "anonymousId": "a"}
    ]});
    let (status, resp) = post_json(&c, "/v1/batch", &batch).await;
    assert_eq!(status, 200);
    assert_eq!(resp["accepted"], 2);
    assert_eq!(resp["rejected"], 6);
    let errors = resp["errors"].as_array().unwrap();
    let by_index: Vec<(u64, &str)> = errors
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(by_index[0], (1, "track needs a non-empty string `event`"));
    assert!(by_index[1].1.contains("unknown type \"launch\""));
    assert_eq!(by_index[2], (3, "page needs `userId` or `anonymousId`"));
    assert_eq!(by_index[3], (4, "event must be a JSON object"));
    assert!(
        by_index[4].0 == 5 && by_index[4].1.contains("limit is 32768 bytes"),
        "{:?}",
        by_index[4]
    );
    assert!(by_index[5].0 == 6 && by_index[5].1.contains("`timestamp`"));
    assert!(c.terminate().success());

    let stored: Vec<String> = read_capture(dir.path())
        .iter()
        .map(|r| r.body["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored, ["track", "identify"]);
    let dl = common::files_with_suffix(&dir.path().join("deadletter"), ".ndjson");
    let lines: Vec<Value> = std::fs::read_to_string(&dl[0])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["reason"], "track needs a non-empty string `event`");
    assert_eq!(lines[0]["stage"], "validate");
    assert_eq!(lines[0]["event"], json!({"type": "track", "userId": "u"}));
    assert_eq!(lines[3]["event"], "not an object");
}

#[tokio::test]
async fn pixel_answers_a_gif_and_stores_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let data = base64::engine::general_purpose::STANDARD
        .encode(json!({"event": "Email Opened", "userId": "u-9", "writeKey": "wk_px"}).to_string());
    let r = client()
        .get(c.url(&format!(
            "/v1/pixel/track?data={}",
            data.replace('+', "%2B")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/gif");
    let gif = r.bytes().await.unwrap();
    assert!(gif.starts_with(b"GIF89a") && gif.len() < 64);
    let page = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"anonymousId": "a", "name": "Newsletter"}).to_string());
    assert_eq!(
        client()
            .get(c.url(&format!("/v1/pixel/page?data={page}")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = client()
        .get(c.url("/v1/pixel/track?data=%%%"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("base64"));
    let bad = base64::engine::general_purpose::STANDARD.encode(json!({"userId": "u"}).to_string());
    let r = client()
        .get(c.url(&format!("/v1/pixel/track?data={bad}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("`event`"));
    assert!(c.terminate().success());
    let recs = read_capture(dir.path());
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].body["event"], "Email Opened");
    assert_eq!(recs[0].body["writeKey"], "wk_px");
    assert_eq!(recs[1].body["type"], "page");
}

#[tokio::test]
async fn cors_preflight_and_reflected_origin() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let r = client()
        .request(reqwest::Method::OPTIONS, c.url("/v1/batch"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "https://shop.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert_eq!(h["access-control-allow-headers"], "content-type");
    let r = client()
        .post(c.url("/v1/batch"))
        .header("origin", "https://shop.example")
        .header("content-type", "text/plain")
        .body(json!({"batch": [track(0, "cors")]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    assert_eq!(
        client()
            .get(c.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = client().get(c.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["sinks"]["capture"], "ok");
    let (s, _) = post_json(
        &c,
        "/v1/batch",
        &json!({"batch": [track(1, "m"), {"type": "track"}]}),
    )
    .await;
    assert_eq!(s, 200);
    let text = c.metrics().await;
    for needle in [
        "collector_http_requests_total{route=\"batch\",status=\"200\"} 1",
        "collector_events_accepted_total 1",
        "collector_events_rejected_total 1",
        "collector_spool_bytes",
        "collector_spool_depth_events",
        "collector_request_bytes_total",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

#[tokio::test]
async fn a_resent_event_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    // What a browser does when it could not see the answer: send the same events again.
    let batch =
        json!({"batch": [track(1, "dup"), track(2, "dup"), track(1, "dup")], "writeKey": "wk_a"});
    for _ in 0..2 {
        let (status, resp) = post_json(&c, "/v1/batch", &batch).await;
        assert_eq!(
            (status, resp["accepted"].as_u64(), resp["rejected"].as_u64()),
            (200, Some(3), Some(0)),
            "{resp}"
        );
    }
    // The same messageId under another write key is another source's event.
    let other = json!({"batch": [track(1, "dup")], "writeKey": "wk_b"});
    assert_eq!(post_json(&c, "/v1/batch", &other).await.0, 200);
    let text = c.metrics().await;
    assert!(
        text.contains("collector_events_deduplicated_total 4"),
        "{text}"
    );
    assert!(c.terminate().success());
    let ids: Vec<(String, String)> = read_capture(dir.path())
        .iter()
        .map(|r| {
            (
                r.body["writeKey"].as_str().unwrap().to_string(),
                r.body["messageId"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("wk_a".into(), "dup-1".into()),
            ("wk_a".into(), "dup-2".into()),
            ("wk_b".into(), "dup-1".into())
        ]
    );
}

#[tokio::test]
async fn copies_sent_at_once_are_stored_once() {
    // A page's close-time beacon and the next page's resend of the same queue can arrive
    // together: the second copy must not pass the dedupe check while the first is still being
    // written to the spool. Many rounds of 6 simultaneous copies make the race likely.
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let rounds = 40;
    let copies = 6;
    for round in 0..rounds {
        let run = format!("race{round}");
        let batch =
            json!({"batch": (0..5).map(|i| track(i, &run)).collect::<Vec<_>>(), "writeKey": "wk"});
        let sends = (0..copies).map(|_| post_json(&c, "/v1/batch", &batch));
        for (status, resp) in futures::future::join_all(sends).await {
            assert_eq!(
                (status, resp["accepted"].as_u64()),
                (200, Some(5)),
                "{resp}"
            );
        }
    }
    assert!(c.terminate().success());
    let ids: Vec<String> = read_capture(dir.path())
        .iter()
        .map(|r| r.body["messageId"].as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(
        (ids.len(), unique.len()),
        (rounds * 5, rounds * 5),
        "each event stored once"
    );
}
