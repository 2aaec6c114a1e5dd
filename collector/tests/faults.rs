//! Faults with nothing lost, counted by messageId: the disk filling up under the collector
//! (a small tmpfs), and many concurrent keep-alive clients with memory watched.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{client, read_capture, track, Collector};
use serde_json::{json, Value};

/// A tmpfs mounted for the test, unmounted on drop. Needs root (CI runs as root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(ok.success(), "mounting a tmpfs needs root");
        Tmpfs(path.to_path_buf())
    }
    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .map_or(0, |v| {
            v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_keeps_serving_health_loses_nothing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "3m");
    let data = disk.0.join("data");
    let args = [
        "--spool-segment-bytes",
        "131072",
        "--capture-roll-secs",
        "1",
    ];
    let c = Collector::start(&data, &args);
    let http = client();
    let mut acked = Vec::new();
    let mut refused = None;
    for n in 0..5000 {
        let events: Vec<Value> = (0..10).map(|i| track(n * 10 + i, "disk")).collect();
        let r = http
            .post(c.url("/v1/batch"))
            .body(json!({"batch": events}).to_string())
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => acked.extend(
                events
                    .iter()
                    .map(|e| e["messageId"].as_str().unwrap().to_string()),
            ),
            503 => {
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                refused = Some((retry, r.json::<Value>().await.unwrap()));
                break;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let (retry, body) = refused.expect("the disk filled up");
    assert!(retry.is_some(), "503 carries Retry-After");
    assert!(body["error"].as_str().unwrap().contains("disk"), "{body}");
    assert_eq!(
        http.get(c.url("/healthz")).send().await.unwrap().status(),
        200,
        "health is served on a full disk"
    );

    disk.resize("64m");
    acked.extend(
        common::post_until_accepted(
            &http,
            &c,
            "after",
            "ingest did not recover when space returned",
        )
        .await,
    );
    assert!(c.terminate().success());
    // Whatever a sink had not delivered by shutdown is still spooled: one more start drains it.
    let c = Collector::start(&data, &args);
    assert!(c.terminate().success());

    let recs = read_capture(&data);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in &recs {
        *counts
            .entry(r.body["messageId"].as_str().unwrap())
            .or_default() += 1;
    }
    let missing = acked
        .iter()
        .filter(|id| !counts.contains_key(id.as_str()))
        .count();
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    println!(
        "full disk: {} acknowledged, {} stored, {missing} missing, {duplicates} duplicates",
        acked.len(),
        recs.len()
    );
    assert_eq!(missing, 0, "acknowledged events were lost");
    assert_eq!(
        duplicates, 0,
        "torn capture blocks are cut back, so retries do not duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_keep_alive_clients_no_errors_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start(dir.path(), &[]);
    let pid = c.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let errors = Arc::new(Mutex::new(Vec::new()));
    let ok = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // 200 clients at once: the pool keeps one keep-alive connection per concurrent request.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(200)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..200 {
        let (url, errors, ok, http) =
            (c.url("/v1/batch"), errors.clone(), ok.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while started.elapsed() < Duration::from_secs(5) {
                let events: Vec<Value> = (0..10)
                    .map(|k| track(w * 1_000_000 + i * 10 + k, "ka"))
                    .collect();
                i += 1;
                match http
                    .post(&url)
                    .body(json!({"batch": events}).to_string())
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => errors
                        .lock()
                        .unwrap()
                        .push(format!("status {}", r.status())),
                    Err(e) => errors.lock().unwrap().push(e.to_string()),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let peak = peak.load(Ordering::Relaxed);
    let errors = errors.lock().unwrap();
    let ok = ok.load(Ordering::Relaxed);
    println!(
        "200 keep-alive clients for 5 s: {ok} requests ok, {} errors, peak RSS {} MiB",
        errors.len(),
        peak / 1024
    );
    assert!(ok > 1000, "the load ran ({ok} requests)");
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(5)]);
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
}
