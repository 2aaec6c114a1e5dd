//! The newest durable records, kept in memory after the writer commits them, so a sink that
//! keeps up reads what ingest just wrote without a disk read and a checksum per record. Records
//! are kept until every sink has committed them, up to a budget; a sink that falls further
//! behind reads the segment files, as after a restart.

use std::collections::VecDeque;

use bytes::Bytes;

use super::Record;

/// Payload bytes kept.
pub const BUDGET: usize = 16 << 20;

/// Committed groups of records, oldest first, holding at most `budget` payload bytes.
pub struct Recent {
    budget: usize,
    bytes: usize,
    /// (sequence number of the first payload, payloads, their bytes) per committed append.
    groups: VecDeque<(u64, Vec<Bytes>, usize)>,
}

impl Recent {
    pub fn new(budget: usize) -> Recent {
        Recent {
            budget,
            bytes: 0,
            groups: VecDeque::new(),
        }
    }

    /// Keep an append that is now durable; its records follow the ones already kept.
    pub fn push(&mut self, first_seq: u64, payloads: Vec<Bytes>) {
        if let Some((seq, last, _)) = self.groups.back() {
            if seq + last.len() as u64 != first_seq {
                // A gap (a refused group left none on disk, or a restart): start over.
                self.clear();
            }
        }
        let bytes = payloads.iter().map(Bytes::len).sum::<usize>();
        self.bytes += bytes;
        self.groups.push_back((first_seq, payloads, bytes));
        while self.bytes > self.budget {
            let Some((_, _, old)) = self.groups.pop_front() else {
                break;
            };
            self.bytes -= old;
        }
    }

    /// Drop the groups that end before `seq` (every sink has committed them).
    pub fn forget_before(&mut self, seq: u64) {
        while let Some((first, group, bytes)) = self.groups.front() {
            if first + group.len() as u64 > seq {
                break;
            }
            self.bytes -= bytes;
            self.groups.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.groups.clear();
        self.bytes = 0;
    }

    /// Records from `from` on, up to `max_records` and about `max_bytes`, appended to `out`.
    /// Returns false, adding nothing, when `from` is not held.
    pub fn read(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Record>,
    ) -> bool {
        let i = self.groups.partition_point(|(seq, _, _)| *seq <= from);
        let Some((first, group, _)) = i.checked_sub(1).map(|i| &self.groups[i]) else {
            return false;
        };
        if from >= first + group.len() as u64 {
            return false;
        }
        let mut bytes = 0;
        let records = self
            .groups
            .range(i - 1..)
            .flat_map(|(first, group, _)| {
                group
                    .iter()
                    .enumerate()
                    .map(move |(k, p)| (first + k as u64, p))
            })
            .skip((from - first) as usize);
        for (s, payload) in records {
            if out.len() >= max_records || bytes >= max_bytes {
                break;
            }
            bytes += payload.len();
            out.push(Record {
                seq: s,
                payload: payload.clone(),
            });
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(n: usize, size: usize) -> Vec<Bytes> {
        (0..n).map(|_| Bytes::from(vec![b'x'; size])).collect()
    }

    fn seqs(r: &Recent, from: u64, max: usize) -> Option<Vec<u64>> {
        let mut out = Vec::new();
        r.read(from, max, usize::MAX, &mut out)
            .then(|| out.iter().map(|r| r.seq).collect())
    }

    #[test]
    fn reads_across_groups_and_forgets_the_oldest() {
        let mut r = Recent::new(100);
        r.push(10, group(3, 10));
        r.push(13, group(2, 10));
        assert_eq!(seqs(&r, 11, 3), Some(vec![11, 12, 13]));
        assert_eq!(seqs(&r, 14, 9), Some(vec![14]));
        assert_eq!(seqs(&r, 9, 9), None, "before the oldest");
        assert_eq!(seqs(&r, 15, 9), None, "not written yet");
        r.push(15, group(6, 10)); // 110 bytes: the first group goes
        assert_eq!(seqs(&r, 12, 9), None);
        assert_eq!(seqs(&r, 13, 100).unwrap().len(), 8);
        r.push(30, group(1, 1)); // a gap: only the new group is kept
        assert_eq!(seqs(&r, 20, 9), None);
        assert_eq!(seqs(&r, 30, 9), Some(vec![30]));
        r.push(31, group(2, 1));
        r.forget_before(31);
        assert_eq!(seqs(&r, 30, 9), None, "committed by every sink");
        r.forget_before(32);
        assert_eq!(
            seqs(&r, 31, 9),
            Some(vec![31, 32]),
            "a group goes only when all of it is committed"
        );
    }
}
