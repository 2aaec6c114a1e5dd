//! The durable log every 2xx stands on.
//!
//! Requests [`Spool::append`] the enriched events; the call returns only after the group-commit
//! writer has written and fsync'd them (see [`writer`]). Each sink reads the spool through its own
//! [`SpoolReader`] and persists its cursor after durable delivery, so sinks are independent and
//! delivery is at-least-once. A segment is deleted once every sink has passed it. The disk budget
//! is checked on each append: when spent, appends fail with [`AppendError::Full`] (HTTP 503).
//!
//! Layout: `{dir}/{first_seq:020}.log` segments (see [`record`] for the format) and
//! `{dir}/cursors/{sink}` holding the next sequence number that sink needs.

mod reader;
mod recent;
mod record;
mod segment;
mod writer;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

pub use reader::SpoolReader;
pub use record::Record;
use segment::SegmentInfo;

use crate::config::SpoolConfig;

/// Why an append was refused. Nothing refused was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendError {
    /// The disk budget is spent; retry later.
    Full,
    /// The collector is shutting down.
    Closed,
    /// The disk failed; the spool refuses writes until restarted.
    Io(String),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::Full => write!(f, "the spool is full"),
            AppendError::Closed => write!(f, "the collector is shutting down"),
            AppendError::Io(e) => write!(f, "spool write failed: {e}"),
        }
    }
}

/// State shared by the writer thread, the readers and the handle.
struct Shared {
    dir: PathBuf,
    cursors_dir: PathBuf,
    max_bytes: u64,
    used_bytes: AtomicU64,
    /// All segments, oldest first; the last one is being written.
    segments: Mutex<Vec<SegmentInfo>>,
    /// Sequence number after the last durable record.
    head: watch::Sender<u64>,
    /// Committed positions of the registered readers.
    cursors: Mutex<HashMap<&'static str, u64>>,
    /// The newest durable records, for readers that keep up.
    recent: Mutex<recent::Recent>,
    failed: AtomicBool,
    closed: AtomicBool,
}

/// A cheap, clonable handle to the spool.
#[derive(Clone)]
pub struct Spool {
    shared: Arc<Shared>,
    tx: mpsc::Sender<writer::Op>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

/// Numbers for metrics and readiness.
#[derive(Debug, Clone)]
pub struct SpoolStats {
    pub head: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub segments: usize,
    /// (sink, committed position) for each registered reader.
    pub cursors: Vec<(&'static str, u64)>,
}

impl Spool {
    /// Open (or create) the spool, truncating a torn tail left by a crash.
    pub fn open(cfg: &SpoolConfig) -> anyhow::Result<Spool> {
        let cursors_dir = cfg.dir.join("cursors");
        std::fs::create_dir_all(&cursors_dir)
            .with_context(|| format!("creating {}", cursors_dir.display()))?;
        let mut segments = segment::list(&cfg.dir).context("listing spool segments")?;
        if segments.is_empty() {
            // Never restart numbering below a position a sink has already seen.
            let first = reader::read_all_cursors(&cursors_dir)?
                .into_values()
                .max()
                .unwrap_or(0);
            let path = segment::segment_path(&cfg.dir, first);
            OpenOptions::new().create(true).append(true).open(&path)?;
            File::open(&cfg.dir)?.sync_all()?;
            segments.push(SegmentInfo {
                first_seq: first,
                path,
                bytes: 0,
            });
        }
        let tail = segments.last_mut().unwrap();
        let scan = segment::scan(&tail.path, tail.first_seq)
            .with_context(|| format!("scanning {}", tail.path.display()))?;
        if scan.valid_len < tail.bytes {
            tracing::warn!(segment = %tail.path.display(), dropped_bytes = tail.bytes - scan.valid_len,
                "truncating a torn spool tail (writes that were never acknowledged)");
            let f = OpenOptions::new().write(true).open(&tail.path)?;
            f.set_len(scan.valid_len)?;
            f.sync_all()?;
            tail.bytes = scan.valid_len;
        }
        let tail = tail.clone();
        let used: u64 = segments.iter().map(|s| s.bytes).sum();
        let shared = Arc::new(Shared {
            dir: cfg.dir.clone(),
            cursors_dir,
            max_bytes: cfg.max_bytes,
            used_bytes: AtomicU64::new(used),
            segments: Mutex::new(segments),
            head: watch::Sender::new(scan.next_seq),
            cursors: Mutex::new(HashMap::new()),
            recent: Mutex::new(recent::Recent::new(recent::BUDGET)),
            failed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let w = writer::Writer::open_tail(shared.clone(), &tail, scan.next_seq, cfg.segment_bytes)?;
        let (tx, rx) = mpsc::channel(4096);
        let thread = std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || w.run(rx))?;
        tracing::info!(dir = %cfg.dir.display(), head = scan.next_seq, bytes = used, "spool open");
        Ok(Spool {
            shared,
            tx,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Durably append events; returns their sequence numbers once they are fsync'd.
    pub async fn append(&self, payloads: Vec<Bytes>) -> Result<Range<u64>, AppendError> {
        if payloads.is_empty() {
            let head = *self.shared.head.borrow();
            return Ok(head..head);
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(writer::Op::Append { payloads, reply })
            .await
            .map_err(|_| AppendError::Closed)?;
        rx.await.map_err(|_| AppendError::Closed)?
    }

    /// A reader for the named sink, positioned at its persisted cursor.
    pub fn reader(&self, name: &'static str) -> anyhow::Result<SpoolReader> {
        SpoolReader::open(self.shared.clone(), name)
    }

    /// Sequence number after the last durable record.
    pub fn head(&self) -> u64 {
        *self.shared.head.borrow()
    }

    /// Is the spool taking writes (not failed, not closed, budget not spent)?
    pub fn writable(&self) -> bool {
        !self.shared.failed.load(Ordering::SeqCst)
            && !self.shared.closed.load(Ordering::SeqCst)
            && self.shared.used_bytes.load(Ordering::SeqCst) < self.shared.max_bytes
    }

    pub fn stats(&self) -> SpoolStats {
        let mut cursors: Vec<_> = self
            .shared
            .cursors
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        cursors.sort();
        SpoolStats {
            head: self.head(),
            bytes: self.shared.used_bytes.load(Ordering::SeqCst),
            max_bytes: self.shared.max_bytes,
            segments: self.shared.segments.lock().unwrap().len(),
            cursors,
        }
    }

    /// Finish pending appends and stop the writer. Later appends fail with `Closed`.
    pub async fn close(&self) {
        let _ = self.tx.send(writer::Op::Close).await;
        let thread = self.thread.lock().unwrap().take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Shared {
    /// Delete segments that every registered reader has passed. The tail is never deleted.
    fn collect_garbage(&self) {
        let Some(min) = self.cursors.lock().unwrap().values().copied().min() else {
            return;
        };
        self.recent.lock().unwrap().forget_before(min);
        let doomed: Vec<SegmentInfo> = {
            let mut segs = self.segments.lock().unwrap();
            let mut n = 0;
            while n + 1 < segs.len() && segs[n + 1].first_seq <= min {
                n += 1;
            }
            segs.drain(..n).collect()
        };
        for s in doomed {
            match std::fs::remove_file(&s.path) {
                Ok(()) => {
                    self.used_bytes.fetch_sub(s.bytes, Ordering::SeqCst);
                    tracing::debug!(segment = s.first_seq, "spool segment deleted");
                }
                Err(e) => {
                    tracing::warn!(segment = %s.path.display(), error = %e, "could not delete spool segment")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &std::path::Path, max_bytes: u64, segment_bytes: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
        }
    }

    fn payloads(range: Range<u32>) -> Vec<Bytes> {
        range
            .map(|i| Bytes::from(format!("{{\"n\":{i}}}")))
            .collect()
    }

    #[tokio::test]
    async fn append_read_commit_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&cfg(dir.path(), 1 << 20, 200)).unwrap();
        assert_eq!(spool.append(payloads(0..5)).await.unwrap(), 0..5);
        assert_eq!(spool.append(payloads(5..12)).await.unwrap(), 5..12);
        let mut r = spool.reader("a").unwrap();
        r.wait().await;
        let got = r.read(3, usize::MAX).unwrap();
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![0, 1, 2]);
        let rest = r.read(100, usize::MAX).unwrap();
        assert_eq!(rest.len(), 9);
        assert_eq!(rest.last().unwrap().payload, Bytes::from("{\"n\":11}"));
        r.commit(6).unwrap();
        spool.close().await;
        assert_eq!(spool.append(payloads(0..1)).await, Err(AppendError::Closed));

        let spool = Spool::open(&cfg(dir.path(), 1 << 20, 200)).unwrap();
        assert_eq!(spool.head(), 12);
        let mut r = spool.reader("a").unwrap();
        assert_eq!(r.position(), 6);
        assert_eq!(r.read(100, usize::MAX).unwrap().first().unwrap().seq, 6);
        spool.close().await;
    }

    #[tokio::test]
    async fn budget_refuses_then_frees_after_commit() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&cfg(dir.path(), 400, 100)).unwrap();
        let mut r = spool.reader("only").unwrap();
        let mut acked = 0;
        loop {
            match spool.append(payloads(0..2)).await {
                Ok(range) => acked = range.end,
                Err(AppendError::Full) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(!spool.writable() || spool.stats().bytes > 300);
        let all = r.read(1000, usize::MAX).unwrap();
        assert_eq!(all.len() as u64, acked);
        r.commit(acked).unwrap();
        assert!(spool.stats().segments == 1, "passed segments are deleted");
        spool
            .append(payloads(0..2))
            .await
            .expect("room again after the sink caught up");
        spool.close().await;
    }

    #[tokio::test]
    async fn segments_kept_for_the_slowest_reader() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&cfg(dir.path(), 1 << 20, 64)).unwrap();
        let mut fast = spool.reader("fast").unwrap();
        let mut slow = spool.reader("slow").unwrap();
        for _ in 0..10 {
            spool.append(payloads(0..2)).await.unwrap();
        }
        let n = spool.head();
        assert_eq!(fast.read(1000, usize::MAX).unwrap().len() as u64, n);
        fast.commit(n).unwrap();
        let segs = spool.stats().segments;
        assert!(segs > 3);
        assert_eq!(
            slow.read(1000, usize::MAX).unwrap().len() as u64,
            n,
            "slow reader still sees everything"
        );
        slow.commit(n).unwrap();
        assert_eq!(spool.stats().segments, 1);
        spool.close().await;
    }

    #[tokio::test]
    async fn readers_behind_the_memory_window_read_the_segments() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&cfg(dir.path(), 1 << 20, 100)).unwrap();
        *spool.shared.recent.lock().unwrap() = recent::Recent::new(30);
        let mut r = spool.reader("slow").unwrap();
        for i in 0..10 {
            spool.append(payloads(i * 3..i * 3 + 3)).await.unwrap();
        }
        assert!(spool.stats().segments > 2);
        let mut got = Vec::new();
        while got.len() < 30 {
            got.extend(r.read(4, usize::MAX).unwrap());
        }
        assert_eq!(
            got.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (0..30).collect::<Vec<_>>()
        );
        assert_eq!(
            got,
            payloads(0..30)
                .into_iter()
                .zip(0..)
                .map(|(payload, seq)| Record { seq, payload })
                .collect::<Vec<_>>()
        );
        spool.close().await;
    }

    #[tokio::test]
    async fn torn_tail_is_truncated_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
        spool.append(payloads(0..3)).await.unwrap();
        spool.close().await;
        let seg = segment::list(dir.path()).unwrap().pop().unwrap();
        let mut f = OpenOptions::new().append(true).open(&seg.path).unwrap();
        std::io::Write::write_all(&mut f, &[7, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let spool = Spool::open(&cfg(dir.path(), 1 << 20, 1 << 20)).unwrap();
        assert_eq!(spool.head(), 3);
        assert_eq!(spool.append(payloads(0..1)).await.unwrap(), 3..4);
        let mut r = spool.reader("x").unwrap();
        assert_eq!(r.read(10, usize::MAX).unwrap().len(), 4);
        spool.close().await;
    }
}
