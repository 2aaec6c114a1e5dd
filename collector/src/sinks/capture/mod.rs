//! The default sink: Avro files laid out exactly as Azure Event Hubs Capture lays them out in
//! a Data Lake, `{namespace}/{eventhub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}.avro`, so the
//! same readers and jobs work on local files and on the cloud.
//!
//! Files are always built locally; where they end up is the [`Destination`]:
//! - a local directory: each delivery is one Avro block, fsync'd before the spool cursor
//!   moves; open files carry a `.tmp` suffix until they roll, and a crash is recovered from
//!   the sequence numbers in the files ([`recover`]);
//! - an object store ([`store`]): blocks are written to a staging file without fsync, and the
//!   file is uploaded whole when it rolls. The spool keeps every record until the upload that
//!   holds it is acknowledged ([`Sink::durable_until`]), so a crash only loses staging files,
//!   which are rebuilt from the spool. A journal written before each upload ([`journal`])
//!   says after a restart whether that upload had completed, so it is neither lost nor made
//!   twice.

mod file;
mod journal;
pub mod recover;
pub mod schema;
pub mod store;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use apache_avro::Codec;
use chrono::{DateTime, Utc};

use crate::sinks::{Batching, Sink, SinkError};
use crate::spool::Record;
use file::CaptureFile;
pub use store::{parse_destination, Destination};

/// Where capture files go, how they are named and when they roll.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Where files are built: the destination directory itself, or a staging directory for
    /// files on their way to an object store.
    pub dir: PathBuf,
    /// The object store files are uploaded to; `None`: they stay in `dir`.
    pub store: Option<url::Url>,
    pub namespace: String,
    pub eventhub: String,
    /// Partition directory in the path: each collector writing to one store needs its own.
    pub partition: String,
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

/// A rolled file waiting for its upload.
struct Finished {
    local: PathBuf,
    /// Time in its local name; the object name is at least this.
    time: DateTime<Utc>,
    seqs: std::ops::Range<u64>,
    /// The object name (relative to the prefix) and its time, once an upload was tried: a
    /// retry goes to the same name, so an upload that succeeded unseen is not made twice.
    object: Option<(String, DateTime<Utc>)>,
}

/// Uploading: the open store, the file waiting, and when a failed upload may be retried.
struct Uploads {
    store: store::Store,
    pending: Option<Finished>,
    retry_at: Option<(Instant, String)>,
    failures: u32,
    /// Time in the newest object name used; names must strictly increase.
    last_time: Option<DateTime<Utc>>,
    /// Sequence number after the last record taken into a file.
    taken_until: Option<u64>,
    /// Records from here are in a file that could not be finished: see `keep_in_spool`.
    stuck_from: Option<u64>,
}

pub struct CaptureSink {
    cfg: CaptureConfig,
    codec: Codec,
    current: Option<CaptureFile>,
    /// Time in the last file name used; names must strictly increase.
    last_name_time: Option<DateTime<Utc>>,
    uploads: Option<Uploads>,
}

impl CaptureSink {
    /// A sink for `cfg`; opens the object store if there is one (credentials are read from
    /// the environment now, so a bad setting fails at start).
    pub fn new(cfg: CaptureConfig) -> anyhow::Result<CaptureSink> {
        let codec = match cfg.codec {
            CaptureCodec::Deflate => Codec::Deflate(Default::default()),
            CaptureCodec::Null => Codec::Null,
        };
        let uploads = match &cfg.store {
            Some(url) => Some(Uploads {
                store: store::Store::open(url).with_context(|| {
                    format!("opening the capture store {}", store::display_url(url))
                })?,
                pending: None,
                retry_at: None,
                failures: 0,
                last_time: None,
                taken_until: None,
                stuck_from: None,
            }),
            None => None,
        };
        Ok(CaptureSink {
            cfg,
            codec,
            current: None,
            last_name_time: None,
            uploads,
        })
    }

    /// Root of this hub's partition directories.
    pub fn hub_dir(&self) -> PathBuf {
        self.cfg
            .dir
            .join(&self.cfg.namespace)
            .join(&self.cfg.eventhub)
    }

    fn partition_dir(&self) -> PathBuf {
        self.hub_dir().join(&self.cfg.partition)
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
        self.partition_dir()
            .join(t.format("%Y/%m/%d/%H/%M/%S.avro").to_string())
    }

    /// Roll after a delivery that already succeeded: a failure here must not fail (and so
    /// repeat) the delivery. The file keeps its `.tmp` name and is recovered on the next start.
    fn roll_or_warn(&mut self) {
        if let Err(e) = self.roll() {
            tracing::warn!(error = %format!("{e:#}"), "could not finish a capture file");
        }
    }

    /// Finish the open file: in place, or as the file waiting for upload (when none waits).
    fn roll(&mut self) -> anyhow::Result<()> {
        if self.uploads.as_ref().is_some_and(|u| u.pending.is_some()) {
            anyhow::bail!("a capture file is still waiting for its upload");
        }
        let Some(f) = self.current.take() else {
            return Ok(());
        };
        let seqs = f.seqs.clone();
        match f.finish() {
            Ok(path) => self.finished(path, seqs),
            Err(e) => {
                self.keep_in_spool(seqs);
                Err(e)
            }
        }
    }

    /// A file is complete at `path`: count it, or hand it to the uploads.
    fn finished(
        &mut self,
        path: PathBuf,
        seqs: Option<std::ops::Range<u64>>,
    ) -> anyhow::Result<()> {
        let time = name_time(&path, &self.partition_dir());
        let Some(up) = &mut self.uploads else {
            metrics::counter!("collector_capture_files_total").increment(1);
            tracing::debug!(file = %path.display(), "capture file finished");
            return Ok(());
        };
        match (seqs, time) {
            (Some(seqs), Some(time)) => {
                debug_assert!(up.pending.is_none(), "one file waits for upload at a time");
                up.pending = Some(Finished {
                    local: path,
                    time,
                    seqs,
                    object: None,
                });
            }
            // Nothing in it: nothing to upload.
            _ => std::fs::remove_file(&path)?,
        }
        Ok(())
    }

    /// Upload the waiting file, if any, unless an earlier failure's backoff has not passed
    /// (`force` ignores it). On success its records may leave the spool.
    async fn upload(&mut self, force: bool) -> Result<(), SinkError> {
        let (ns, hub, partition) = (
            self.cfg.namespace.clone(),
            self.cfg.eventhub.clone(),
            self.cfg.partition.clone(),
        );
        let rel_of = move |t: DateTime<Utc>| relative_name(&ns, &hub, &partition, t);
        let staging = self.cfg.dir.clone();
        let Some(up) = &mut self.uploads else {
            return Ok(());
        };
        let Some(mut file) = up.pending.take() else {
            return Ok(());
        };
        if let Some((at, why)) = &up.retry_at {
            let now = Instant::now();
            if !force && *at > now {
                let error = anyhow::anyhow!("waiting to retry the upload: {why}");
                let retry_after = Some(*at - now);
                up.pending = Some(file);
                return Err(SinkError {
                    delivered: 0,
                    error,
                    retry_after,
                });
            }
        }
        let started = Instant::now();
        let result = upload_file(up, &mut file, &staging, rel_of).await;
        metrics::histogram!("collector_capture_upload_seconds")
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok((name, bytes)) => {
                metrics::counter!("collector_capture_uploads_total", "result" => "ok").increment(1);
                metrics::counter!("collector_capture_upload_bytes_total").increment(bytes);
                metrics::counter!("collector_capture_files_total").increment(1);
                tracing::info!(object = %name, bytes, records = file.seqs.end - file.seqs.start, "capture file uploaded");
                if let Err(e) = std::fs::remove_file(&file.local) {
                    tracing::warn!(file = %file.local.display(), error = %e, "could not delete an uploaded staging file");
                }
                up.retry_at = None;
                up.failures = 0;
                Ok(())
            }
            Err(e) => {
                metrics::counter!("collector_capture_uploads_total", "result" => "error")
                    .increment(1);
                up.pending = Some(file);
                up.failures += 1;
                let wait = upload_backoff(up.failures);
                let why = format!("{e:#}");
                up.retry_at = Some((Instant::now() + wait, why));
                Err(SinkError {
                    delivered: 0,
                    error: e,
                    retry_after: Some(wait),
                })
            }
        }
    }

    /// Recovery when files go to a store: staging files are dropped (the spool still holds
    /// their records), and the journal tells whether the last upload completed.
    async fn recover_uploads(&mut self) -> anyhow::Result<Option<u64>> {
        let staging = self.cfg.dir.clone();
        let hub = self.hub_dir();
        tokio::task::block_in_place(|| -> anyhow::Result<()> {
            for f in recover::find_files(&hub, ".avro.tmp")?
                .into_iter()
                .chain(recover::find_files(&hub, ".avro")?)
            {
                std::fs::remove_file(&f).with_context(|| format!("removing {}", f.display()))?;
            }
            Ok(())
        })?;
        let up = self.uploads.as_mut().expect("store mode");
        up.pending = None;
        let Some(last) = journal::read(&staging)? else {
            return Ok(None);
        };
        let name = up.store.path(&last.name);
        up.last_time = last.time();
        self.last_name_time = up.last_time;
        match up.store.size_of(&name).await? {
            Some(size) if size == last.bytes => {
                tracing::info!(object = %name, "the last upload before the restart completed");
                up.taken_until = Some(last.end_seq);
                Ok(Some(last.end_seq))
            }
            // Uploads go one at a time, in order: everything before this file is stored.
            _ => {
                tracing::info!(object = %name, "the last upload before the restart did not complete; its records are uploaded again from the spool");
                up.taken_until = Some(last.first_seq);
                Ok(Some(last.first_seq))
            }
        }
    }
}

/// Upload `file` under a free object name after the newest one used (the name of an earlier
/// try, if there was one), journalled first. Returns the object name and bytes.
async fn upload_file(
    up: &mut Uploads,
    file: &mut Finished,
    staging: &Path,
    rel_of: impl Fn(DateTime<Utc>) -> String,
) -> anyhow::Result<(object_store::path::Path, u64)> {
    let bytes = std::fs::metadata(&file.local)
        .with_context(|| format!("reading {}", file.local.display()))?
        .len();
    if let Some((rel, _)) = &file.object {
        let name = up.store.path(rel);
        match up.store.size_of(&name).await? {
            // The earlier try succeeded but its answer was lost.
            Some(size) if size == bytes => return Ok((name, bytes)),
            Some(_) => file.object = None,
            None => {}
        }
    }
    let (rel, t) = match file.object.clone() {
        Some(named) => named,
        None => {
            let mut t = file.time;
            if let Some(last) = up.last_time {
                t = t.max(last + chrono::Duration::seconds(1));
            }
            // Another writer (a collector given the same partition) may hold a name: never
            // overwrite it.
            while up
                .store
                .size_of(&up.store.path(&rel_of(t)))
                .await?
                .is_some()
            {
                tracing::warn!(object = %up.store.path(&rel_of(t)), "a capture object of that name exists: does another collector use this partition? taking the next second");
                t += chrono::Duration::seconds(1);
            }
            let rel = rel_of(t);
            journal::write(
                staging,
                &journal::Upload {
                    name: rel.clone(),
                    // Records of a file that could not be finished are before this one and
                    // not stored: a restart must go back to them, whatever becomes of this.
                    first_seq: up.stuck_from.unwrap_or(file.seqs.start),
                    end_seq: up.stuck_from.unwrap_or(file.seqs.end),
                    bytes,
                },
            )?;
            // Names stay increasing whatever becomes of this upload.
            up.last_time = Some(t);
            file.object = Some((rel.clone(), t));
            (rel, t)
        }
    };
    debug_assert!(up.last_time >= Some(t));
    let name = up.store.path(&rel);
    tracing::info!(object = %name, bytes, "capture upload started");
    let sent = up.store.upload(&file.local, &name).await?;
    anyhow::ensure!(
        sent == bytes,
        "uploaded {sent} bytes of {}'s {bytes}",
        file.local.display()
    );
    Ok((name, bytes))
}

/// `{namespace}/{eventhub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}.avro` for time `t`.
fn relative_name(namespace: &str, eventhub: &str, partition: &str, t: DateTime<Utc>) -> String {
    format!(
        "{namespace}/{eventhub}/{partition}/{}",
        t.format("%Y/%m/%d/%H/%M/%S.avro")
    )
}

/// Exponential backoff with full jitter between failed uploads: 1 s doubling to 60 s.
fn upload_backoff(failures: u32) -> Duration {
    let cap = Duration::from_secs(1)
        .saturating_mul(1 << failures.saturating_sub(1).min(6))
        .min(Duration::from_secs(60));
    let nanos = cap.as_nanos() as u64;
    let r = uuid::Uuid::new_v4().as_u64_pair().0 % (nanos / 2 + 1);
    Duration::from_nanos(nanos / 2 + r)
}

trait ZeroNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl ZeroNanos for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        chrono::Timelike::with_nanosecond(&self, 0).unwrap_or(self)
    }
}

impl CaptureSink {
    fn aged(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|f| f.opened.elapsed() >= self.cfg.roll_after)
    }

    /// Has an upload failed and its backoff not passed?
    fn upload_waits(&self) -> bool {
        self.uploads
            .as_ref()
            .and_then(|u| u.retry_at.as_ref())
            .is_some_and(|(at, _)| *at > Instant::now())
    }

    /// Records from `seqs` are in a file that could not be finished: they stay in the spool
    /// (and are rebuilt into a file at the next start) instead of being counted as taken.
    fn keep_in_spool(&mut self, seqs: Option<std::ops::Range<u64>>) {
        if let (Some(up), Some(seqs)) = (&mut self.uploads, seqs) {
            up.stuck_from = Some(up.stuck_from.map_or(seqs.start, |s| s.min(seqs.start)));
            tracing::error!(from = seqs.start, "a staging file could not be finished; its records stay in the spool until a restart uploads them");
        }
    }

    /// Append `records` to the open file (opening one if needed), rolling it when it is big.
    fn append(&mut self, records: &[Record]) -> anyhow::Result<()> {
        if self.aged() {
            self.roll_or_warn();
        }
        if self.current.is_none() {
            let path = self.next_path();
            let sync = self.uploads.is_none();
            self.current = Some(CaptureFile::create(path, self.codec, sync)?);
        }
        let file = self.current.as_mut().unwrap();
        if let Err(e) = file.append(records) {
            // Keep only whole (fsync'd) blocks; the retry goes to a new file.
            if let Some(f) = self.current.take() {
                let seqs = f.seqs.clone();
                match f.abandon() {
                    Ok(Some(path)) => {
                        if let Err(a) = self.finished(path, seqs.clone()) {
                            tracing::error!(error = %format!("{a:#}"), "could not keep a failed capture file");
                            self.keep_in_spool(seqs);
                        }
                    }
                    Ok(None) => {}
                    Err(a) => {
                        tracing::error!(error = %format!("{a:#}"), "could not clean up a failed capture file; it is recovered on the next start");
                        self.keep_in_spool(seqs);
                    }
                }
            }
            return Err(e);
        }
        if let (Some(up), Some(last)) = (&mut self.uploads, records.last()) {
            up.taken_until = Some(last.seq + 1);
        }
        if file.bytes() >= self.cfg.roll_bytes {
            self.roll_or_warn();
        }
        Ok(())
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
        if self.uploads.is_some() {
            return self.recover_uploads().await;
        }
        let dir = self.hub_dir();
        let codec = self.codec;
        let found = tokio::task::spawn_blocking(move || recover::recover(&dir, codec)).await??;
        if let Some(newest) = recover::find_files(&self.partition_dir(), ".avro")?.pop() {
            // Keep new names after the newest existing file even if the clock went back.
            self.last_name_time = name_time(&newest, &self.partition_dir());
        }
        Ok(found.resume_at)
    }

    async fn deliver<'a>(&'a mut self, records: &'a [Record]) -> Result<(), SinkError> {
        if self.uploads.is_some() {
            // A file waiting for its upload goes first: one at a time, so the staging
            // directory holds at most two files and a store outage backs up into the spool.
            self.upload(false).await?;
            if self.aged() {
                tokio::task::block_in_place(|| self.roll()).map_err(SinkError::transient)?;
                self.upload(false).await?;
            }
        }
        tokio::task::block_in_place(|| self.append(records)).map_err(SinkError::transient)?;
        if self.uploads.is_some() {
            // Rolled by size: upload now. A failure is retried before the next delivery.
            if let Err(e) = self.upload(true).await {
                tracing::warn!(error = %format!("{:#}", e.error), "capture upload failed; will retry");
            }
        }
        Ok(())
    }

    fn durable_until(&self) -> Option<u64> {
        let up = self.uploads.as_ref()?;
        [
            up.stuck_from,
            up.pending.as_ref().map(|p| p.seqs.start),
            self.current
                .as_ref()
                .and_then(|f| f.seqs.as_ref())
                .map(|s| s.start),
            up.taken_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    async fn tick(&mut self) -> anyhow::Result<()> {
        let Some(up) = &self.uploads else {
            if self.aged() {
                tokio::task::block_in_place(|| self.roll())?;
            }
            return Ok(());
        };
        if self.upload_waits() {
            return Ok(());
        }
        if up.pending.is_some() {
            self.upload(false).await.map_err(|e| e.error)?;
        }
        if self.aged() {
            tokio::task::block_in_place(|| self.roll())?;
            self.upload(false).await.map_err(|e| e.error)?;
        }
        Ok(())
    }

    async fn close(&mut self) -> anyhow::Result<()> {
        if self.uploads.is_none() {
            return tokio::task::block_in_place(|| self.roll())
                .context("finishing the open capture file");
        }
        // Whatever is not uploaded now stays in the spool for the next start.
        self.upload(true).await.map_err(|e| e.error)?;
        tokio::task::block_in_place(|| self.roll()).context("finishing the open capture file")?;
        self.upload(true).await.map_err(|e| e.error)
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
            store: None,
            namespace: "local".into(),
            eventhub: "clickstream".into(),
            partition: "0".into(),
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
        })
        .unwrap();
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
        let mut again = CaptureSink::new(cfg(dir.path())).unwrap();
        assert_eq!(again.recover().await.unwrap(), Some(9));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn salvages_a_torn_tmp_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = CaptureSink::new(cfg(dir.path())).unwrap();
        sink.deliver(&records(0..3)).await.unwrap();
        sink.deliver(&records(3..6)).await.unwrap();
        let tmp = sink.current.as_ref().unwrap().tmp_path.clone();
        drop(sink); // a crash: no close
        let len = std::fs::metadata(&tmp).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&tmp).unwrap();
        f.set_len(len - 5).unwrap(); // tear the second block
        let mut sink = CaptureSink::new(cfg(dir.path())).unwrap();
        assert_eq!(sink.recover().await.unwrap(), Some(3));
        assert!(!tmp.exists());
        let files = recover::find_files(dir.path(), ".avro").unwrap();
        let (values, whole) = recover::read_records(&files[0]).unwrap();
        assert!(whole);
        assert_eq!(values.len(), 3);
    }

    /// A sink that uploads to `store`, building files in `staging`.
    fn store_sink(staging: &std::path::Path, store: &store::Store, roll_bytes: u64) -> CaptureSink {
        let mut sink = CaptureSink::new(CaptureConfig {
            roll_bytes,
            ..cfg(staging)
        })
        .unwrap();
        sink.uploads = Some(Uploads {
            store: store.clone(),
            pending: None,
            retry_at: None,
            failures: 0,
            last_time: None,
            taken_until: None,
            stuck_from: None,
        });
        sink
    }

    /// Every record in every object under the prefix: (object name, sequence numbers).
    async fn objects(store: &store::Store) -> Vec<(String, Vec<u64>)> {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        for (name, _) in store.list("", ".avro").await.unwrap() {
            let local = dir.path().join("f.avro");
            store.download(&name, &local).await.unwrap();
            let (values, whole) = recover::read_records(&local).unwrap();
            assert!(whole);
            let seqs = values.iter().filter_map(schema::sequence_number).collect();
            out.push((name.to_string(), seqs));
        }
        out
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn uploads_when_a_file_rolls_and_holds_the_spool_until_then() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::Store::memory();
        let mut sink = store_sink(dir.path(), &store, 1 << 30);
        assert_eq!(sink.recover().await.unwrap(), None);
        sink.deliver(&records(0..5)).await.unwrap();
        assert_eq!(
            sink.durable_until(),
            Some(0),
            "not uploaded: the spool keeps it"
        );
        assert!(
            objects(&store).await.is_empty(),
            "nothing visible before the roll"
        );
        sink.close().await.unwrap();
        assert_eq!(sink.durable_until(), Some(5));
        let got = objects(&store).await;
        assert_eq!(got.len(), 1);
        assert!(
            got[0].0.starts_with("lake/local/clickstream/0/") && got[0].0.ends_with(".avro"),
            "{got:?}"
        );
        assert_eq!(got[0].1, (0..5).collect::<Vec<_>>());
        assert!(
            recover::find_files(dir.path(), ".avro").unwrap().is_empty(),
            "the staging file is gone once uploaded"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_restart_trusts_the_journal_only_if_the_object_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::Store::memory();
        // Rolls (by size) and uploads [0, 3) and [3, 6), then dies with [6, 8) staged.
        let mut sink = store_sink(dir.path(), &store, 1);
        sink.recover().await.unwrap();
        sink.deliver(&records(0..3)).await.unwrap();
        sink.deliver(&records(3..6)).await.unwrap();
        assert_eq!(sink.durable_until(), Some(6));
        drop(sink);
        let got = objects(&store).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].0 < got[1].0, "names increase");

        // The cursor may lag (killed before it was committed): resume after the last object.
        let mut again = store_sink(dir.path(), &store, 1);
        assert_eq!(again.recover().await.unwrap(), Some(6));

        // The last upload never completed: resume at its first record, nothing skipped.
        store
            .delete(&object_store::path::Path::from(got[1].0.as_str()))
            .await;
        let mut again = store_sink(dir.path(), &store, 1);
        assert_eq!(again.recover().await.unwrap(), Some(3));
        again.deliver(&records(3..6)).await.unwrap();
        let names: Vec<String> = objects(&store).await.into_iter().map(|o| o.0).collect();
        assert_eq!(names.len(), 2);
        assert!(names[1] > got[0].0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn never_overwrites_another_writers_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::Store::memory();
        let now = Utc::now().with_nanosecond_zero();
        for s in 0..4 {
            let t = now + chrono::Duration::seconds(s);
            let name = store.path(&relative_name("local", "clickstream", "0", t));
            store.put(&name, b"another writer's file").await;
        }
        let mut sink = store_sink(dir.path(), &store, 1 << 30);
        sink.recover().await.unwrap();
        sink.deliver(&records(0..2)).await.unwrap();
        sink.close().await.unwrap();
        let mine = store.list("", ".avro").await.unwrap();
        assert_eq!(mine.len(), 5);
        assert!(mine[..4].iter().all(|(_, size)| *size == 21), "{mine:?}");
        let last = relative_name(
            "local",
            "clickstream",
            "0",
            now + chrono::Duration::seconds(4),
        );
        assert!(mine[4].0.as_ref() >= store.path(&last).as_ref(), "{mine:?}");
    }
}
