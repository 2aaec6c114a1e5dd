//! Segment files: naming, listing, recovery scans and sequential reads. A segment is named
//! after the sequence number of its first record, so finding the one that holds a given
//! position is a search over names.
//!
//! A segment every sink has passed may be kept as a spare (`{first_seq}.spare`) and reused
//! for a later segment, as databases recycle their log files: writing over blocks a file
//! already has lets `fdatasync` flush the data alone, where an append must also commit the
//! file's new size and blocks to the filesystem journal. A reused file holds the old
//! segment's records past the new ones until it is overwritten; recovery scans stop there
//! because sequence numbers must follow on, and readers never read past the durable length.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::record::{self, Record, HEADER_LEN};

/// A segment on disk.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    pub first_seq: u64,
    pub path: PathBuf,
    pub bytes: u64,
}

pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.log"))
}

/// Where a passed segment waits to be reused.
pub fn spare_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.spare"))
}

/// Spare files left in `dir` (by a crash, or an older run).
pub fn list_spares(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "spare") {
            out.push(path);
        }
    }
    Ok(out)
}

/// All segments in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<SegmentInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(first_seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push(SegmentInfo {
            first_seq,
            path: entry.path(),
            bytes: entry.metadata()?.len(),
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

/// Read a segment until the first torn or corrupt record (or the end).
pub fn scan(path: &Path, first_seq: u64) -> io::Result<ScanResult> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut next_seq = first_seq;
    let mut valid_len = 0u64;
    let mut payload = Vec::new();
    loop {
        let mut h = [0u8; HEADER_LEN];
        if !read_full(&mut r, &mut h)? {
            break;
        }
        let header = record::decode_header(&h);
        if header.seq != next_seq {
            break;
        }
        payload.resize(header.len, 0);
        if !read_full(&mut r, &mut payload)? || !record::verify(&header, &payload) {
            break;
        }
        next_seq += 1;
        valid_len += (HEADER_LEN + header.len) as u64;
    }
    Ok(ScanResult {
        next_seq,
        valid_len,
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

/// Reads records of one segment in order, up to its durable length when opened (a reused file
/// holds old bytes past it, which read-ahead must not pick up). The end of that length ends
/// the segment for this reader.
pub struct SegmentReader {
    pub first_seq: u64,
    next_seq: u64,
    file: BufReader<io::Take<File>>,
}

impl SegmentReader {
    pub fn open(info: &SegmentInfo) -> io::Result<Self> {
        Ok(SegmentReader {
            first_seq: info.first_seq,
            next_seq: info.first_seq,
            file: BufReader::with_capacity(256 << 10, File::open(&info.path)?.take(info.bytes)),
        })
    }

    /// The next record, or `None` at the end of the segment.
    pub fn next(&mut self) -> io::Result<Option<Record>> {
        let mut h = [0u8; HEADER_LEN];
        if !read_full(&mut self.file, &mut h)? {
            return Ok(None);
        }
        let header = record::decode_header(&h);
        let mut payload = vec![0u8; header.len];
        if header.seq != self.next_seq
            || !read_full(&mut self.file, &mut payload)?
            || !record::verify(&header, &payload)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "spool segment {} is corrupt at seq {}",
                    self.first_seq, self.next_seq
                ),
            ));
        }
        self.next_seq += 1;
        Ok(Some(Record {
            seq: header.seq,
            payload: Bytes::from(payload),
        }))
    }

    /// Skip records until the next one is `seq`; `Ok(false)` if the segment ends first.
    pub fn skip_to(&mut self, seq: u64) -> io::Result<bool> {
        while self.next_seq < seq {
            let mut h = [0u8; HEADER_LEN];
            if !read_full(&mut self.file, &mut h)? {
                return Ok(false);
            }
            let header = record::decode_header(&h);
            let skipped = io::copy(
                &mut (&mut self.file).take(header.len as u64),
                &mut io::sink(),
            )?;
            if skipped < header.len as u64 {
                return Ok(false);
            }
            self.next_seq += 1;
        }
        Ok(true)
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
        let mut r = SegmentReader::open(info).unwrap();
        assert!(r.skip_to(11).unwrap());
        assert_eq!(r.next().unwrap().unwrap().payload, Bytes::from("event 11"));
    }
}
