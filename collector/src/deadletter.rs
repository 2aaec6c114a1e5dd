//! Rejected events with their reasons, so nothing a client sent vanishes silently. Ingest
//! writes events that failed validation here; sinks write events they can never deliver.
//! Files are NDJSON, one per UTC day: `{data-dir}/deadletter/YYYY-MM-DD.ndjson`, each line
//! `{"at":..., "stage":..., "reason":..., "event":...}`. Writes are fsync'd. The directory
//! has a byte budget; past it, dead letters are counted in metrics and dropped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;

/// One rejected event.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Where it was rejected: "validate", "sink:eventhubs", ...
    pub stage: &'static str,
    pub reason: String,
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
            event,
        }
    }
}

#[derive(Clone)]
pub struct DeadLetters {
    inner: Arc<Mutex<State>>,
}

struct State {
    dir: PathBuf,
    max_bytes: u64,
    used: u64,
    day: String,
    file: Option<File>,
}

impl DeadLetters {
    pub fn open(dir: PathBuf, max_bytes: u64) -> std::io::Result<DeadLetters> {
        std::fs::create_dir_all(&dir)?;
        let mut used = 0;
        for e in std::fs::read_dir(&dir)? {
            used += e?.metadata()?.len();
        }
        Ok(DeadLetters {
            inner: Arc::new(Mutex::new(State {
                dir,
                max_bytes,
                used,
                day: String::new(),
                file: None,
            })),
        })
    }

    /// Append and fsync. Runs on a blocking thread; errors are logged, never returned to
    /// clients (the events were already refused).
    pub async fn write(&self, letters: Vec<DeadLetter>) {
        if letters.is_empty() {
            return;
        }
        for l in &letters {
            metrics::counter!("collector_dead_letters_total", "stage" => l.stage).increment(1);
        }
        let inner = self.inner.clone();
        let res = tokio::task::spawn_blocking(move || inner.lock().unwrap().append(&letters)).await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "dead-letter write failed"),
            Err(e) => tracing::error!(error = %e, "dead-letter task failed"),
        }
    }
}

impl State {
    fn append(&mut self, letters: &[DeadLetter]) -> std::io::Result<()> {
        let now = chrono::Utc::now();
        let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut buf = Vec::new();
        for l in letters {
            #[derive(serde::Serialize)]
            struct Line<'a> {
                at: &'a str,
                stage: &'a str,
                reason: &'a str,
                event: &'a RawValue,
            }
            serde_json::to_writer(
                &mut buf,
                &Line {
                    at: &at,
                    stage: l.stage,
                    reason: &l.reason,
                    event: &l.event,
                },
            )?;
            buf.push(b'\n');
        }
        if self.used + buf.len() as u64 > self.max_bytes {
            metrics::counter!("collector_dead_letters_dropped_total")
                .increment(letters.len() as u64);
            tracing::warn!(
                count = letters.len(),
                "dead-letter budget spent; dropping rejected events"
            );
            return Ok(());
        }
        let day = now.format("%Y-%m-%d").to_string();
        if self.file.is_none() || self.day != day {
            let path = self.dir.join(format!("{day}.ndjson"));
            self.file = Some(OpenOptions::new().create(true).append(true).open(path)?);
            self.day = day;
        }
        let f = self.file.as_mut().unwrap();
        f.write_all(&buf)?;
        f.sync_data()?;
        self.used += buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
