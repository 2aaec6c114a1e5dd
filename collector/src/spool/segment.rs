//! Segment files: naming, listing, recovery scans and sequential reads. A segment is named
//! after the sequence number of its first record, so finding the one that holds a given
//! position is a search over names.
//!
//! A record that fails its checksum, or whose header is damaged, is not the end of a segment:
//! readers skip past it to the next valid record (found by scanning for a header with a later
//! sequence number and a matching checksum) and report the records in between as corrupt, so
//! their sinks can quarantine them and go on. The same scan at startup tells a damaged record
//! in the middle of the tail segment from a torn end, which alone is cut off.
//!
//! A segment every sink has passed may be kept as a spare (`{first_seq}.spare`) and reused
//! for a later segment, as databases recycle their log files: writing over blocks a file
//! already has lets `fdatasync` flush the data alone, where an append must also commit the
//! file's new size and blocks to the filesystem journal. A reused file holds the old
//! segment's records past the new ones until it is overwritten; recovery scans stop there
//! because sequence numbers must follow on, and readers never read past the durable length.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::record::{self, Record, HEADER_LEN};

/// A segment on disk.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    pub first_seq: u64,
    pub path: PathBuf,
    /// Durable length.
    pub bytes: u64,
    /// The sequence number after the records within `bytes`. Kept for the tail segment, with
    /// `bytes`; for the others, the next segment's `first_seq` says it.
    pub next_seq: u64,
}

pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.log"))
}

/// Where a passed segment waits to be reused.
pub fn spare_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.spare"))
}

/// Where the newest passed segment is kept as the dedupe window (see [`super::Spool::recent`]).
pub fn window_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.window"))
}

/// Spare files left in `dir` (by a crash, or an older run).
pub fn list_spares(dir: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(list_named(dir, "spare")?
        .into_iter()
        .map(|s| s.path)
        .collect())
}

/// Window files in `dir`, oldest first (more than one only after a crash mid-swap).
pub fn list_windows(dir: &Path) -> io::Result<Vec<SegmentInfo>> {
    list_named(dir, "window")
}

/// All segments in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<SegmentInfo>> {
    list_named(dir, "log")
}

/// Files `{first_seq:020}.{extension}` in `dir`, oldest first.
fn list_named(dir: &Path, extension: &str) -> io::Result<Vec<SegmentInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(first_seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(extension)?.strip_suffix('.'))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push(SegmentInfo {
            first_seq,
            path: entry.path(),
            bytes: entry.metadata()?.len(),
            next_seq: first_seq,
        });
    }
    out.sort_by_key(|s| s.first_seq);
    Ok(out)
}

/// Where a segment's valid records end.
#[derive(Debug, PartialEq, Eq)]
pub struct ScanResult {
    /// Sequence number after the last valid record.
    pub next_seq: u64,
    /// Byte length of the valid prefix.
    pub valid_len: u64,
}

/// Read a segment's records until its end, or until a torn or corrupt record that no valid
/// later record follows (a torn end: writes never acknowledged).
pub fn scan(path: &Path, first_seq: u64) -> io::Result<ScanResult> {
    let mut file = File::open(path)?;
    let mut r = BufReader::with_capacity(1 << 20, file.try_clone()?);
    let mut next_seq = first_seq;
    let mut valid_len = 0u64;
    let mut at = 0u64;
    let mut payload = Vec::new();
    loop {
        let mut h = [0u8; HEADER_LEN];
        if !read_full(&mut r, &mut h)? {
            break;
        }
        let header = record::decode_header(&h);
        let whole = header.seq == next_seq
            && header.len <= MAX_PAYLOAD
            && {
                payload.resize(header.len, 0);
                read_full(&mut r, &mut payload)?
            }
            && record::verify(&header, &payload);
        if whole {
            next_seq += 1;
            at += (HEADER_LEN + header.len) as u64;
            valid_len = at;
            continue;
        }
        // Damage in the middle, or the torn end? Look for a valid record after it.
        file.seek(io::SeekFrom::Start(at))?;
        let mut rest = Vec::new();
        (&mut file).take(MAX_RESYNC_BYTES).read_to_end(&mut rest)?;
        match find_next(&rest, next_seq, u64::MAX) {
            Some((offset, seq)) => {
                at += offset as u64;
                next_seq = seq;
                file.seek(io::SeekFrom::Start(at))?;
                r = BufReader::with_capacity(1 << 20, file.try_clone()?);
            }
            None => break,
        }
    }
    Ok(ScanResult {
        next_seq,
        valid_len,
    })
}

/// No payload is larger: events are capped far below it, so a larger length is damage.
const MAX_PAYLOAD: usize = 16 << 20;

/// Past damage, how far a segment is searched for the next valid record. Segments roll at
/// their configured size (16 MiB by default) plus at most one group of appends.
const MAX_RESYNC_BYTES: u64 = 1 << 30;

/// The first valid record in `bytes` after its first byte whose sequence number lies in
/// `after+1 .. before`: its offset and sequence number. A valid header (a sequence number in
/// range, a plausible length and a matching CRC-32C over the whole record) is not found by
/// chance in damaged bytes.
fn find_next(bytes: &[u8], after: u64, before: u64) -> Option<(usize, u64)> {
    (1..bytes.len().saturating_sub(HEADER_LEN - 1)).find_map(|i| {
        let h = record::decode_header(bytes[i..i + HEADER_LEN].try_into().ok()?);
        let end = (i + HEADER_LEN).checked_add(h.len)?;
        let plausible = h.seq > after && h.seq < before && h.len <= MAX_PAYLOAD;
        (plausible && end <= bytes.len() && record::verify(&h, &bytes[i + HEADER_LEN..end]))
            .then_some((i, h.seq))
    })
}

/// Fill `buf` completely; `Ok(false)` if the file ends first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Records a reader could not read: their sequence numbers and (the start of) their bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt {
    pub segment: u64,
    pub seqs: Range<u64>,
    /// The damaged bytes, headers included, cut to [`MAX_CORRUPT_KEPT`].
    pub bytes: Vec<u8>,
}

/// The most of a damaged stretch kept for its dead letter.
pub const MAX_CORRUPT_KEPT: usize = 64 << 10;

/// What a segment reader hands out next.
#[derive(Debug)]
pub enum Item {
    Record(Record),
    Corrupt(Corrupt),
}

/// Reads records of one segment in order, up to its durable length when opened (a reused file
/// holds old bytes past it, which read-ahead must not pick up). The end of that length ends
/// the segment for this reader. Damaged records are skipped and handed out as [`Corrupt`].
pub struct SegmentReader {
    pub first_seq: u64,
    next_seq: u64,
    /// The first sequence number after this segment (the next one's first, or the head).
    end_seq: u64,
    /// Bytes read so far, and the durable length.
    at: u64,
    len: u64,
    file: BufReader<Box<dyn Read + Send + Sync>>,
    path: PathBuf,
    /// Damage found while skipping, from the position skipped to.
    pending: Option<Corrupt>,
}

impl SegmentReader {
    pub fn open(info: &SegmentInfo, end_seq: u64) -> io::Result<Self> {
        let file: Box<dyn Read + Send + Sync> = Box::new(File::open(&info.path)?.take(info.bytes));
        Ok(SegmentReader {
            first_seq: info.first_seq,
            next_seq: info.first_seq,
            end_seq,
            at: 0,
            len: info.bytes,
            file: BufReader::with_capacity(256 << 10, file),
            path: info.path.clone(),
            pending: None,
        })
    }

    /// The next record or damaged stretch, or `None` at the end of the segment.
    pub fn next(&mut self) -> io::Result<Option<Item>> {
        if let Some(c) = self.pending.take() {
            return Ok(Some(Item::Corrupt(c)));
        }
        if self.next_seq >= self.end_seq {
            return Ok(None);
        }
        let mut h = [0u8; HEADER_LEN];
        let start = self.at;
        if !read_full(&mut self.file, &mut h)? {
            return Ok(self.resync(start)?.map(Item::Corrupt));
        }
        let header = record::decode_header(&h);
        let mut payload = Vec::new();
        let whole = header.seq == self.next_seq
            && header.len as u64 <= self.len - start - HEADER_LEN as u64
            && {
                payload.resize(header.len, 0);
                read_full(&mut self.file, &mut payload)?
            }
            && record::verify(&header, &payload);
        if !whole {
            return Ok(self.resync(start)?.map(Item::Corrupt));
        }
        self.at = start + (HEADER_LEN + header.len) as u64;
        self.next_seq += 1;
        Ok(Some(Item::Record(Record {
            seq: header.seq,
            payload: Bytes::from(payload),
        })))
    }

    /// After damage at byte `start`: find the next valid record, read on from there, and
    /// report the records in between (up to the segment's end when none follows).
    fn resync(&mut self, start: u64) -> io::Result<Option<Corrupt>> {
        let mut file = File::open(&self.path)?;
        file.seek(io::SeekFrom::Start(start))?;
        let mut rest = Vec::new();
        file.take(self.len - start).read_to_end(&mut rest)?;
        let (skip, resume) = match find_next(&rest, self.next_seq, self.end_seq) {
            Some((offset, seq)) => (offset, seq),
            None => (rest.len(), self.end_seq),
        };
        let seqs = self.next_seq..resume;
        let mut bytes = rest;
        let after = bytes.split_off(skip);
        bytes.truncate(MAX_CORRUPT_KEPT);
        self.at = start + skip as u64;
        self.next_seq = resume;
        self.file = BufReader::with_capacity(256 << 10, Box::new(io::Cursor::new(after)));
        Ok((!seqs.is_empty()).then_some(Corrupt {
            segment: self.first_seq,
            seqs,
            bytes,
        }))
    }

    /// Read on until the next record is `seq`; `Ok(false)` if the segment ends first. Damage
    /// that reaches past `seq` is handed out by the next [`SegmentReader::next`], from `seq`.
    pub fn skip_to(&mut self, seq: u64) -> io::Result<bool> {
        while self.next_seq < seq {
            match self.next()? {
                None => return Ok(false),
                Some(Item::Record(_)) => {}
                Some(Item::Corrupt(mut c)) if c.seqs.end > seq => {
                    c.seqs.start = seq;
                    self.pending = Some(c);
                    return Ok(true);
                }
                Some(Item::Corrupt(_)) => {}
            }
        }
        Ok(self.next_seq == seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn scan_stops_at_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 10);
        let mut buf = Vec::new();
        for i in 10..13 {
            record::encode(i, format!("event {i}").as_bytes(), &mut buf);
        }
        let good = buf.len() as u64;
        record::encode(13, b"torn", &mut buf);
        buf.truncate(buf.len() - 2);
        File::create(&path).unwrap().write_all(&buf).unwrap();
        assert_eq!(
            scan(&path, 10).unwrap(),
            ScanResult {
                next_seq: 13,
                valid_len: good
            }
        );

        let info = &list(dir.path()).unwrap()[0];
        assert_eq!(info.first_seq, 10);
        let mut r = SegmentReader::open(info, 13).unwrap();
        assert!(r.skip_to(11).unwrap());
        match r.next().unwrap() {
            Some(Item::Record(rec)) => assert_eq!(rec.payload, Bytes::from("event 11")),
            other => panic!("{other:?}"),
        }
    }

    /// Records 0..10 of one segment, encoded, with the offset of each.
    fn segment(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut at = Vec::new();
        for i in 0..n {
            at.push(buf.len());
            record::encode(i, format!("{{\"event\":{i}}}").as_bytes(), &mut buf);
        }
        (buf, at)
    }

    /// Everything a reader hands out: sequence numbers of records, and damaged ranges.
    fn read_all(path: &Path, bytes: u64, end: u64, from: u64) -> Vec<Result<u64, Range<u64>>> {
        let info = SegmentInfo {
            first_seq: 0,
            path: path.to_path_buf(),
            bytes,
            next_seq: end,
        };
        let mut r = SegmentReader::open(&info, end).unwrap();
        assert!(r.skip_to(from).unwrap());
        let mut out = Vec::new();
        while let Some(item) = r.next().unwrap() {
            out.push(match item {
                Item::Record(rec) => Ok(rec.seq),
                Item::Corrupt(c) => Err(c.seqs),
            });
        }
        out
    }

    #[test]
    fn damaged_records_are_skipped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        let (mut buf, at) = segment(10);
        buf[at[3] + HEADER_LEN + 2] ^= 0x40; // a payload byte of record 3
        buf[at[6]..at[6] + 4].copy_from_slice(&u32::MAX.to_le_bytes()); // record 6's length
        buf[at[7] + 8] ^= 1; // record 7's sequence number
        std::fs::write(&path, &buf).unwrap();
        let len = buf.len() as u64;
        let expected = vec![
            Ok(0),
            Ok(1),
            Ok(2),
            Err(3..4),
            Ok(4),
            Ok(5),
            Err(6..8),
            Ok(8),
            Ok(9),
        ];
        assert_eq!(read_all(&path, len, 10, 0), expected);
        // Skipping to a record past damage does not report the damage; skipping into it
        // reports the part from there.
        assert_eq!(read_all(&path, len, 10, 5), expected[5..]);
        assert_eq!(read_all(&path, len, 10, 7), vec![Err(7..8), Ok(8), Ok(9)]);
        // Damage at the end: reported up to the segment's end.
        buf[at[9] + HEADER_LEN] ^= 1;
        std::fs::write(&path, &buf).unwrap();
        assert_eq!(read_all(&path, len, 10, 8), vec![Ok(8), Err(9..10)]);
    }

    #[test]
    fn the_startup_scan_reads_past_damage_and_cuts_a_torn_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        let (mut buf, at) = segment(10);
        buf[at[4] + HEADER_LEN] ^= 1;
        let whole = buf.len() as u64;
        record::encode(10, b"torn", &mut buf);
        buf.truncate(buf.len() - 1);
        std::fs::write(&path, &buf).unwrap();
        assert_eq!(
            scan(&path, 0).unwrap(),
            ScanResult {
                next_seq: 10,
                valid_len: whole
            },
            "damage in the middle is not the end"
        );
    }
}
