//! The promise behind every 2xx, tested by killing processes: acknowledged events survive
//! `kill -9`, a full spool answers 503 without losing anything, and sinks catch up after.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client, post_batch, read_capture, track, Collector};
use serde_json::{json, Value};

/// Post 10-event batches from `workers` tasks until `stop`; return the acknowledged ids.
async fn load(
    url: String,
    run: &'static str,
    workers: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<String> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (url, stop, acked) = (url.clone(), stop.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let events: Vec<Value> = (0..10)
                    .map(|i| track(w * 1_000_000 + n * 10 + i, run))
                    .collect();
                n += 1;
                let Ok(r) = c
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(json!({"batch": events}).to_string())
                    .send()
                    .await
                else {
                    break;
                };
                if r.status() == 200 {
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    if v["accepted"] == 10 {
                        acked.lock().unwrap().extend(
                            events
                                .iter()
                                .map(|e| e["messageId"].as_str().unwrap().to_string()),
                        );
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let v = acked.lock().unwrap().clone();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--capture-roll-secs", "1", "--spool-segment-bytes", "65536"];
    let mut all_acked = Vec::new();
    for round in 0..3 {
        let c = Collector::start(dir.path(), &args);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let run: &'static str = Box::leak(format!("r{round}").into_boxed_str());
        let loader = tokio::spawn(load(c.url("/v1/batch"), run, 8, stop.clone()));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        c.kill9(); // mid-stream: requests are in flight
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let acked = loader.await.unwrap();
        assert!(
            acked.len() > 100,
            "round {round}: the load made progress ({} acked)",
            acked.len()
        );
        all_acked.extend(acked);
    }
    let c = Collector::start(dir.path(), &args);
    assert!(c.terminate().success());

    let recs = read_capture(dir.path());
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &recs {
        *counts
            .entry(r.body["messageId"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let missing: Vec<&String> = all_acked
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    println!(
        "kill -9 x3: {} acknowledged, {} stored, {} missing, {} duplicates",
        all_acked.len(),
        recs.len(),
        missing.len(),
        duplicates
    );
    assert!(
        missing.is_empty(),
        "acknowledged events lost: {} (e.g. {:?})",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        duplicates, 0,
        "the capture sink resumes exactly after what its files hold"
    );
    let seqs: Vec<i64> = recs.iter().map(|r| r.sequence_number).collect();
    let mut sorted = seqs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seqs.len(), "each spool position appears once");
    assert!(common::files_with_suffix(dir.path(), ".tmp").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_spool_answers_503_then_recovers_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    // The stdout sink blocks once the pipe buffer is full because nobody reads it yet.
    let mut c = Collector::start_with(
        dir.path(),
        &[
            "--sink",
            "stdout",
            "--spool-max-bytes",
            "300000",
            "--spool-segment-bytes",
            "30000",
        ],
        Stdio::piped(),
    );
    let stdout = c.child.stdout.take().unwrap();
    let http = client();
    let mut acked = HashSet::new();
    let mut refused = None;
    for n in 0..2000 {
        let events: Vec<Value> = (0..10).map(|i| track(n * 10 + i, "full")).collect();
        let r = http
            .post(c.url("/v1/batch"))
            .body(json!({"batch": events}).to_string())
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            refused = Some((
                r.headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string()),
                r.json::<Value>().await.unwrap(),
            ));
            break;
        }
        assert_eq!(r.status(), 200);
        acked.extend(
            events
                .iter()
                .map(|e| e["messageId"].as_str().unwrap().to_string()),
        );
    }
    let (retry_after, body) = refused.expect("the spool filled up");
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert!(
        body["error"].as_str().unwrap().contains("spool is full"),
        "{body}"
    );
    assert_eq!(
        http.get(c.url("/healthz")).send().await.unwrap().status(),
        200,
        "health is served while full"
    );
    assert_eq!(
        http.get(c.url("/readyz")).send().await.unwrap().status(),
        503,
        "not ready while full"
    );

    // Start reading: the sink drains, segments are freed, and ingest accepts again.
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    acked.extend(common::post_until_accepted(&http, &c, "after", "ingest never recovered").await);
    assert!(c.terminate().success());
    reader.join().unwrap();
    let seen: HashSet<String> = lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["messageId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let missing = acked.iter().filter(|id| !seen.contains(*id)).count();
    println!(
        "full spool: {} acknowledged, {} written to stdout, {} missing",
        acked.len(),
        seen.len(),
        missing
    );
    assert_eq!(missing, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_added_later_reads_what_the_spool_holds() {
    let dir = tempfile::tempdir().unwrap();
    // Accept with one sink, kill -9, then restart with another: the capture sink, new to this
    // spool, starts from the oldest record the spool still holds.
    let c = Collector::start_with(dir.path(), &["--sink", "stdout"], Stdio::piped());
    let events: Vec<Value> = (0..50).map(|i| track(i, "spooled")).collect();
    let r = client()
        .post(c.url("/v1/batch"))
        .body(json!({"batch": events}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    c.kill9();
    let c = Collector::start(dir.path(), &["--sink", "capture"]);
    assert!(c.terminate().success());
    let ids: HashSet<String> = read_capture(dir.path())
        .iter()
        .map(|r| r.body["messageId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 50);
}

/// A browser resends at its next page load what it could not see acknowledged, and that may
/// reach a collector restarted after `kill -9`. The restarted collector rebuilds its dedupe
/// window from the spool (the window segment and the tail), so the resends are acknowledged
/// and stored once, even when the tail rolled over just before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_after_a_kill_9_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--capture-roll-secs", "1", "--spool-segment-bytes", "65536"];
    let http = client();
    let c = Collector::start(dir.path(), &args);
    let events: Vec<Value> = (0..3000).map(|i| track(i, "once")).collect();
    for batch in events.chunks(100) {
        assert_eq!(post_batch(&http, &c, batch).await.status(), 200);
    }
    // Let the capture sink pass every segment but the tail.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = c.metrics().await;
        if m.contains("collector_spool_depth_events 0\n") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "capture kept up: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.kill9();
    let segments = common::files_with_suffix(&dir.path().join("spool"), ".log");
    assert_eq!(segments.len(), 1, "passed segments are gone: {segments:?}");
    let tail = std::fs::metadata(&segments[0]).unwrap().len();
    assert_eq!(
        common::files_with_suffix(&dir.path().join("spool"), ".window").len(),
        1
    );

    // The last 200 events (about 100 KB stored, more than one segment) come again.
    let c = Collector::start(dir.path(), &args);
    assert!(
        c.log().contains("dedupe window rebuilt from the spool"),
        "{}",
        c.log()
    );
    for batch in events[2800..].chunks(50) {
        let r = post_batch(&http, &c, batch).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["accepted"], 50, "{v}");
    }
    let fresh: Vec<Value> = (0..20).map(|i| track(i, "after")).collect();
    assert_eq!(post_batch(&http, &c, &fresh).await.status(), 200);
    let metrics = c.metrics().await;
    assert!(c.terminate().success());

    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in read_capture(dir.path()) {
        *counts
            .entry(r.body["messageId"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    println!("resent 200 after kill -9 (tail segment {tail} bytes): {duplicates} stored twice");
    assert_eq!(counts.len(), 3020, "every event stored");
    assert_eq!(duplicates, 0, "resends after the restart stored once");
    assert!(
        metrics.contains("collector_events_deduplicated_total 200"),
        "{metrics}"
    );
}

/// The signal handlers are in place before the collector says it is listening: SIGHUP (config
/// reload) and SIGTERM sent the moment the address is known neither kill the process with the
/// default action nor skip the clean shutdown.
#[test]
fn signals_right_after_start_are_handled() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let c = Collector::start(&dir.path().join("data"), &[]);
        std::process::Command::new("kill")
            .args(["-HUP", &c.child.id().to_string()])
            .status()
            .unwrap();
        assert!(c.terminate().success());
    }
}
