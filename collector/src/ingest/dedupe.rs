//! Recently accepted messageIds, so an event sent twice is stored once. Browsers resend what
//! they could not see acknowledged (a page left while its batch was in flight), and server
//! SDKs retry after timeouts; both keep the messageId. Ids are remembered per source (or write
//! key in open mode) and only after the spool has the event, so a refused request can always
//! be retried. Bounded: the oldest ids are forgotten first. Not shared across restarts or
//! collectors, so downstream jobs should still dedupe by messageId.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;

/// Keys are already uniform 64-bit hashes (from a per-process random seed, so clients cannot
/// aim ids at one bucket): the sets use them as they are.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeySet = HashSet<u64, BuildHasherDefault<KeyHasher>>;

pub struct Dedupe {
    capacity: usize,
    seed: RandomState,
    state: Mutex<(KeySet, VecDeque<u64>)>,
}

impl Dedupe {
    /// Remember up to `capacity` ids; 0 turns deduplication off.
    pub fn new(capacity: usize) -> Dedupe {
        Dedupe {
            capacity,
            seed: RandomState::new(),
            state: Mutex::new((
                KeySet::with_capacity_and_hasher(capacity.min(1 << 20), Default::default()),
                VecDeque::new(),
            )),
        }
    }

    /// The key of one event: its scope and messageId, hashed to 64 bits.
    pub fn key(&self, scope: &str, message_id: &str) -> u64 {
        self.seed.hash_one((scope, message_id))
    }

    /// For each key, whether it is new: neither remembered nor repeated earlier in `keys`.
    pub fn fresh(&self, keys: &[u64]) -> Vec<bool> {
        if self.capacity == 0 {
            return vec![true; keys.len()];
        }
        let mut batch = KeySet::with_capacity_and_hasher(keys.len(), Default::default());
        let mut fresh: Vec<bool> = keys.iter().map(|&k| batch.insert(k)).collect();
        let guard = self.state.lock().unwrap();
        for (k, f) in keys.iter().zip(&mut fresh) {
            *f = *f && !guard.0.contains(k);
        }
        fresh
    }

    pub fn remember(&self, keys: &[u64]) {
        if self.capacity == 0 {
            return;
        }
        let mut guard = self.state.lock().unwrap();
        let (set, order) = &mut *guard;
        for &k in keys {
            if set.insert(k) {
                order.push_back(k);
            }
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    set.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_scope_and_forgets_the_oldest() {
        let d = Dedupe::new(2);
        let (a, b, c) = (d.key("web", "m1"), d.key("web", "m2"), d.key("web", "m3"));
        assert_eq!(
            d.fresh(&[a, b, a]),
            [true, true, false],
            "repeats in one batch"
        );
        d.remember(&[a, b]);
        assert_eq!(d.fresh(&[a, b]), [false, false]);
        assert_eq!(
            d.fresh(&[d.key("app", "m1")]),
            [true],
            "another source's m1 is another event"
        );
        assert_ne!(d.key("we", "bm1"), d.key("web", "m1"));
        d.remember(&[c]);
        assert_eq!(
            d.fresh(&[a, c]),
            [true, false],
            "the oldest id is forgotten past capacity"
        );
        let off = Dedupe::new(0);
        off.remember(&[a]);
        assert_eq!(off.fresh(&[a, a]), [true, true]);
    }
}
