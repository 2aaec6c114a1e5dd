//! Tracking plans against the real binary: each mode end to end (answer, capture files, dead
//! letters, inspector, metrics), per-source overrides, hostile patterns and payloads, a broken
//! plan at start and on reload, and reloads under load, where each request must be judged by
//! exactly one version of the plan.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, read_capture, Collector};
use serde_json::{json, Value};

fn write_plan(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Written beside and renamed: a reload never reads half a file.
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
}

const ORDER: &str = r#"{
  "x-type": "track", "x-event": "Order Completed",
  "properties": {"properties": {
    "type": "object", "required": ["order_id", "revenue"],
    "properties": {"order_id": {"type": "string"}, "revenue": {"$ref": "defs/money.json"}}
  }}
}"#;
const MONEY: &str = r#"{"type": "number", "minimum": 0}"#;
const IDENTIFY: &str = r#"{
  "x-type": "identify",
  "properties": {"traits": {"properties": {"email": {"type": "string", "format": "email"}}}}
}"#;
/// Pages must say which library sent them: the batch-level context may.
const PAGE: &str = r#"{
  "x-type": "page", "required": ["context"],
  "properties": {"context": {"required": ["library"]}}
}"#;

fn shop_plan(dir: &Path) {
    write_plan(
        dir,
        &[
            ("order.json", ORDER),
            ("defs/money.json", MONEY),
            ("identify.json", IDENTIFY),
            ("page.json", PAGE),
        ],
    );
}

fn order(revenue: Value) -> Value {
    json!({"type": "track", "event": "Order Completed", "userId": "u1",
           "properties": {"order_id": "o-1", "revenue": revenue}})
}

async fn post(c: &Collector, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = client().post(c.url("/v1/batch")).body(body.to_string());
    if let Some(k) = key {
        req = req.basic_auth(k, Some(""));
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn dead_letters(dir: &Path) -> Vec<Value> {
    common::files_with_suffix(&dir.join("deadletter"), ".ndjson")
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

#[tokio::test]
async fn enforce_refuses_with_violations_in_the_answer_dead_letters_inspector_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan");
    shop_plan(&plan);
    let c = Collector::start(
        dir.path(),
        &["--tracking-plan", plan.to_str().unwrap(), "--inspector"],
    );
    let batch = json!({
        "context": {"library": {"name": "analytics.js"}},
        "batch": [
            order(json!(12.99)),
            {"type": "track", "event": "Order Completed", "userId": "u1", "properties": {"revenue": "12,99"}},
            {"type": "track", "event": "Order Complete", "userId": "u1", "properties": {}},
            {"type": "identify", "userId": "u1", "traits": {"email": "not an address"}},
            {"type": "page", "name": "Home", "anonymousId": "a1"},
        ]
    });
    let (status, answer) = post(&c, None, &batch).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["accepted"], 3,
        "valid, unplanned (allowed), page with the batch's library: {answer}"
    );
    assert_eq!(answer["rejected"], 2, "{answer}");
    let e = &answer["errors"][0];
    assert_eq!(e["index"], 1);
    let reason = e["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("violates the tracking plan for track \"Order Completed\":"),
        "{reason}"
    );
    let v = e["violations"].as_array().unwrap();
    assert!(v.iter().any(|v| v["path"] == "/properties/revenue"
        && v["keyword"] == "type"
        && v["message"]
            .as_str()
            .unwrap()
            .contains("\"12,99\" is not of type \"number\"")));
    assert!(v.iter().any(|v| v["path"] == "/properties"
        && v["keyword"] == "required"
        && v["message"].as_str().unwrap().contains("order_id")));
    let e = &answer["errors"][1];
    assert_eq!(e["index"], 3);
    assert_eq!(e["violations"][0]["path"], "/traits/email");
    assert_eq!(e["violations"][0]["keyword"], "format");

    let shown = c.get_json("/debug/events").await;
    let rejected: Vec<&Value> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == "rejected")
        .collect();
    assert_eq!(rejected.len(), 2, "{shown}");
    assert!(rejected[0]["reason"]
        .as_str()
        .unwrap()
        .contains("violates the tracking plan"));
    assert_eq!(rejected[0]["violations"].as_array().unwrap().len(), 2);

    let m = c.metrics().await;
    for line in [
        r#"collector_plan_events_total{source="",result="valid"} 2"#,
        r#"collector_plan_events_total{source="",result="invalid"} 2"#,
        r#"collector_plan_events_total{source="",result="unplanned"} 1"#,
        r#"collector_plan_violations_total{source="",event="track \"Order Completed\"",keyword="type"} 1"#,
        r#"collector_plan_violations_total{source="",event="identify",keyword="format"} 1"#,
    ] {
        assert!(m.contains(line), "no {line} in\n{m}");
    }
    assert!(c.terminate().success());

    let stored: Vec<Value> = read_capture(dir.path())
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert_eq!(stored.len(), 3);
    assert!(stored
        .iter()
        .all(|e| e["context"].get("violations").is_none()));
    let letters = dead_letters(dir.path());
    assert_eq!(letters.len(), 2);
    assert!(letters.iter().all(|l| l["stage"] == "plan"));
    assert_eq!(letters[0]["violations"].as_array().unwrap().len(), 2);
    assert_eq!(letters[0]["event"]["properties"]["revenue"], "12,99");
}

#[tokio::test]
async fn tag_observe_block_and_per_source_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan");
    shop_plan(&plan);
    let strict = dir.path().join("strict");
    write_plan(
        &strict,
        &[(
            "order.json",
            r#"{"x-type":"track","x-event":"Order Completed","properties":{"properties":{"required":["currency"]}}}"#,
        )],
    );
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"tracking_plan = "{}"
tracking_plan_mode = "tag"
tracking_plan_unplanned = "tag"

[[sources]]
name = "web"
write_keys = ["wk_web"]

[[sources]]
name = "server"
write_keys = ["wk_srv"]
tracking_plan_mode = "observe"
tracking_plan_unplanned = "block"

[[sources]]
name = "strict"
write_keys = ["wk_strict"]
tracking_plan = "{}"
tracking_plan_mode = "enforce"
"#,
            plan.display(),
            strict.display()
        ),
    )
    .unwrap();
    let c = Collector::start(dir.path(), &["--config", cfg.to_str().unwrap()]);
    let bad = order(json!("12,99"));
    let unplanned = json!({"type": "track", "event": "Wishlist Added", "userId": "u1"});
    let both = json!({"batch": [bad, unplanned]});

    let (_, a) = post(&c, Some("wk_web"), &both).await;
    assert_eq!(
        (a["accepted"].as_u64(), a["rejected"].as_u64()),
        (Some(2), Some(0)),
        "{a}"
    );
    let (_, a) = post(&c, Some("wk_srv"), &both).await;
    assert_eq!(
        (a["accepted"].as_u64(), a["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{a}"
    );
    assert_eq!(
        a["errors"][0]["reason"],
        "track \"Wishlist Added\" is not in the tracking plan"
    );
    assert_eq!(a["errors"][0]["violations"][0]["keyword"], "unplanned");
    let (_, a) = post(&c, Some("wk_strict"), &json!({"batch": [order(json!(3))]})).await;
    assert_eq!(a["rejected"], 1, "the source's own plan, enforced: {a}");
    assert_eq!(a["errors"][0]["violations"][0]["keyword"], "required");
    assert!(c.terminate().success());

    let stored: Vec<Value> = read_capture(dir.path())
        .into_iter()
        .map(|r| r.body)
        .collect();
    let of = |source: &str, event: &str| -> Value {
        stored
            .iter()
            .find(|e| e["source"] == source && e["event"] == event)
            .cloned()
            .unwrap_or_else(|| panic!("no {event} from {source} in {stored:#?}"))
    };
    let tagged = of("web", "Order Completed");
    let v = tagged["context"]["violations"].as_array().unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0]["path"].as_str(), v[0]["keyword"].as_str()),
        (Some("/properties/revenue"), Some("type"))
    );
    let tagged = of("web", "Wishlist Added");
    assert_eq!(tagged["context"]["violations"][0]["keyword"], "unplanned");
    assert_eq!(
        tagged["context"]["violations"][0]["message"],
        "the tracking plan has no schema for track \"Wishlist Added\""
    );
    let observed = of("server", "Order Completed");
    assert!(
        observed["context"].get("violations").is_none(),
        "observe stores the event unchanged"
    );
    assert_eq!(observed["properties"]["revenue"], "12,99");
    assert_eq!(stored.len(), 3);

    // The stored events replayed against the plan from the capture files, as an owner would
    // before turning enforce on: both orders break it, whatever mode let them in.
    let out = Command::new(env!("CARGO_BIN_EXE_collector"))
        .args(["plan", "test", "--json"])
        .arg(&plan)
        .arg(dir.path().join("capture"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "invalid events exit 1");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            &report["events"],
            &report["valid"],
            &report["invalid"],
            &report["unplanned"]
        ),
        (&json!(3), &json!(0), &json!(2), &json!(1)),
        "{report:#}"
    );
    let finding = &report["violations"]["track \"Order Completed\""]["/properties/revenue type"];
    assert_eq!(finding["count"], 2, "{report:#}");
    assert_eq!(finding["example"], "\"12,99\" is not of type \"number\"");
    assert_eq!(report["unplanned_events"]["track \"Wishlist Added\""], 1);
}

#[tokio::test]
async fn hostile_patterns_and_payloads_take_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan");
    write_plan(
        &plan,
        &[(
            "t.json",
            r##"{"x-type":"track","x-event":"T",
                "$defs":{"node":{"type":"object","properties":{"child":{"$ref":"#/$defs/node"},"n":{"type":"integer"}}}},
                "properties":{"properties":{"properties":{
                  "code":{"type":"string","pattern":"^(a+)+$"},
                  "tree":{"$ref":"#/$defs/node"},
                  "list":{"type":"array","uniqueItems":true,"items":{"type":"object"}}}}}}"##,
        )],
    );
    let c = Collector::start(dir.path(), &["--tracking-plan", plan.to_str().unwrap()]);
    let catastrophic = format!("{}!", "a".repeat(30_000));
    let mut tree = json!({"n": "not a number"});
    // Deep as the body's nesting limit (64 levels) allows.
    for _ in 0..58 {
        tree = json!({"child": tree});
    }
    let list: Vec<Value> = (0..2500).map(|i| json!({"k": i})).collect();
    let mut dup_list = list.clone();
    dup_list.push(json!({"k": 0}));
    let events = [
        json!({"type":"track","event":"T","userId":"u","properties":{"code": catastrophic}}),
        json!({"type":"track","event":"T","userId":"u","properties":{"tree": tree}}),
        json!({"type":"track","event":"T","userId":"u","properties":{"list": list}}),
        json!({"type":"track","event":"T","userId":"u","properties":{"list": dup_list}}),
    ];
    let mut slowest = Duration::ZERO;
    for (i, e) in events.iter().enumerate() {
        let started = Instant::now();
        let (status, a) = post(&c, None, &json!({"batch": [e]})).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, 200, "{a}");
        let want_rejected = i != 2;
        assert_eq!(a["rejected"] == 1, want_rejected, "event {i}: {a}");
    }
    println!("slowest hostile request: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(5),
        "a hostile event took {slowest:?}: validation must not backtrack or blow up"
    );
    let (_, a) = post(&c, None, &json!({"batch": [events[1]]})).await;
    let path = a["errors"][0]["violations"][0]["path"].as_str().unwrap();
    assert!(
        path.starts_with("/properties/tree/child/child/")
            && path.ends_with('…')
            && path.len() <= 200,
        "the deep path, cut to 200 bytes: {path}"
    );
    assert!(c.terminate().success(), "still alive and stops cleanly");
}

#[test]
fn a_broken_plan_stops_the_collector_at_start_naming_file_and_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan");
    write_plan(
        &plan,
        &[
            ("order.json", ORDER),
            (
                "remote.json",
                r#"{"x-type":"identify","properties":{"traits":{"$ref":"https://schemas.example/traits.json"}}}"#,
            ),
        ],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_collector"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--tracking-plan", plan.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not load"), "{err}");
    assert!(
        err.contains("order.json: /properties/properties/properties/revenue/$ref: $ref \"defs/money.json\": no file"),
        "{err}"
    );
    assert!(
        err.contains("remote.json: /properties/traits/$ref: $ref \"https://schemas.example/traits.json\" points outside the plan directory"),
        "{err}"
    );

    let check = Command::new(env!("CARGO_BIN_EXE_collector"))
        .args(["plan", "check"])
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains("error: remote.json: /properties/traits/$ref"),
        "{text}"
    );
    assert!(text.contains("error: order.json: "), "{text}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Plan "a" refuses `x: "a"`, plan "b" refuses `x: "b"`. Every batch holds both, so a request
/// judged by one version refuses exactly the even or exactly the odd events; a mix would mean
/// the swap was not atomic.
fn flip_plan(dir: &Path, refuse: &str) {
    let mut files = vec![(
        "t.json".to_string(),
        format!(
            r#"{{"x-type":"track","x-event":"Flip","properties":{{"properties":{{"properties":{{"x":{{"not":{{"const":"{refuse}"}}}}}}}}}}}}"#
        ),
    )];
    // 19 more events, so the plan is a realistic size to compile on every reload.
    for i in 0..19 {
        files.push((
            format!("e{i}.json"),
            format!(r#"{{"x-type":"track","x-event":"E{i}","properties":{{"properties":{{"required":["id"],"properties":{{"id":{{"type":"string","pattern":"^[a-z]+-[0-9]+$"}}}}}}}}}}"#),
        ));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    write_plan(dir, &refs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_reload_atomically_under_load_and_memory_stays_flat() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan");
    flip_plan(&plan, "a");
    let c = Arc::new(Collector::start(
        dir.path(),
        &["--tracking-plan", plan.to_str().unwrap()],
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let mut load = Vec::new();
    for _ in 0..3 {
        let (c, stop, seen) = (c.clone(), stop.clone(), seen.clone());
        load.push(tokio::spawn(async move {
            let http = client();
            let batch: Vec<Value> = (0..40)
                .map(|i| json!({"type":"track","event":"Flip","userId":"u","properties":{"x": if i % 2 == 0 {"a"} else {"b"}}}))
                .collect();
            let body = json!({ "batch": batch }).to_string();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = http.post(c.url("/v1/batch")).body(body.clone()).send().await.unwrap();
                assert_eq!(r.status(), 200, "no request fails during a reload");
                let a: Value = r.json().await.unwrap();
                let refused: Vec<u64> = a["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["index"].as_u64().unwrap())
                    .collect();
                assert_eq!(refused.len(), 20, "{a}");
                let parity = refused[0] % 2;
                assert!(
                    refused.iter().all(|i| i % 2 == parity),
                    "one request judged by two plan versions: {refused:?}"
                );
                seen[parity as usize].fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            n
        }));
    }
    let pid = c.child.id();
    let hup = || {
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    let reloads = |c: &Collector| c.log().matches("config reloaded").count();
    let mut rss_at_20 = 0;
    const RELOADS: usize = 200;
    for i in 0..RELOADS {
        flip_plan(&plan, if i % 2 == 0 { "b" } else { "a" });
        hup();
        let deadline = Instant::now() + Duration::from_secs(10);
        while reloads(&c) < i + 1 {
            assert!(
                Instant::now() < deadline,
                "reload {i} not seen:\n{}",
                c.log()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if i == 19 {
            rss_at_20 = rss_kib(pid);
        }
    }
    let rss_end = rss_kib(pid);

    // A broken plan is refused and the running one kept.
    std::fs::write(plan.join("t.json"), "{\"x-type\": ").unwrap();
    hup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.log().contains("config reload refused") {
        assert!(Instant::now() < deadline, "{}", c.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(c.log().contains("t.json: invalid JSON"), "{}", c.log());
    stop.store(true, Ordering::Relaxed);
    let mut requests = 0;
    for l in load {
        requests += l.await.unwrap();
    }
    let (a, b) = (
        seen[0].load(Ordering::Relaxed),
        seen[1].load(Ordering::Relaxed),
    );
    println!(
        "{requests} requests during {RELOADS} reloads: {a} judged by plan a, {b} by plan b; RSS {rss_at_20} KiB after 20 reloads, {rss_end} KiB after {RELOADS}"
    );
    assert!(a > 0 && b > 0, "both versions served requests: {a} / {b}");
    assert!(
        rss_end < rss_at_20 + 16 * 1024,
        "memory grows with reloads: {rss_at_20} KiB → {rss_end} KiB"
    );
    let http = client();
    let (_, a) = {
        let body =
            json!({"batch": [{"type":"track","event":"Flip","userId":"u","properties":{"x":"a"}}]});
        let r = http
            .post(c.url("/v1/batch"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    // The last good plan (reload 199 wrote "a") still refuses x = "a".
    assert_eq!(a["rejected"], 1, "{a}");
}
