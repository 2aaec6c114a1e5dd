//! Shared helpers for the socket-level tests: start the real `collector` binary on port 0,
//! talk to it over HTTP, stop it with SIGTERM or SIGKILL, and read its capture files back
//! with apache-avro.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apache_avro::types::Value as Avro;

pub struct Collector {
    pub child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub log: Arc<Mutex<String>>,
}

impl Collector {
    /// Start the collector with a data dir and extra flags; wait until it listens.
    pub fn start(data_dir: &Path, args: &[&str]) -> Collector {
        Self::start_with(data_dir, args, Stdio::null())
    }

    pub fn start_with(data_dir: &Path, args: &[&str], stdout: Stdio) -> Collector {
        Self::start_with_env(data_dir, args, stdout, &[])
    }

    /// As [`Collector::start_with`], with extra environment variables for the process.
    pub fn start_with_env(
        data_dir: &Path,
        args: &[&str],
        stdout: Stdio,
        env: &[(&str, &str)],
    ) -> Collector {
        // All test traffic comes from one IP: no per-IP limit unless a test asks for one.
        let unlimited: &[&str] = if args.contains(&"--rate-limit-ip") {
            &[]
        } else {
            &["--rate-limit-ip", "0"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_collector"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(unlimited)
            .args(args)
            .env("COLLECTOR_LOG", "info")
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start collector");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Log first, then announce: a test that sees the address also sees the line.
                {
                    let mut l = sink.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
                if let Some(rest) = line
                    .split("listening on http://")
                    .nth(1)
                    .or_else(|| line.split("listening on https://").nth(1))
                {
                    let addr: SocketAddr = rest.split_whitespace().next().unwrap().parse().unwrap();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("collector did not start:\n{}", log.lock().unwrap());
            }
        };
        Collector {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        client()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The JSON body of a GET.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        client()
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if !status.success() {
                    // The test's assertion only sees the status; its output shows why.
                    println!(
                        "collector exited with {status} after SIGTERM:\n{}",
                        self.log.lock().unwrap()
                    );
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "collector did not exit after SIGTERM:\n{}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no cleanup at all.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One record of a capture file, as an Azure Event Hubs Capture reader sees it.
#[derive(Debug, Clone)]
pub struct CaptureRecord {
    pub file: PathBuf,
    pub sequence_number: i64,
    pub offset: String,
    pub enqueued_time_utc: String,
    pub system_properties: HashMap<String, String>,
    pub properties: HashMap<String, String>,
    pub body: serde_json::Value,
}

pub fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_str().unwrap().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn string_map(v: &Avro) -> HashMap<String, String> {
    let Avro::Map(m) = v else {
        panic!("expected a map, got {v:?}")
    };
    m.iter()
        .map(|(k, v)| {
            let inner = match v {
                Avro::Union(_, b) => b.as_ref(),
                other => other,
            };
            let s = match inner {
                Avro::String(s) => s.clone(),
                Avro::Long(n) => n.to_string(),
                other => format!("{other:?}"),
            };
            (k.clone(), s)
        })
        .collect()
}

/// Read every finished capture file under `data_dir` with apache-avro.
pub fn read_capture(data_dir: &Path) -> Vec<CaptureRecord> {
    let mut out = Vec::new();
    for file in files_with_suffix(&data_dir.join("capture"), ".avro") {
        let reader = apache_avro::Reader::new(std::fs::File::open(&file).unwrap()).unwrap();
        let schema = reader.writer_schema().canonical_form();
        assert!(
            schema.contains("\"name\":\"Microsoft.ServiceBus.Messaging.EventData\""),
            "{schema}"
        );
        for v in reader {
            let Avro::Record(fields) = v.expect("a readable record") else {
                panic!()
            };
            let f: HashMap<_, _> = fields.into_iter().collect();
            let body = match &f["Body"] {
                Avro::Union(1, b) => match b.as_ref() {
                    Avro::Bytes(b) => serde_json::from_slice(b).unwrap(),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            };
            out.push(CaptureRecord {
                file: file.clone(),
                sequence_number: match f["SequenceNumber"] {
                    Avro::Long(n) => n,
                    _ => panic!(),
                },
                offset: match &f["Offset"] {
                    Avro::String(s) => s.clone(),
                    _ => panic!(),
                },
                enqueued_time_utc: match &f["EnqueuedTimeUtc"] {
                    Avro::String(s) => s.clone(),
                    _ => panic!(),
                },
                system_properties: string_map(&f["SystemProperties"]),
                properties: string_map(&f["Properties"]),
                body,
            });
        }
    }
    out
}

/// A Segment event with a unique messageId.
pub fn track(i: usize, run: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "track",
        "event": "Item Viewed",
        "anonymousId": format!("anon-{}", i % 7),
        "messageId": format!("{run}-{i}"),
        "properties": {"i": i, "sku": format!("SKU-{i}")},
        "timestamp": "2026-11-28T12:00:00.000Z",
    })
}

/// The messageIds of events.
pub fn message_ids(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["messageId"].as_str().unwrap().to_string())
        .collect()
}

/// POST `{"batch": events}` to `/v1/batch`.
pub async fn post_batch(
    http: &reqwest::Client,
    c: &Collector,
    events: &[serde_json::Value],
) -> reqwest::Response {
    http.post(c.url("/v1/batch"))
        .body(serde_json::json!({ "batch": events }).to_string())
        .send()
        .await
        .unwrap()
}

/// After a stretch of refusals (503), post 10-event batches until one is accepted again;
/// return its messageIds. Panics with `what` if that takes more than 30 s.
pub async fn post_until_accepted(
    http: &reqwest::Client,
    c: &Collector,
    run: &str,
    what: &str,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events: Vec<serde_json::Value> = (0..10).map(|i| track(10_000_000 + i, run)).collect();
        if post_batch(http, c, &events).await.status() == 200 {
            return message_ids(&events);
        }
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
