//! A sink's view of the spool: reads durable records from its own position and persists that
//! position (the cursor) after the sink has delivered them. Records that fail their checksum
//! are skipped and kept aside ([`SpoolReader::take_corrupt`]) for the sink to quarantine.
//!
//! The cursor file holds the position as one fixed-width line, overwritten in place with a
//! single small write and an fdatasync: the file never changes size, so the fsync has no
//! metadata to write, and a write within one disk sector lands whole or not at all.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use super::segment::{Corrupt, Item, SegmentReader};
use super::{Record, Shared};

pub struct SpoolReader {
    shared: Arc<Shared>,
    name: &'static str,
    head: watch::Receiver<u64>,
    /// Next record to hand out.
    next: u64,
    /// Position persisted in the cursor file.
    committed: u64,
    segment: Option<SegmentReader>,
    cursor_path: PathBuf,
    cursor_file: Option<std::fs::File>,
    /// Damaged records skipped since the last [`SpoolReader::take_corrupt`].
    corrupt: Vec<Corrupt>,
}

/// Bytes of a cursor line: 20 digits (any u64) and a newline.
const CURSOR_LEN: u64 = 21;

pub(super) fn read_all_cursors(dir: &Path) -> anyhow::Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.ends_with(".tmp") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())?;
        let pos = text
            .trim()
            .parse()
            .with_context(|| format!("bad cursor file {}", entry.path().display()))?;
        out.insert(name, pos);
    }
    Ok(out)
}

impl SpoolReader {
    pub(super) fn open(shared: Arc<Shared>, name: &'static str) -> anyhow::Result<SpoolReader> {
        let cursor_path = shared.cursors_dir.join(name);
        let oldest = shared.segments.lock().unwrap()[0].first_seq;
        let saved = match std::fs::read_to_string(&cursor_path) {
            Ok(text) => Some(
                text.trim()
                    .parse::<u64>()
                    .with_context(|| format!("bad cursor file {}", cursor_path.display()))?,
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let head = shared.head.subscribe();
        let start = match saved {
            Some(pos) if pos < oldest => {
                tracing::warn!(
                    sink = name,
                    cursor = pos,
                    oldest,
                    "cursor is older than the spool; starting at the oldest record"
                );
                oldest
            }
            Some(pos) => pos.min(*head.borrow()),
            // A new sink starts with whatever the spool still holds.
            None => oldest,
        };
        shared.cursors.lock().unwrap().insert(name, start);
        Ok(SpoolReader {
            shared,
            name,
            head,
            next: start,
            committed: start,
            segment: None,
            cursor_path,
            cursor_file: None,
            corrupt: Vec::new(),
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Next sequence number this reader will hand out.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Durable records not yet committed by this reader.
    pub fn lag(&self) -> u64 {
        self.head.borrow().saturating_sub(self.committed)
    }

    /// Sequence number after the last durable record.
    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    /// Move to `seq` (clamped to what exists): a sink that knows better than the cursor.
    pub fn seek(&mut self, seq: u64) {
        let oldest = self.shared.segments.lock().unwrap()[0].first_seq;
        self.next = seq.clamp(oldest, self.head());
        self.segment = None;
    }

    /// Wait until there is at least one record to read. Cancel-safe.
    pub async fn wait(&mut self) {
        let next = self.next;
        let _ = self.head.wait_for(|h| *h > next).await;
    }

    /// Wait until at least `n` records are there to read. Cancel-safe.
    pub async fn wait_for(&mut self, n: u64) {
        let next = self.next;
        let _ = self.head.wait_for(|h| *h >= next.saturating_add(n)).await;
    }

    /// Read up to `max_records` durable records (and about `max_bytes`) from the position.
    pub fn read(&mut self, max_records: usize, max_bytes: usize) -> io::Result<Vec<Record>> {
        let head = self.head();
        let mut out = Vec::new();
        let mut bytes = 0;
        while self.next < head && out.len() < max_records && bytes < max_bytes {
            let reader = match &mut self.segment {
                Some(r) => r,
                None => {
                    // Between segments (or never opened one): memory first.
                    let recent = self.shared.recent.lock().unwrap();
                    let before = out.len();
                    if recent.read(self.next, max_records, max_bytes - bytes, &mut out) {
                        let got = &out[before..];
                        bytes += got.iter().map(|r| r.payload.len()).sum::<usize>();
                        self.next = got.last().map_or(self.next, |r| r.seq + 1);
                        continue;
                    }
                    drop(recent);
                    self.segment.insert(self.open_segment_for(self.next)?)
                }
            };
            match reader.next()? {
                Some(Item::Record(rec)) => {
                    bytes += rec.payload.len();
                    self.next = rec.seq + 1;
                    out.push(rec);
                }
                Some(Item::Corrupt(c)) => {
                    self.next = c.seqs.end;
                    self.corrupt.push(c);
                }
                // This segment is done; the record lives in the next one.
                None => self.segment = None,
            }
        }
        Ok(out)
    }

    /// Damaged records skipped by [`SpoolReader::read`] since the last call. Once the sink has
    /// quarantined them, committing a later position lets them go.
    pub fn take_corrupt(&mut self) -> Vec<Corrupt> {
        std::mem::take(&mut self.corrupt)
    }

    /// Persist that every record before `upto` is delivered, and let the spool free space.
    pub fn commit(&mut self, upto: u64) -> io::Result<()> {
        if upto <= self.committed {
            return Ok(());
        }
        use std::os::unix::fs::FileExt;
        let line = format!("{upto:020}\n");
        let file = match &mut self.cursor_file {
            Some(f) => f,
            None => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&self.cursor_path)?;
                f.write_all_at(line.as_bytes(), 0)?;
                if f.metadata()?.len() != CURSOR_LEN {
                    // A new file, or one in an older format: settle its size once.
                    f.set_len(CURSOR_LEN)?;
                    f.sync_all()?;
                    std::fs::File::open(&self.shared.cursors_dir)?.sync_all()?;
                }
                self.cursor_file.insert(f)
            }
        };
        file.write_all_at(line.as_bytes(), 0)?;
        file.sync_data()?;
        self.committed = upto;
        self.shared.cursors.lock().unwrap().insert(self.name, upto);
        self.shared.collect_garbage();
        Ok(())
    }

    fn open_segment_for(&self, seq: u64) -> io::Result<SegmentReader> {
        let (info, end) = {
            let segs = self.shared.segments.lock().unwrap();
            let i = segs
                .partition_point(|s| s.first_seq <= seq)
                .saturating_sub(1);
            let end = segs.get(i + 1).map_or(segs[i].next_seq, |n| n.first_seq);
            (segs[i].clone(), end)
        };
        let mut r = SegmentReader::open(&info, end)?;
        if !r.skip_to(seq)? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("record {seq} missing from spool segment {}", info.first_seq),
            ));
        }
        Ok(r)
    }
}
