//! The default sink: Avro files laid out exactly as Azure Event Hubs Capture lays them out in
//! a Data Lake, `{dir}/{namespace}/{eventhub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}.avro`,
//! so the same readers and jobs work on local files and on the cloud.
//!
//! Each delivery is one Avro block, fsync'd before the spool cursor moves. Files roll by age
//! and size; open files carry a `.tmp` suffix until they roll or the collector shuts down.

mod file;
pub mod recover;
pub mod schema;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use apache_avro::Codec;
use chrono::{DateTime, Utc};

use crate::sinks::{Batching, Sink, SinkError};
use crate::spool::Record;
use file::CaptureFile;

/// Where capture files go, how they are named and when they roll.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    pub dir: PathBuf,
    pub namespace: String,
    pub eventhub: String,
    pub roll_after: Duration,
    pub roll_bytes: u64,
    pub codec: CaptureCodec,
}

/// Avro block compression of the capture files.
#[derive(clap::ValueEnum, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CaptureCodec {
    Deflate,
    #[default]
    Null,
}

/// Local capture has one spool, hence one partition.
const PARTITION: &str = "0";

pub struct CaptureSink {
    cfg: CaptureConfig,
    codec: Codec,
    current: Option<CaptureFile>,
    /// Time in the last file name used; names must strictly increase.
    last_name_time: Option<DateTime<Utc>>,
}

impl CaptureSink {
    pub fn new(cfg: CaptureConfig) -> CaptureSink {
        let codec = match cfg.codec {
            CaptureCodec::Deflate => Codec::Deflate(Default::default()),
            CaptureCodec::Null => Codec::Null,
        };
        CaptureSink {
            cfg,
            codec,
            current: None,
            last_name_time: None,
        }
    }

    /// Root of this hub's partition directories.
    pub fn hub_dir(&self) -> PathBuf {
        self.cfg
            .dir
            .join(&self.cfg.namespace)
            .join(&self.cfg.eventhub)
    }

    fn next_path(&mut self) -> PathBuf {
        let mut t = Utc::now().with_nanosecond_zero();
        if let Some(last) = self.last_name_time {
            if t <= last {
                t = last
                    .checked_add_signed(chrono::Duration::seconds(1))
                    .unwrap_or(t);
            }
        }
        self.last_name_time = Some(t);
        self.hub_dir()
            .join(PARTITION)
            .join(t.format("%Y/%m/%d/%H/%M/%S.avro").to_string())
    }

    /// Roll after a delivery that already succeeded: a failure here must not fail (and so
    /// repeat) the delivery. The file keeps its `.tmp` name and is recovered on the next start.
    fn roll_or_warn(&mut self) {
        if let Err(e) = self.roll() {
            tracing::warn!(error = %format!("{e:#}"), "could not finish a capture file");
        }
    }

    fn roll(&mut self) -> anyhow::Result<()> {
        if let Some(f) = self.current.take() {
            let path = f.finish()?;
            metrics::counter!("collector_capture_files_total").increment(1);
            tracing::debug!(file = %path.display(), "capture file finished");
        }
        Ok(())
    }
}

trait ZeroNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl ZeroNanos for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        chrono::Timelike::with_nanosecond(&self, 0).unwrap_or(self)
    }
}

impl Sink for CaptureSink {
    fn name(&self) -> &'static str {
        "capture"
    }

    /// Capture files are read after they roll, minutes later: larger blocks cost less.
    fn batching(&self) -> Batching {
        Batching {
            max_records: 1000,
            max_bytes: 4 << 20,
            linger: Duration::from_millis(200),
        }
    }

    async fn recover(&mut self) -> anyhow::Result<Option<u64>> {
        let dir = self.hub_dir();
        let codec = self.codec;
        let found = tokio::task::spawn_blocking(move || recover::recover(&dir, codec)).await??;
        if let Some(newest) = recover::find_files(&self.hub_dir(), ".avro")?.pop() {
            // Keep new names after the newest existing file even if the clock went back.
            self.last_name_time = name_time(&newest, &self.hub_dir().join(PARTITION));
        }
        Ok(found.resume_at)
    }

    async fn deliver<'a>(&'a mut self, records: &'a [Record]) -> Result<(), SinkError> {
        let result = tokio::task::block_in_place(|| -> anyhow::Result<()> {
            if self
                .current
                .as_ref()
                .is_some_and(|f| f.opened.elapsed() >= self.cfg.roll_after)
            {
                self.roll_or_warn();
            }
            if self.current.is_none() {
                let path = self.next_path();
                self.current = Some(CaptureFile::create(path, self.codec)?);
            }
            let file = self.current.as_mut().unwrap();
            if let Err(e) = file.append(records) {
                // Keep only whole, fsync'd blocks; the retry goes to a new file.
                if let Some(f) = self.current.take() {
                    if let Err(a) = f.abandon() {
                        tracing::error!(error = %format!("{a:#}"), "could not clean up a failed capture file; it is recovered on the next start");
                    }
                }
                return Err(e);
            }
            if file.bytes() >= self.cfg.roll_bytes {
                self.roll_or_warn();
            }
            Ok(())
        });
        result.map_err(SinkError::transient)
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        if self
            .current
            .as_ref()
            .is_some_and(|f| f.opened.elapsed() >= self.cfg.roll_after)
        {
            tokio::task::block_in_place(|| self.roll())?;
        }
        Ok(())
    }

    async fn close(&mut self) -> anyhow::Result<()> {
        tokio::task::block_in_place(|| self.roll()).context("finishing the open capture file")
    }
}

/// The UTC time encoded in a capture path `.../{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}.avro`.
fn name_time(path: &std::path::Path, partition_dir: &std::path::Path) -> Option<DateTime<Utc>> {
    let rel = path
        .strip_prefix(partition_dir)
        .ok()?
        .to_str()?
        .strip_suffix(".avro")?;
    // Only names this sink writes: a foreign `+262143/...` would push every new name past the
    // calendar.
    chrono::NaiveDateTime::parse_from_str(rel, "%Y/%m/%d/%H/%M/%S")
        .ok()
        .map(|t| t.and_utc())
        .filter(|t| crate::ingest::validate::in_calendar(*t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &std::path::Path) -> CaptureConfig {
        CaptureConfig {
            dir: dir.to_path_buf(),
            namespace: "local".into(),
            eventhub: "clickstream".into(),
            roll_after: Duration::from_secs(300),
            roll_bytes: 1 << 30,
            codec: CaptureCodec::Deflate,
        }
    }

    fn records(seqs: std::ops::Range<u64>) -> Vec<Record> {
        seqs.map(|i| Record {
            seq: i,
            payload: format!(r#"{{"type":"track","event":"E{i}","anonymousId":"a"}}"#).into(),
        })
        .collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn writes_rolls_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = CaptureSink::new(CaptureConfig {
            roll_bytes: 300,
            ..cfg(dir.path())
        });
        assert_eq!(sink.recover().await.unwrap(), None);
        sink.deliver(&records(0..5)).await.unwrap();
        sink.deliver(&records(5..9)).await.unwrap();
        sink.close().await.unwrap();
        let files = recover::find_files(dir.path(), ".avro").unwrap();
        assert_eq!(files.len(), 2, "rolled by size: {files:?}");
        assert!(files[0].starts_with(dir.path().join("local/clickstream/0")));
        assert!(
            name_time(&files[0], &dir.path().join("local/clickstream/0")).unwrap()
                < name_time(&files[1], &dir.path().join("local/clickstream/0")).unwrap()
        );
        let seqs: Vec<u64> = files
            .iter()
            .flat_map(|f| recover::read_records(f).unwrap().0)
            .filter_map(|v| schema::sequence_number(&v))
            .collect();
        assert_eq!(seqs, (0..9).collect::<Vec<_>>());
        let mut again = CaptureSink::new(cfg(dir.path()));
        assert_eq!(again.recover().await.unwrap(), Some(9));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn salvages_a_torn_tmp_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = CaptureSink::new(cfg(dir.path()));
        sink.deliver(&records(0..3)).await.unwrap();
        sink.deliver(&records(3..6)).await.unwrap();
        let tmp = sink.current.as_ref().unwrap().tmp_path.clone();
        drop(sink); // a crash: no close
        let len = std::fs::metadata(&tmp).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&tmp).unwrap();
        f.set_len(len - 5).unwrap(); // tear the second block
        let mut sink = CaptureSink::new(cfg(dir.path()));
        assert_eq!(sink.recover().await.unwrap(), Some(3));
        assert!(!tmp.exists());
        let files = recover::find_files(dir.path(), ".avro").unwrap();
        let (values, whole) = recover::read_records(&files[0]).unwrap();
        assert!(whole);
        assert_eq!(values.len(), 3);
    }
}
