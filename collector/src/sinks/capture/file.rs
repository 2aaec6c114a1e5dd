//! One capture file being written: Avro container blocks appended and fsync'd under a
//! `.avro.tmp` name, renamed to `.avro` when the file rolls.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use apache_avro::{Codec, Writer};

use super::schema::{self, SCHEMA};
use crate::sinks::meta::EventMeta;
use crate::spool::Record;

/// A `File` that gathers apache-avro's small writes (a block is written as two varints, the
/// data and a marker, then flushed) instead of making a syscall for each, and counts the
/// bytes. After a failed write it refuses all further writes, so nothing (not even the
/// Avro writer's flush on drop) lands after a torn block.
pub struct WholeWrites {
    file: File,
    pending: Vec<u8>,
    written: u64,
    failed: bool,
}

impl WholeWrites {
    pub fn new(file: File) -> Self {
        WholeWrites {
            file,
            pending: Vec::new(),
            written: 0,
            failed: false,
        }
    }
    pub fn into_file(self) -> File {
        self.file
    }
}

impl Write for WholeWrites {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other(
                "an earlier write to this capture file failed",
            ));
        }
        if buf.len() >= 64 << 10 {
            // The block's data: written as it is rather than copied.
            self.flush()?;
            if let Err(e) = self.file.write_all(buf) {
                self.failed = true;
                return Err(e);
            }
            self.written += buf.len() as u64;
            return Ok(buf.len());
        }
        self.pending.extend_from_slice(buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other(
                "an earlier write to this capture file failed",
            ));
        }
        let result = self.file.write_all(&self.pending);
        self.pending.clear();
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}

/// Let the kernel drop the file's cached pages, all written and fsync'd. Capture files are
/// written once and read by other jobs later; cached, they would only push out pages the
/// collector uses, and each delivery would need memory the kernel has not handed out
/// recently, which costs far more to write into than pages it just took back (about 400 MB/s
/// against 4 GB/s on the VMs this was measured on).
fn drop_cached(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: `file` is an open descriptor; the call only advises the page cache.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

/// Avro block size: larger than a delivery, so each delivery is one block.
const BLOCK_BYTES: usize = 8 << 20;

pub struct CaptureFile {
    pub tmp_path: PathBuf,
    pub final_path: PathBuf,
    pub opened: Instant,
    /// Spool sequence numbers of the records in the file.
    pub seqs: Option<std::ops::Range<u64>>,
    writer: Writer<'static, WholeWrites>,
    /// Bytes known to be written: whole blocks (fsync'd when `sync`).
    synced: u64,
    /// Fsync each block. Not needed when the spool keeps the records until the file is
    /// uploaded: a file lost in a crash is rebuilt from the spool.
    sync: bool,
}

pub fn tmp_path_of(final_path: &Path) -> PathBuf {
    let mut p = final_path.as_os_str().to_owned();
    p.push(".tmp");
    PathBuf::from(p)
}

impl CaptureFile {
    pub fn create(final_path: PathBuf, codec: Codec, sync: bool) -> anyhow::Result<CaptureFile> {
        let dir = final_path.parent().expect("capture path has a parent");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp_path = tmp_path_of(&final_path);
        let file =
            File::create(&tmp_path).with_context(|| format!("creating {}", tmp_path.display()))?;
        let writer = Writer::builder()
            .schema(&SCHEMA)
            .writer(WholeWrites::new(file))
            .codec(codec)
            .block_size(BLOCK_BYTES)
            .build();
        Ok(CaptureFile {
            tmp_path,
            final_path,
            opened: Instant::now(),
            seqs: None,
            writer,
            synced: 0,
            sync,
        })
    }

    /// Append records as one Avro block and fsync it (when `sync`).
    pub fn append(&mut self, records: &[Record]) -> anyhow::Result<()> {
        // Events of one request share a receivedAt: format its enqueue time once.
        let mut last: Option<(Option<&str>, String)> = None;
        for r in records {
            let (meta, body) = EventMeta::split(&r.payload);
            let received_at = meta.received_at.as_deref();
            let fresh = match (&last, received_at) {
                (Some((Some(at), _)), Some(now)) => *at != now,
                _ => true,
            };
            if fresh {
                let text = schema::enqueued_time_of(received_at);
                // Only a borrowed receivedAt outlives this record; keep the text for the next.
                let at = match &meta.received_at {
                    Some(Cow::Borrowed(at)) => Some(*at),
                    _ => None,
                };
                last = Some((at, text));
            }
            let enqueued = last.as_ref().map_or("", |(_, text)| text.as_str());
            self.writer
                .append_ser(schema::event_data(r.seq, &meta, body, enqueued))
                .context("encoding capture record")?;
        }
        self.writer.flush().context("writing capture block")?;
        if self.sync {
            self.writer
                .get_ref()
                .file
                .sync_data()
                .context("fsync of capture file")?;
            drop_cached(&self.writer.get_ref().file);
        }
        self.synced = self.bytes();
        if let (Some(first), Some(last)) = (records.first(), records.last()) {
            let start = self.seqs.as_ref().map_or(first.seq, |s| s.start);
            self.seqs = Some(start..last.seq + 1);
        }
        Ok(())
    }

    /// After a failed append: cut the file back to its last fsync'd block and finish it (or
    /// delete it if nothing was synced), so no torn block stays in the output. The records of
    /// the failed append are delivered again, into a new file.
    pub fn abandon(mut self) -> anyhow::Result<Option<PathBuf>> {
        self.writer.get_mut().failed = true;
        let file = &self.writer.get_ref().file;
        file.set_len(self.synced)
            .context("truncating a failed capture file")?;
        file.sync_all()?;
        let (synced, tmp, fin) = (self.synced, self.tmp_path.clone(), self.final_path.clone());
        drop(self); // the Avro writer's flush on drop is refused by the poisoned file
        if synced == 0 {
            std::fs::remove_file(&tmp)?;
            return Ok(None);
        }
        std::fs::rename(&tmp, &fin)?;
        Ok(Some(fin))
    }

    pub fn bytes(&self) -> u64 {
        self.writer.get_ref().written
    }

    /// Rename to the final name and make the rename durable.
    pub fn finish(self) -> anyhow::Result<PathBuf> {
        self.writer
            .into_inner()
            .context("flushing capture file")?
            .into_file()
            .sync_all()?;
        std::fs::rename(&self.tmp_path, &self.final_path).with_context(|| {
            format!(
                "renaming {} to {}",
                self.tmp_path.display(),
                self.final_path.display()
            )
        })?;
        if let Some(dir) = self.final_path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(self.final_path)
    }
}
