//! The Event Hubs relay end to end: the real `collector` binary, the real
//! `azure_messaging_eventhubs` client inside it, and the wire-level Event Hubs double on a real
//! socket. Covers mapping, an outage at start (with readiness and the full-spool 503), the hub
//! dying mid-stream, `kill -9` of the collector mid-relay (duplicates are counted and reported),
//! rejected transfers, and oversized events.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use collector::sinks::eventhubs::partition::Partitions;
use common::{client, read_capture, Collector};
use eventhubs_double::{Double, DoubleConfig, ReceivedEvent, Rejection};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

fn start(dir: &std::path::Path, double: &Double, extra: &[&str]) -> Collector {
    start_at(dir, &double.endpoint(), &double.connection_string(), extra)
}

fn start_at(dir: &std::path::Path, endpoint: &str, cs: &str, extra: &[&str]) -> Collector {
    let mut args = vec![
        "--eventhubs-connection-string",
        cs,
        "--eventhubs-endpoint",
        endpoint,
        "--eventhubs-timeout-secs",
        "3",
    ];
    if !extra.contains(&"--sink") {
        args.extend(["--sink", "eventhubs"]);
    }
    args.extend(extra);
    Collector::start(dir, &args)
}

/// A mix of visitors and message types; `i` orders each visitor's events.
fn event(i: usize, run: &str) -> Value {
    let anon = format!("anon-{}", i % 11);
    match i % 3 {
        0 => {
            json!({"type": "track", "event": "Item Viewed", "userId": format!("user-{}", i % 5), "anonymousId": anon,
                    "messageId": format!("{run}-{i}"), "properties": {"i": i}})
        }
        1 => {
            json!({"type": "page", "name": "Home", "anonymousId": anon, "messageId": format!("{run}-{i}"), "properties": {"i": i}})
        }
        _ => {
            json!({"type": "identify", "userId": format!("user-{}", i % 5), "messageId": format!("{run}-{i}"),
                    "traits": {"plan": "pro"}, "context": {"i": i}})
        }
    }
}

async fn post(c: &Collector, events: &[Value]) -> reqwest::Response {
    client()
        .post(c.url("/v1/batch"))
        .header("content-type", "application/json")
        .body(json!({ "batch": events }).to_string())
        .send()
        .await
        .unwrap()
}

/// Posts `n` events in requests of `per`, asserting each is accepted; returns their messageIds.
async fn post_all(
    c: &Collector,
    run: &str,
    range: std::ops::Range<usize>,
    per: usize,
) -> Vec<String> {
    let all: Vec<Value> = range.map(|i| event(i, run)).collect();
    for chunk in all.chunks(per) {
        let r = post(c, chunk).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    all.iter()
        .map(|e| e["messageId"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until every id arrived at the double; returns all recorded events.
async fn wait_for_ids(
    double: &Double,
    ids: &[String],
    c: Option<&Collector>,
) -> Vec<ReceivedEvent> {
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let events = double.events();
        let got: HashSet<&str> = events
            .iter()
            .filter_map(|e| e.message_id.as_deref())
            .collect();
        if want.is_subset(&got) {
            return events;
        }
        if Instant::now() > deadline {
            let missing = want.difference(&got).count();
            panic!(
                "{missing} of {} events never reached the double\n{}",
                want.len(),
                c.map(Collector::log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (distinct messageIds, extra copies).
fn duplicates(events: &[ReceivedEvent]) -> (usize, usize) {
    let ids: HashSet<_> = events
        .iter()
        .map(|e| e.message_id.clone().unwrap())
        .collect();
    (ids.len(), events.len() - ids.len())
}

async fn metric(c: &Collector, name: &str) -> f64 {
    let text = c.metrics().await;
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn dead_letters(dir: &std::path::Path) -> Vec<Value> {
    common::files_with_suffix(&dir.join("deadletter"), ".ndjson")
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .filter(|l: &Value| l["stage"] == "sink:eventhubs")
        .collect()
}

#[tokio::test]
async fn events_arrive_with_bodies_keys_properties_and_a_local_archive() {
    let double = Double::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The relay configured from the TOML file this time (the other tests use flags).
    let toml = dir.path().join("collector.toml");
    std::fs::write(
        &toml,
        format!(
            "sink = [\"eventhubs\", \"capture\"]\neventhubs_connection_string = \"{}\"\n\
             eventhubs_endpoint = \"{}\"\neventhubs_timeout_secs = 3\n",
            double.connection_string(),
            double.endpoint()
        ),
    )
    .unwrap();
    let c = Collector::start(dir.path(), &["--config", toml.to_str().unwrap()]);
    let n = 300;
    let ids = post_all(&c, "map", 0..n, 50).await;
    let got = wait_for_ids(&double, &ids, Some(&c)).await;
    let (distinct, extra) = duplicates(&got);
    eprintln!("mapping: {distinct} of {n} delivered, {extra} duplicates");
    assert_eq!(distinct, n);
    assert!(
        double.recorder().accepted_transfers() < n as u64 / 5,
        "events travel in batches"
    );

    let partitions = Partitions::new((0..4).map(|p| p.to_string()).collect()).unwrap();
    let mut last_i: HashMap<String, u64> = HashMap::new();
    for e in &got {
        let body: Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(
            e.message_id.as_deref(),
            body["messageId"].as_str(),
            "message-id is the Segment messageId"
        );
        assert_eq!(e.content_type.as_deref(), Some("application/json"));
        assert!(
            body["receivedAt"].is_string(),
            "the body is the enriched event: {body}"
        );
        let key = body["userId"]
            .as_str()
            .or(body["anonymousId"].as_str())
            .unwrap();
        assert_eq!(
            e.partition_key.as_deref(),
            Some(key),
            "userId, else anonymousId"
        );
        let want_partition = partitions.index_for(Some(key), 0).to_string();
        assert_eq!(
            e.partition.as_deref(),
            Some(want_partition.as_str()),
            "routed as the gateway hashes the key"
        );
        assert_eq!(e.properties["type"], body["type"]);
        assert_eq!(e.properties["schemaVersion"], "1");
        match body["type"].as_str().unwrap() {
            "track" => assert_eq!(e.properties["event"], "Item Viewed"),
            "page" => assert_eq!(e.properties["event"], "Home"),
            _ => assert!(!e.properties.contains_key("event")),
        }
        let i = body["properties"]["i"]
            .as_u64()
            .or(body["context"]["i"].as_u64())
            .unwrap();
        if let Some(prev) = last_i.insert(key.to_owned(), i) {
            assert!(prev < i, "visitor {key}: event {i} arrived after {prev}");
        }
    }
    assert_eq!(
        metric(&c, "collector_eventhubs_events_total").await,
        n as f64
    );
    assert!(metric(&c, "collector_eventhubs_batches_total").await >= 1.0);

    // Fan-out: the capture sink kept its own archive from its own cursor.
    assert!(c.terminate().success());
    let captured: HashSet<String> = read_capture(dir.path())
        .into_iter()
        .map(|r| r.body["messageId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(captured, ids.iter().cloned().collect::<HashSet<_>>());
    let cursors: Vec<_> = std::fs::read_dir(dir.path().join("spool/cursors"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        cursors.iter().any(|f| f.contains("eventhubs"))
            && cursors.iter().any(|f| f.contains("capture")),
        "{cursors:?}"
    );
}

#[tokio::test]
async fn hub_down_at_start_spools_stays_ready_until_high_water_then_drains() {
    // A port with nothing behind it yet.
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config = DoubleConfig {
        listen: addr,
        ..Default::default()
    };
    let cs = format!(
        "Endpoint=sb://{}/;SharedAccessKeyName=send;SharedAccessKey=a2V5;EntityPath={}",
        config.namespace, config.hub
    );
    let dir = tempfile::tempdir().unwrap();
    let c = start_at(
        dir.path(),
        &format!("amqp://{addr}"),
        &cs,
        &[
            "--spool-max-bytes",
            "200000",
            "--spool-segment-bytes",
            "20000",
        ],
    );
    let http = client();
    let mut acked = Vec::new();
    let mut saw_ready_while_down = false;
    let mut saw_unready_past_high_water = false;
    let mut refused = None;
    for n in 0..500 {
        let events: Vec<Value> = (n * 10..n * 10 + 10).map(|i| event(i, "down")).collect();
        let r = post(&c, &events).await;
        if r.status() == 503 {
            refused = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            break;
        }
        assert_eq!(r.status(), 200);
        acked.extend(
            events
                .iter()
                .map(|e| e["messageId"].as_str().unwrap().to_owned()),
        );
        let ready = c.get_json("/readyz").await;
        if ready["ready"] == true && n > 2 {
            // Sure to have tried (and failed) to reach the hub by now.
            saw_ready_while_down |= ready["sinks"]["eventhubs"] == "failing";
        }
        saw_unready_past_high_water |= ready["ready"] == false && ready["spool"]["ok"] == false;
        if n < 5 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(
        saw_ready_while_down,
        "an outage alone keeps the collector in the load balancer\n{}",
        c.log()
    );
    assert!(
        saw_unready_past_high_water,
        "past the high-water mark /readyz says not ready"
    );
    assert_eq!(
        refused.as_deref(),
        Some("5"),
        "a full spool answers 503 with Retry-After"
    );

    let double = Double::start_with(config).await.unwrap();
    let got = wait_for_ids(&double, &acked, Some(&c)).await;
    let (distinct, extra) = duplicates(&got);
    eprintln!(
        "hub down at start: {} events spooled, {distinct} delivered, {extra} duplicates",
        acked.len()
    );
    assert_eq!(distinct, acked.len());
    let deadline = Instant::now() + WAIT;
    while http.get(c.url("/readyz")).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "ready again once drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        post(&c, &[event(999_999, "down")]).await.status(),
        200,
        "ingest accepts again"
    );
}

#[tokio::test]
async fn hub_killed_mid_stream_and_restarted_loses_nothing() {
    let mut double = Double::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = std::sync::Arc::new(start(dir.path(), &double, &[]));
    let poster = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for k in 0..40 {
                ids.extend(post_all(&c, "midstream", k * 25..k * 25 + 25, 25).await);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            ids
        })
    };
    double.wait_for_events(100, WAIT).await.unwrap();
    double.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    double.restart().await.unwrap();
    let ids = poster.await.unwrap();
    let got = wait_for_ids(&double, &ids, Some(&c)).await;
    let (distinct, extra) = duplicates(&got);
    eprintln!(
        "hub killed mid-stream: {distinct} of {} delivered, {extra} duplicates",
        ids.len()
    );
    assert_eq!(distinct, ids.len());
    assert!(
        metric(&c, "collector_eventhubs_retries_total").await >= 1.0,
        "the outage was noticed"
    );
}

#[tokio::test]
async fn collector_kill9_mid_relay_then_restart_loses_nothing() {
    let double = Double::start().await.unwrap();
    // A slow hub: each transfer takes 500 ms, so the relay is surely mid-send when killed.
    double
        .faults()
        .delay_transfers(Some(Duration::from_millis(500)));
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), &double, &[]);
    let n = 3000;
    let ids = post_all(&c, "kill9", 0..n, 100).await;
    // Kill as soon as a third of the backlog is in: the partition batches of the delivery in
    // progress arrive one by one, so some are in and its cursor is not committed yet.
    double.wait_for_events(n / 3, WAIT).await.unwrap();
    let before = double.recorder().len();
    c.kill9();
    assert!(
        before < n,
        "killed before the relay finished ({before} of {n} delivered)"
    );
    double.faults().delay_transfers(None);
    let c = start(dir.path(), &double, &[]);
    let got = wait_for_ids(&double, &ids, Some(&c)).await;
    let (distinct, extra) = duplicates(&got);
    eprintln!("collector kill -9 mid-relay: {distinct} of {n} delivered, {extra} duplicates ({before} had arrived before the kill)");
    assert_eq!(distinct, n);
    // Duplicates are the same event: same messageId, same body.
    let mut bodies: HashMap<String, &[u8]> = HashMap::new();
    for e in &got {
        let id = e.message_id.clone().unwrap();
        let body: Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(body["messageId"].as_str(), Some(id.as_str()));
        if let Some(prev) = bodies.insert(id, &e.body) {
            assert_eq!(prev, &e.body[..], "a duplicate carries the same body");
        }
    }
}

#[tokio::test]
async fn rejected_transfers_are_retried_and_content_rejections_isolated() {
    // One partition, so every batch meets the injected rejections in turn.
    let double = Double::start_with(DoubleConfig {
        partition_count: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), &double, &[]);

    // Throttling, longer than the client's own few retries: the drain loop retries the batch.
    double.faults().reject_next(
        6,
        Rejection::new("com.microsoft:server-busy", "injected throttling"),
    );
    let ids = post_all(&c, "busy", 0..40, 40).await;
    let got = wait_for_ids(&double, &ids, Some(&c)).await;
    assert_eq!(duplicates(&got).0, 40);
    assert_eq!(double.faults().rejected(), 6);
    assert!(metric(&c, "collector_eventhubs_retries_total").await >= 1.0);

    // A content rejection of a whole batch: its events are sent one by one; all pass.
    double
        .faults()
        .reject_next(1, Rejection::new("amqp:decode-error", "injected"));
    let more = post_all(&c, "decode", 0..30, 30).await;
    wait_for_ids(&double, &more, Some(&c)).await;
    assert_eq!(double.faults().rejected(), 7);
    assert!(
        dead_letters(dir.path()).is_empty(),
        "nothing was dead-lettered"
    );
    assert_eq!(duplicates(&double.events()).0, 70);
}

#[tokio::test]
async fn oversized_events_are_dead_lettered_without_blocking_the_stream() {
    let double = Double::start_with(DoubleConfig {
        max_message_size: 16 * 1024,
        ..Default::default()
    })
    .await
    .unwrap();
    // The service also refuses events over 3 KB that do fit the link limit. (The client counts
    // the first event of a batch twice, so one event must stay under half the link limit.)
    double.faults().reject_events_larger_than(Some(3000));
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), &double, &[]);
    let mut batch: Vec<Value> = (0..10).map(|i| event(i, "big")).collect();
    let mut huge = event(100, "big");
    huge["properties"]["blob"] = json!("x".repeat(24_000));
    batch.push(huge);
    batch.extend((10..20).map(|i| event(i, "big")));
    let mut large = event(101, "big");
    large["properties"]["blob"] = json!("y".repeat(4_000));
    batch.push(large);
    batch.extend((20..30).map(|i| event(i, "big")));
    assert_eq!(post(&c, &batch).await.status(), 200);
    let normal: Vec<String> = (0..30).map(|i| format!("big-{i}")).collect();
    wait_for_ids(&double, &normal, Some(&c)).await;
    // Later events flow too: nothing is stuck behind the big ones.
    let later = post_all(&c, "after", 0..10, 10).await;
    let got = wait_for_ids(&double, &later, Some(&c)).await;
    assert!(
        got.iter().all(|e| e.body.len() < 3000),
        "no big event reached the hub"
    );

    let letters = dead_letters(dir.path());
    let by_id: HashMap<&str, &str> = letters
        .iter()
        .map(|l| {
            (
                l["event"]["messageId"].as_str().unwrap(),
                l["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_id.len(), 2, "{letters:?}");
    assert!(
        by_id["big-100"].contains("maximum message size"),
        "{letters:#?}\n{}",
        c.log()
    );
    assert!(
        by_id["big-101"].contains("amqp:link:message-size-exceeded"),
        "{}",
        by_id["big-101"]
    );
    assert_eq!(
        metric(&c, "collector_dead_letters_total{stage=\"sink:eventhubs\"}").await,
        2.0
    );
}
