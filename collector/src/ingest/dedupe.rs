//! Recently accepted messageIds, so an event sent twice is stored once. Browsers resend what
//! they could not see acknowledged (a page left while its batch was in flight), and server
//! SDKs retry after timeouts; both keep the messageId. Ids are remembered per source (or write
//! key in open mode) and only after the spool has the event, so a refused request can always
//! be retried. Bounded: the oldest ids are forgotten first. Not shared across restarts or
//! collectors, so downstream jobs should still dedupe by messageId.

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

pub struct Dedupe {
    capacity: usize,
    state: Mutex<(HashSet<u64>, VecDeque<u64>)>,
}

/// The key of one event: its scope and messageId, hashed to 64 bits.
pub fn key(scope: &str, message_id: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    scope.hash(&mut h);
    message_id.hash(&mut h);
    h.finish()
}

impl Dedupe {
    /// Remember up to `capacity` ids; 0 turns deduplication off.
    pub fn new(capacity: usize) -> Dedupe {
        Dedupe {
            capacity,
            state: Mutex::new((
                HashSet::with_capacity(capacity.min(1 << 20)),
                VecDeque::new(),
            )),
        }
    }

    pub fn seen(&self, key: u64) -> bool {
        self.capacity > 0 && self.state.lock().unwrap().0.contains(&key)
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
        let (a, b, c) = (key("web", "m1"), key("web", "m2"), key("web", "m3"));
        assert!(!d.seen(a));
        d.remember(&[a, b]);
        assert!(d.seen(a) && d.seen(b));
        assert!(
            !d.seen(key("app", "m1")),
            "another source's m1 is another event"
        );
        d.remember(&[c]);
        assert!(!d.seen(a), "the oldest id is forgotten past capacity");
        assert!(d.seen(c));
        let off = Dedupe::new(0);
        off.remember(&[a]);
        assert!(!off.seen(a));
    }
}
