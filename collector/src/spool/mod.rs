//! The durable log every 2xx stands on.
//!
//! Requests [`Spool::append`] the enriched events; the call returns only after the group-commit
//! writer has written and fsync'd them (see [`writer`]). Each sink reads the spool through its own
//! [`SpoolReader`] and persists its cursor after durable delivery, so sinks are independent and
//! delivery is at-least-once. A segment is deleted once every sink has passed it. The disk budget
//! is checked on each append: when spent, appends fail with [`AppendError::Full`] (HTTP 503).
//!
//! The newest segment every sink has passed can be kept as the *window*
//! (`{first_seq:020}.window`): with the segments after it, it holds the recent events whose
//! dedupe keys the collector reads back at start ([`Spool::recent`]), so a resend after a
//! restart is still found, even right after the tail rolled over. It counts in the budget and
//! is the first thing given back when an append needs the room.
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
pub use record::{Record, HEADER_LEN as RECORD_HEADER_LEN};
pub use segment::Corrupt;
use segment::{Item, SegmentInfo, SegmentReader};

/// Where the spool lives and how much disk it may use.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub segment_bytes: u64,
    /// Keep the newest segment every sink has passed, for the dedupe window at start.
    pub keep_window: bool,
}

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
    /// Passed segments kept for reuse (see [`segment`]), with their sizes, which count in
    /// `used_bytes` while they wait.
    spares: Mutex<Vec<(PathBuf, u64)>>,
    /// The newest durable records, for readers that keep up.
    recent: Mutex<recent::Recent>,
    /// Keep the newest passed segment as the window?
    keep_window: bool,
    /// The window: the passed segment just before the oldest one in `segments`.
    window: Mutex<Option<SegmentInfo>>,
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
                next_seq: first,
            });
        }
        for spare in segment::list_spares(&cfg.dir)? {
            std::fs::remove_file(&spare)
                .with_context(|| format!("removing {}", spare.display()))?;
        }
        // The newest window is kept if it ends where the segments begin; others go.
        let mut windows = segment::list_windows(&cfg.dir)?;
        let mut window = windows.pop();
        if !window
            .as_ref()
            .is_some_and(|w| cfg.keep_window && w.first_seq < segments[0].first_seq)
        {
            windows.extend(window.take());
        }
        for stale in windows {
            std::fs::remove_file(&stale.path)
                .with_context(|| format!("removing {}", stale.path.display()))?;
        }
        let tail = segments.last_mut().unwrap();
        let scan = segment::scan(&tail.path, tail.first_seq)
            .with_context(|| format!("scanning {}", tail.path.display()))?;
        if scan.valid_len < tail.bytes {
            tracing::warn!(segment = %tail.path.display(), dropped_bytes = tail.bytes - scan.valid_len,
                "truncating the spool tail after its last valid record (writes that were never acknowledged, or a reused file's old bytes)");
            let f = OpenOptions::new().write(true).open(&tail.path)?;
            f.set_len(scan.valid_len)?;
            f.sync_all()?;
            tail.bytes = scan.valid_len;
        }
        tail.next_seq = scan.next_seq;
        let tail = tail.clone();
        let used: u64 = segments.iter().chain(&window).map(|s| s.bytes).sum();
        let shared = Arc::new(Shared {
            dir: cfg.dir.clone(),
            cursors_dir,
            max_bytes: cfg.max_bytes,
            used_bytes: AtomicU64::new(used),
            segments: Mutex::new(segments),
            head: watch::Sender::new(scan.next_seq),
            cursors: Mutex::new(HashMap::new()),
            spares: Mutex::new(Vec::new()),
            recent: Mutex::new(recent::Recent::new(recent::BUDGET)),
            keep_window: cfg.keep_window,
            window: Mutex::new(window),
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

    /// Hand `f` the payloads of the newest durable records, oldest first: up to `max` of them,
    /// as far as the window and the segments hold them. Returns how many were read. Meant for
    /// start-up, before sinks run (they may retire the window meanwhile). Damaged records are
    /// skipped; their sinks quarantine them.
    pub fn recent(&self, max: usize, mut f: impl FnMut(&[u8])) -> std::io::Result<usize> {
        let head = self.head();
        let from = head.saturating_sub(max as u64);
        let files: Vec<SegmentInfo> = {
            let segments = self.shared.segments.lock().unwrap();
            let window = self.shared.window.lock().unwrap();
            window.iter().chain(segments.iter()).cloned().collect()
        };
        let mut read = 0;
        for (i, info) in files.iter().enumerate() {
            let end = files.get(i + 1).map_or(head, |next| next.first_seq);
            if end <= from {
                continue;
            }
            let mut r = SegmentReader::open(info, end)?;
            if info.first_seq < from && !r.skip_to(from)? {
                continue;
            }
            while let Some(item) = r.next()? {
                if let Item::Record(rec) = item {
                    f(&rec.payload);
                    read += 1;
                }
            }
        }
        Ok(read)
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
            && self
                .shared
                .used_bytes
                .load(Ordering::SeqCst)
                .saturating_sub(self.shared.window_bytes())
                < self.shared.max_bytes
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

/// Passed segments kept for reuse at most. Sinks that keep up pass a segment about as often
/// as the writer starts one.
const MAX_SPARES: usize = 2;

impl Shared {
    /// Keep a passed segment as a spare, while there is room and the spool is less than half
    /// full (a spool filling up during a sink outage gives its disk back instead).
    fn keep_spare(&self, s: &SegmentInfo) -> bool {
        let mut spares = self.spares.lock().unwrap();
        let used = self.used_bytes.load(Ordering::SeqCst);
        if spares.len() >= MAX_SPARES || used.saturating_mul(2) > self.max_bytes {
            return false;
        }
        let spare = segment::spare_path(&self.dir, s.first_seq);
        if std::fs::rename(&s.path, &spare).is_err() {
            return false;
        }
        spares.push((spare, s.bytes));
        tracing::debug!(segment = s.first_seq, "spool segment kept for reuse");
        true
    }

    /// A spare file to reuse; its bytes leave `used_bytes` (the new segment counts what it
    /// writes).
    fn take_spare(&self) -> Option<PathBuf> {
        let (path, bytes) = self.spares.lock().unwrap().pop()?;
        self.used_bytes.fetch_sub(bytes, Ordering::SeqCst);
        Some(path)
    }

    /// Bytes the window holds (room an append can have back).
    fn window_bytes(&self) -> u64 {
        self.window.lock().unwrap().as_ref().map_or(0, |w| w.bytes)
    }

    /// Give the window's room back to the budget (for an append that needs it).
    fn release_window(&self) -> bool {
        let Some(w) = self.window.lock().unwrap().take() else {
            return false;
        };
        match std::fs::remove_file(&w.path) {
            Ok(()) => {
                self.used_bytes.fetch_sub(w.bytes, Ordering::SeqCst);
                tracing::debug!(
                    segment = w.first_seq,
                    "spool window given back to the budget"
                );
                true
            }
            Err(e) => {
                tracing::warn!(segment = %w.path.display(), error = %e, "could not delete the spool window");
                false
            }
        }
    }

    /// Make the newest passed segment the window (while the spool is less than half full);
    /// returns what goes instead: the old window, or `s` itself when it is not kept.
    fn make_window(&self, s: SegmentInfo) -> Option<SegmentInfo> {
        let used = self.used_bytes.load(Ordering::SeqCst);
        if !self.keep_window || used.saturating_mul(2) > self.max_bytes {
            return Some(s);
        }
        let path = segment::window_path(&self.dir, s.first_seq);
        if let Err(e) = std::fs::rename(&s.path, &path) {
            tracing::warn!(segment = %s.path.display(), error = %e, "could not keep the spool window");
            return Some(s);
        }
        self.window
            .lock()
            .unwrap()
            .replace(SegmentInfo { path, ..s })
    }

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
        let mut doomed = doomed;
        if let Some(newest) = doomed.pop() {
            doomed.extend(self.make_window(newest));
        }
        for s in doomed {
            if self.keep_spare(&s) {
                continue;
            }
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
            keep_window: true,
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

    /// Inode of each segment file in `dir`, by name.
    fn segment_inodes(dir: &std::path::Path) -> Vec<(String, u64)> {
        use std::os::unix::fs::MetadataExt;
        segment::list(dir)
            .unwrap()
            .iter()
            .map(|s| {
                let name = s.path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::metadata(&s.path).unwrap().ino())
            })
            .collect()
    }

    #[tokio::test]
    async fn passed_segments_are_reused_and_a_crash_image_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&cfg(dir.path(), 1 << 20, 1000)).unwrap();
        // Read from the files, where a reused file holds old bytes past the new records.
        *spool.shared.recent.lock().unwrap() = recent::Recent::new(0);
        let mut r = spool.reader("s").unwrap();
        let mut seen: HashMap<u64, String> = HashMap::new();
        let mut n = 0u32;
        // Append and deliver until the tail segment is a file an earlier segment used, and
        // once more, so a reader reads that file twice.
        let mut reused = None;
        let tail_reused = loop {
            assert!(n < 3000, "no segment file was reused");
            spool.append(payloads(n..n + 3)).await.unwrap();
            n += 3;
            let got = r.read(1000, usize::MAX).unwrap();
            assert_eq!(
                got.iter().map(|r| r.seq).collect::<Vec<_>>(),
                (u64::from(n) - 3..u64::from(n)).collect::<Vec<_>>()
            );
            assert_eq!(got.last().unwrap().payload, payloads(n - 1..n)[0]);
            r.commit(u64::from(n)).unwrap();
            let files = segment_inodes(dir.path());
            assert!(
                files.len() <= 2,
                "passed segments do not pile up: {files:?}"
            );
            let (tail, ino) = files.last().unwrap().clone();
            if let Some(name) = &reused {
                assert_eq!(&tail, name, "the segment is long enough for two appends");
                break tail;
            }
            match seen.insert(ino, tail.clone()) {
                Some(before) if before != tail => reused = Some(tail),
                _ => {}
            }
        };
        // Acknowledged but not yet delivered; the reused tail still holds old bytes after it.
        spool.append(payloads(n..n + 2)).await.unwrap();
        let tail_path = dir.path().join(&tail_reused);
        let logical = spool.shared.segments.lock().unwrap().last().unwrap().bytes;
        assert!(std::fs::metadata(&tail_path).unwrap().len() > logical);

        // What a kill -9 now leaves on disk (the page cache is what the disk will hold).
        let image = tempfile::tempdir().unwrap();
        std::fs::create_dir(image.path().join("cursors")).unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, image.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        std::fs::copy(dir.path().join("cursors/s"), image.path().join("cursors/s")).unwrap();
        spool.close().await;
        assert_eq!(
            std::fs::metadata(&tail_path).unwrap().len(),
            logical,
            "a clean close cuts the old bytes off"
        );

        let copy = Spool::open(&cfg(image.path(), 1 << 20, 1000)).unwrap();
        assert_eq!(copy.head(), u64::from(n) + 2);
        let mut r = copy.reader("s").unwrap();
        assert_eq!(r.position(), u64::from(n));
        let rest = r.read(1000, usize::MAX).unwrap();
        assert_eq!(
            rest.into_iter().map(|r| r.payload).collect::<Vec<_>>(),
            payloads(n..n + 2)
        );
        assert_eq!(
            copy.append(payloads(0..1)).await.unwrap().start,
            u64::from(n) + 2
        );
        copy.close().await;

        // Spares are not kept across restarts.
        let reopened = Spool::open(&cfg(dir.path(), 1 << 20, 1000)).unwrap();
        assert_eq!(reopened.head(), u64::from(n) + 2);
        assert!(segment::list_spares(dir.path()).unwrap().is_empty());
        reopened.close().await;
    }

    /// Append, then read and commit everything, as a sink that keeps up.
    async fn append_and_deliver(spool: &Spool, r: &mut SpoolReader, batch: Vec<Bytes>) {
        spool.append(batch).await.unwrap();
        r.read(1000, usize::MAX).unwrap();
        r.commit(spool.head()).unwrap();
    }

    /// The payloads `Spool::recent` hands out.
    fn recent_of(spool: &Spool, max: usize) -> Vec<Bytes> {
        let mut got = Vec::new();
        let n = spool
            .recent(max, |p| got.push(Bytes::copy_from_slice(p)))
            .unwrap();
        assert_eq!(n, got.len());
        got
    }

    #[tokio::test]
    async fn the_newest_passed_segment_stays_as_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&cfg(dir.path(), 1 << 20, 100)).unwrap();
        let mut r = spool.reader("s").unwrap();
        for i in 0..10 {
            append_and_deliver(&spool, &mut r, payloads(i * 4..i * 4 + 4)).await;
        }
        // Every segment is passed: the tail and the window are left.
        assert_eq!(spool.stats().segments, 1);
        let window = segment::list_windows(dir.path()).unwrap();
        assert_eq!(window.len(), 1, "one window");
        let tail_first = segment::list(dir.path()).unwrap()[0].first_seq;
        assert!(window[0].first_seq < tail_first);
        assert_eq!(
            recent_of(&spool, 5),
            payloads(35..40),
            "the newest, in order"
        );
        let all = recent_of(&spool, 1000);
        assert_eq!(
            all,
            payloads(window[0].first_seq as u32..40),
            "as far back as the window reaches"
        );
        assert!(
            all.len() > 40 - tail_first as usize,
            "the window adds to the tail"
        );
        spool.close().await;

        // A restart keeps it (and counts it); a window with dedupe off goes.
        let spool = Spool::open(&cfg(dir.path(), 1 << 20, 100)).unwrap();
        assert_eq!(recent_of(&spool, 1000), all);
        assert_eq!(
            spool.stats().bytes,
            window[0].bytes + segment::list(dir.path()).unwrap()[0].bytes
        );
        spool.close().await;
        let off = SpoolConfig {
            keep_window: false,
            ..cfg(dir.path(), 1 << 20, 100)
        };
        let spool = Spool::open(&off).unwrap();
        assert!(segment::list_windows(dir.path()).unwrap().is_empty());
        assert_eq!(recent_of(&spool, 1000), payloads(tail_first as u32..40));
        spool.close().await;
    }

    #[tokio::test]
    async fn the_window_gives_its_room_back_to_appends() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&cfg(dir.path(), 1200, 300)).unwrap();
        let mut r = spool.reader("s").unwrap();
        // Deliver until a window is kept.
        while segment::list_windows(dir.path()).unwrap().is_empty() {
            append_and_deliver(&spool, &mut r, payloads(0..4)).await;
        }
        let window = spool.shared.window_bytes();
        assert!(window > 0);
        // The sink stops; appends fill the budget, the window's room included.
        let used = spool.stats().bytes;
        let mut acked = 0;
        while let Ok(range) = spool.append(payloads(0..1)).await {
            acked += range.end - range.start;
        }
        assert!(segment::list_windows(dir.path()).unwrap().is_empty());
        let record = (RECORD_HEADER_LEN + payloads(0..1)[0].len()) as u64;
        assert!(
            acked * record + record > 1200 - used + window,
            "appends had the window's room: {acked} records of {record} bytes, {used} used"
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
