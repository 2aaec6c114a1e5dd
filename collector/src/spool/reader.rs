//! A sink's view of the spool: reads durable records from its own position and persists that
//! position (the cursor) after the sink has delivered them.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use super::segment::SegmentReader;
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
}

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

    /// Read up to `max_records` durable records (and about `max_bytes`) from the position.
    pub fn read(&mut self, max_records: usize, max_bytes: usize) -> io::Result<Vec<Record>> {
        let head = self.head();
        let mut out = Vec::new();
        let mut bytes = 0;
        while self.next < head && out.len() < max_records && bytes < max_bytes {
            let reader = match &mut self.segment {
                Some(r) => r,
                None => self.segment.insert(self.open_segment_for(self.next)?),
            };
            match reader.next()? {
                Some(rec) => {
                    bytes += rec.payload.len();
                    self.next = rec.seq + 1;
                    out.push(rec);
                }
                // This segment is done; the record lives in the next one.
                None => self.segment = Some(self.open_segment_starting(self.next)?),
            }
        }
        Ok(out)
    }

    /// Persist that every record before `upto` is delivered, and let the spool free space.
    pub fn commit(&mut self, upto: u64) -> io::Result<()> {
        if upto <= self.committed {
            return Ok(());
        }
        let tmp = self.cursor_path.with_extension("tmp");
        std::fs::write(&tmp, format!("{upto}\n"))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.cursor_path)?;
        self.committed = upto;
        self.shared.cursors.lock().unwrap().insert(self.name, upto);
        self.shared.collect_garbage();
        Ok(())
    }

    fn open_segment_for(&self, seq: u64) -> io::Result<SegmentReader> {
        let info = {
            let segs = self.shared.segments.lock().unwrap();
            let i = segs
                .partition_point(|s| s.first_seq <= seq)
                .saturating_sub(1);
            segs[i].clone()
        };
        let mut r = SegmentReader::open(&info)?;
        if !r.skip_to(seq)? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("record {seq} missing from spool segment {}", info.first_seq),
            ));
        }
        Ok(r)
    }

    fn open_segment_starting(&self, seq: u64) -> io::Result<SegmentReader> {
        let info = self
            .shared
            .segments
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.first_seq == seq)
            .cloned();
        match info {
            Some(info) => SegmentReader::open(&info),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no spool segment starts at record {seq}"),
            )),
        }
    }
}
