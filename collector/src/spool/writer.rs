//! The group-commit writer: one OS thread takes appends from every request, writes a whole
//! group with one `write` and one `fdatasync`, and only then answers each request. Thousands
//! of concurrent requests share one fsync, which is what makes durable acks cheap.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::record;
use super::segment::{segment_path, SegmentInfo};
use super::{AppendError, Shared};

/// Stop collecting a group once it holds this many bytes.
const GROUP_BYTES: usize = 4 << 20;

/// Under concurrent load, how long the writer waits for more appends before it commits a
/// group (PostgreSQL's `commit_delay`). Each fsync costs the kernel the same whatever the
/// group size, so fewer, larger groups leave more CPU for requests; a lone client, whose
/// groups hold one append, never waits.
const COMMIT_DELAY: std::time::Duration = std::time::Duration::from_micros(400);
/// Appends in the last group that count as concurrent load.
const COMMIT_SIBLINGS: usize = 2;

/// The scheduler time slice the writer asks for (see [`ask_for_short_slice`]).
const SLICE: std::time::Duration = std::time::Duration::from_micros(100);

/// Every request waits for this thread, and it needs the CPU only for moments: after an
/// fsync returns, to answer, and when appends arrive. On a busy machine the default slice let
/// each of those wakeups wait about a millisecond for a CPU (the 400 µs commit delay took
/// 1.0 ms on average, measured with `perf trace`). Linux's EEVDF scheduler (6.12 and later)
/// runs a thread that asks for a shorter slice sooner when it wakes; it gets no larger share of
/// the CPU. Older kernels ignore the request, and a refusal only costs latency.
fn ask_for_short_slice() {
    // SAFETY: `sched_attr` is plain data; the call reads it and changes only this thread.
    let result = unsafe {
        let mut attr: libc::sched_attr = std::mem::zeroed();
        attr.size = std::mem::size_of::<libc::sched_attr>() as u32;
        attr.sched_policy = libc::SCHED_OTHER as u32;
        attr.sched_runtime = SLICE.as_nanos() as u64;
        libc::syscall(
            libc::SYS_sched_setattr,
            0,
            &attr as *const libc::sched_attr,
            0,
        )
    };
    if result != 0 {
        let e = io::Error::last_os_error();
        tracing::debug!(error = %e, "spool writer keeps the default scheduler slice");
    }
}

/// Why a group could not be committed.
enum Failure {
    /// Nothing of the group stayed on disk (e.g. the disk is full); later groups may succeed.
    Write(io::Error),
    /// The disk's state is unknown (fsync failed); stop writing.
    Fatal(io::Error),
}

/// Where the writer answers an append.
pub(super) type Reply = oneshot::Sender<Result<Range<u64>, AppendError>>;

pub(super) enum Op {
    Append { payloads: Vec<Bytes>, reply: Reply },
    Close,
}

pub(super) struct Writer {
    pub shared: Arc<Shared>,
    pub file: File,
    pub segment_first: u64,
    pub segment_len: u64,
    pub segment_bytes: u64,
    pub next_seq: u64,
    /// The file is a reused spare: past `segment_len` it holds an old segment's bytes.
    pub reused: bool,
}

impl Writer {
    pub fn open_tail(
        shared: Arc<Shared>,
        tail: &SegmentInfo,
        next_seq: u64,
        segment_bytes: u64,
    ) -> io::Result<Writer> {
        // Written at explicit offsets: a reused file is longer than what it holds.
        let file = OpenOptions::new().write(true).open(&tail.path)?;
        Ok(Writer {
            shared,
            file,
            segment_first: tail.first_seq,
            segment_len: tail.bytes,
            segment_bytes,
            next_seq,
            reused: false,
        })
    }

    pub fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        ask_for_short_slice();
        let mut buf = Vec::with_capacity(GROUP_BYTES);
        let mut replies = Vec::new();
        let mut staged = Vec::new();
        let mut closing = false;
        let mut delayed = false;
        // Did the last group have company? Then more requests are likely in flight.
        let mut busy = false;
        while !closing {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let mut op = Some(first);
            while let Some(o) = op.take() {
                match o {
                    Op::Close => closing = true,
                    Op::Append { payloads, reply } => {
                        if let Some(s) = self.stage(payloads, reply, &mut buf, &mut replies) {
                            staged.push(s);
                        }
                    }
                }
                if closing || buf.len() >= GROUP_BYTES {
                    break;
                }
                op = rx.try_recv().ok();
                if op.is_none() && !delayed && busy {
                    // Let the requests already on their way join this fsync.
                    delayed = true;
                    std::thread::sleep(COMMIT_DELAY);
                    op = rx.try_recv().ok();
                }
            }
            delayed = false;
            busy = replies.len() >= COMMIT_SIBLINGS;
            if replies.is_empty() {
                continue;
            }
            let result = self.commit(&buf);
            buf.clear();
            if result.is_err() {
                staged.clear();
            }
            match result {
                Ok(()) => {
                    {
                        let mut recent = self.shared.recent.lock().unwrap();
                        for (first, payloads) in staged.drain(..) {
                            recent.push(first, payloads);
                        }
                    }
                    self.shared.head.send_replace(self.next_seq);
                    for (reply, range) in replies.drain(..) {
                        let _ = reply.send(Ok(range));
                    }
                }
                Err(Failure::Write(e)) => {
                    // Nothing of the group is left on disk (the segment was truncated back),
                    // nobody was told 2xx: refuse this group and keep going. A full disk
                    // answers 503 until space returns.
                    tracing::warn!(error = %e, "spool write failed; refusing this group");
                    self.next_seq = *self.shared.head.borrow();
                    for (reply, _) in replies.drain(..) {
                        let _ = reply.send(Err(AppendError::Io(e.to_string())));
                    }
                }
                Err(Failure::Fatal(e)) => {
                    // fsync failed: what the kernel holds is unknown. Stop taking writes; the
                    // next start truncates the tail at the first torn record.
                    tracing::error!(error = %e, "spool fsync failed; refusing further writes");
                    self.shared.failed.store(true, Ordering::SeqCst);
                    for (reply, _) in replies.drain(..) {
                        let _ = reply.send(Err(AppendError::Io(e.to_string())));
                    }
                    break;
                }
            }
        }
        let _ = self.trim().and_then(|()| self.file.sync_all());
        self.shared.closed.store(true, Ordering::SeqCst);
        rx.close();
        while let Ok(op) = rx.try_recv() {
            if let Op::Append { reply, .. } = op {
                let _ = reply.send(Err(AppendError::Closed));
            }
        }
    }

    /// Encode an append into the group buffer, or refuse it when the disk budget is spent.
    /// Returns the staged payloads with the sequence number of the first.
    fn stage(
        &mut self,
        payloads: Vec<Bytes>,
        reply: Reply,
        buf: &mut Vec<u8>,
        replies: &mut Vec<(Reply, Range<u64>)>,
    ) -> Option<(u64, Vec<Bytes>)> {
        if self.shared.failed.load(Ordering::SeqCst) {
            let _ = reply.send(Err(AppendError::Io("spool is failed".into())));
            return None;
        }
        let size: u64 = payloads
            .iter()
            .map(|p| (record::HEADER_LEN + p.len()) as u64)
            .sum();
        // Over budget: the window's room is given back first.
        let over = |shared: &Shared| {
            shared.used_bytes.load(Ordering::SeqCst) + buf.len() as u64 + size > shared.max_bytes
        };
        if over(&self.shared) && (!self.shared.release_window() || over(&self.shared)) {
            let _ = reply.send(Err(AppendError::Full));
            return None;
        }
        let start = self.next_seq;
        for p in &payloads {
            record::encode(self.next_seq, p, buf);
            self.next_seq += 1;
        }
        replies.push((reply, start..self.next_seq));
        Some((start, payloads))
    }

    /// Write the group durably, starting a new segment first if the current one is full.
    fn commit(&mut self, buf: &[u8]) -> Result<(), Failure> {
        if self.segment_len >= self.segment_bytes {
            self.rotate().map_err(Failure::Write)?;
        }
        if let Err(e) = self.file.write_all_at(buf, self.segment_len) {
            // Undo a partial write so the segment ends at the last acknowledged record.
            self.reused = false;
            return Err(match self.file.set_len(self.segment_len) {
                Ok(()) => Failure::Write(e),
                Err(t) => Failure::Fatal(io::Error::other(format!(
                    "{e}; truncating back failed too: {t}"
                ))),
            });
        }
        self.file.sync_data().map_err(Failure::Fatal)?;
        self.segment_len += buf.len() as u64;
        self.shared
            .used_bytes
            .fetch_add(buf.len() as u64, Ordering::SeqCst);
        let mut segments = self.shared.segments.lock().unwrap();
        let tail = segments.last_mut().expect("tail segment");
        tail.bytes = self.segment_len;
        tail.next_seq = self.next_seq;
        Ok(())
    }

    /// Cut a reused file back to what it holds, durably: only the tail segment may hold old
    /// bytes (the startup scan reads only the tail).
    fn trim(&mut self) -> io::Result<()> {
        if self.reused {
            self.file.set_len(self.segment_len)?;
            self.file.sync_all()?;
            self.reused = false;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.trim()?;
        // The group that will be written first gets seq numbers from this segment's start.
        let first = self.shared.head.borrow().to_owned();
        let path = segment_path(&self.shared.dir, first);
        let (file, reused) = match self.shared.take_spare() {
            Some(spare) => {
                std::fs::rename(&spare, &path)?;
                (OpenOptions::new().write(true).open(&path)?, true)
            }
            None => (
                OpenOptions::new()
                    .create_new(true)
                    .write(true)
                    .open(&path)?,
                false,
            ),
        };
        File::open(&self.shared.dir)?.sync_all()?;
        self.file = file;
        self.reused = reused;
        self.segment_first = first;
        self.segment_len = 0;
        self.shared.segments.lock().unwrap().push(SegmentInfo {
            first_seq: first,
            path,
            bytes: 0,
            next_seq: first,
        });
        tracing::debug!(first_seq = first, "spool segment started");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's (major, minor) version.
    fn kernel_version() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        (next(), next())
    }

    #[test]
    fn writer_thread_gets_a_short_slice() {
        if kernel_version() < (6, 12) {
            eprintln!("skipped: custom scheduler slices need Linux 6.12");
            return;
        }
        let slice = std::thread::spawn(|| {
            ask_for_short_slice();
            let sched = std::fs::read_to_string("/proc/thread-self/sched").unwrap();
            sched
                .lines()
                .find_map(|l| l.strip_prefix("se.slice"))
                .and_then(|v| v.trim_start_matches([' ', ':']).trim().parse::<u64>().ok())
        })
        .join()
        .unwrap();
        assert_eq!(slice, Some(SLICE.as_nanos() as u64));
    }
}
