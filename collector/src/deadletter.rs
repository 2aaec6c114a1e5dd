//! Rejected events with their reasons, so nothing a client sent vanishes silently. Ingest
//! writes events that failed validation here; sinks write events they can never deliver, and
//! spool records that fail their checksum. Files are NDJSON, one per UTC day:
//! `{data-dir}/deadletter/YYYY-MM-DD.ndjson`, each line
//! `{"at":..., "stage":..., "reason":..., "event":...}` (plus `violations` for stage `plan`).
//!
//! Writes are group-committed, like the spool's: one thread takes the letters of every request
//! that arrives while it writes, appends them with one write and one `fdatasync`, then answers
//! them all. The directory has a byte budget; past it, dead letters are counted in metrics and
//! dropped. The budget counts the files in the directory: it is counted again when a new day's
//! file starts and at most every [`RECOUNT_EVERY`] while letters come, and the day's file is
//! opened again each time, so files that an operator or a retention job removes make room
//! without a restart (and a removed day's file is started afresh, not written unlinked).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

/// How often the budget is counted again from the files while letters are written.
pub const RECOUNT_EVERY: Duration = Duration::from_secs(5);

/// Requests whose letters may wait for the writer at once; more wait to be taken.
const QUEUE: usize = 1024;

/// A group stops taking more letters at about this many bytes.
const GROUP_BYTES: usize = 4 << 20;

/// One rejected event.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Where it was rejected: "validate", "spool", "sink:eventhubs", ...
    pub stage: &'static str,
    pub reason: String,
    /// What the tracking plan found wrong (stage "plan").
    pub violations: Vec<crate::plan::Violation>,
    /// The event as received (JSON), or a JSON string holding the raw text if it was not JSON.
    pub event: Box<RawValue>,
}

impl DeadLetter {
    /// Build from raw bytes that may or may not be JSON.
    pub fn from_bytes(stage: &'static str, reason: impl Into<String>, raw: &[u8]) -> DeadLetter {
        let event = std::str::from_utf8(raw)
            .ok()
            .and_then(|s| serde_json::from_str::<Box<RawValue>>(s).ok())
            .unwrap_or_else(|| {
                let lossy = String::from_utf8_lossy(raw);
                RawValue::from_string(serde_json::to_string(&lossy).unwrap()).unwrap()
            });
        DeadLetter {
            stage,
            reason: reason.into(),
            violations: Vec::new(),
            event,
        }
    }
}

/// Letters to write, and who to tell when they are on disk.
type Job = (Vec<DeadLetter>, oneshot::Sender<()>);

/// A handle to the dead-letter store; clones share one writer thread, which ends when the
/// last handle is dropped.
#[derive(Clone)]
pub struct DeadLetters {
    tx: mpsc::Sender<Job>,
}

impl DeadLetters {
    pub fn open(dir: PathBuf, max_bytes: u64) -> std::io::Result<DeadLetters> {
        std::fs::create_dir_all(&dir)?;
        let mut store = Store {
            used: 0,
            counted: Instant::now(),
            dir,
            max_bytes,
            day: String::new(),
            file: None,
        };
        store.recount()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("dead-letters".into())
            .spawn(move || store.run(rx))?;
        Ok(DeadLetters { tx })
    }

    /// Append and fsync; returns once the letters are on disk (or were dropped, counted, over
    /// the budget). Errors are logged, never returned: the events were already refused.
    pub async fn write(&self, letters: Vec<DeadLetter>) {
        if letters.is_empty() {
            return;
        }
        for l in &letters {
            metrics::counter!("collector_dead_letters_total", "stage" => l.stage).increment(1);
        }
        let (done, wait) = oneshot::channel();
        if self.tx.send((letters, done)).await.is_err() {
            tracing::error!("the dead-letter writer has stopped");
            return;
        }
        let _ = wait.await;
    }
}

/// The writer thread's state.
struct Store {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes in the directory, as last counted plus what was written since.
    used: u64,
    counted: Instant,
    day: String,
    file: Option<File>,
}

impl Store {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            let mut bytes = 0;
            while bytes < GROUP_BYTES {
                let Ok(job) = rx.try_recv() else { break };
                bytes += job.0.iter().map(|l| l.event.get().len()).sum::<usize>();
                group.push(job);
            }
            let letters: Vec<&DeadLetter> = group.iter().flat_map(|(l, _)| l).collect();
            if let Err(e) = self.append(&letters) {
                tracing::error!(error = %e, "dead-letter write failed");
            }
            for (_, done) in group {
                let _ = done.send(());
            }
        }
    }

    /// Sum the sizes of the files in the directory. The day's file is opened again afterwards:
    /// it may be one of those removed.
    fn recount(&mut self) -> std::io::Result<()> {
        self.file = None;
        let mut used = 0;
        for e in std::fs::read_dir(&self.dir)? {
            used += e?.metadata()?.len();
        }
        self.used = used;
        self.counted = Instant::now();
        Ok(())
    }

    fn append(&mut self, letters: &[&DeadLetter]) -> std::io::Result<()> {
        let now = chrono::Utc::now();
        let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut buf = Vec::new();
        for l in letters {
            #[derive(serde::Serialize)]
            struct Line<'a> {
                at: &'a str,
                stage: &'a str,
                reason: &'a str,
                #[serde(skip_serializing_if = "<[_]>::is_empty")]
                violations: &'a [crate::plan::Violation],
                event: &'a RawValue,
            }
            serde_json::to_writer(
                &mut buf,
                &Line {
                    at: &at,
                    stage: l.stage,
                    reason: &l.reason,
                    violations: &l.violations,
                    event: &l.event,
                },
            )?;
            buf.push(b'\n');
        }
        let day = now.format("%Y-%m-%d").to_string();
        let over = |s: &Store| s.used + buf.len() as u64 > s.max_bytes;
        if self.day != day || self.counted.elapsed() >= RECOUNT_EVERY {
            self.recount()?;
        }
        if over(self) {
            metrics::counter!("collector_dead_letters_dropped_total", "cause" => "budget")
                .increment(letters.len() as u64);
            tracing::warn!(
                count = letters.len(),
                "dead-letter budget spent; dropping rejected events"
            );
            return Ok(());
        }
        if self.file.is_none() || self.day != day {
            let path = self.dir.join(format!("{day}.ndjson"));
            self.file = Some(OpenOptions::new().create(true).append(true).open(path)?);
            self.day = day;
        }
        let f = self.file.as_mut().expect("opened above");
        f.write_all(&buf)?;
        f.sync_data()?;
        metrics::counter!("collector_dead_letter_commits_total").increment(1);
        self.used += buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_spent_budget_is_counted_again_after_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let dl = DeadLetters::open(dir.path().to_path_buf(), 300).unwrap();
        let letter = || DeadLetter::from_bytes("validate", "r", &[b'x'; 200]);
        dl.write(vec![letter()]).await;
        dl.write(vec![letter()]).await; // over the budget: dropped
        let files = || std::fs::read_dir(dir.path()).unwrap().count();
        let lines = || -> usize {
            std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| {
                    std::fs::read_to_string(e.unwrap().path())
                        .unwrap()
                        .lines()
                        .count()
                })
                .sum()
        };
        assert_eq!((files(), lines()), (1, 1));
        for e in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        std::thread::sleep(RECOUNT_EVERY);
        dl.write(vec![letter()]).await;
        assert_eq!(lines(), 1, "written again once the files were removed");
    }

    #[tokio::test]
    async fn writes_ndjson_with_reason() {
        let dir = tempfile::tempdir().unwrap();
        let dl = DeadLetters::open(dir.path().to_path_buf(), 1 << 20).unwrap();
        dl.write(vec![
            DeadLetter::from_bytes("validate", "track needs `event`", br#"{"type":"track"}"#),
            DeadLetter::from_bytes("validate", "not JSON", b"\xff{oops"),
        ])
        .await;
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["reason"], "track needs `event`");
        assert_eq!(lines[0]["event"]["type"], "track");
        assert_eq!(lines[1]["event"], "\u{fffd}{oops");
    }
}
