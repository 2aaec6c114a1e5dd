//! Recently accepted messageIds, so an event sent twice is stored once. Browsers resend what
//! they could not see acknowledged (a page left while its batch was in flight), and server
//! SDKs retry after timeouts; both resend the same event with the same messageId. Ids are
//! remembered only after the spool has the event, so a refused request can always be retried.
//!
//! The key is more than the messageId. Segment dedupes on messageId per source, which trusts
//! every client to make unique ids; a buggy or hostile one that sends a constant id (`"1"`)
//! would have every other user's events with that id acknowledged and dropped. So the key is the
//! source (or write key in open mode), the messageId, the type, the event or page name, the
//! userId and the anonymousId: a resend repeats all of them, while different users' events
//! never share a key. (An empty messageId is replaced by a fresh one before this; see enrich.)
//!
//! Bounded: keys live in two generations of `capacity` each; when the current one is full,
//! the previous one is forgotten, so at least the last `capacity` keys (and at most twice as
//! many) are remembered. Not shared across restarts or collectors, so downstream jobs should
//! still dedupe by messageId.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;

use crate::sinks::meta::EventMeta;

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

/// Up to this many events, repeats within a batch are found by comparing keys pairwise
/// rather than through a set.
const SMALL_BATCH: usize = 16;

pub struct Dedupe {
    capacity: usize,
    seed: RandomState,
    /// (current, previous) generations.
    state: Mutex<(KeySet, KeySet)>,
}

impl Dedupe {
    /// Remember at least the last `capacity` ids; 0 turns deduplication off.
    pub fn new(capacity: usize) -> Dedupe {
        Dedupe {
            capacity,
            seed: RandomState::new(),
            state: Mutex::new(Default::default()),
        }
    }

    /// The key of one event: its scope, messageId, type, name and user ids, hashed to 64 bits.
    pub fn key(&self, scope: &str, meta: &EventMeta) -> u64 {
        self.seed.hash_one((
            scope,
            meta.message_id.as_deref(),
            meta.kind.as_deref(),
            meta.event_name(),
            meta.user_id.as_deref(),
            meta.anonymous_id.as_deref(),
        ))
    }

    /// For each key, whether it is new: neither remembered nor repeated earlier in `keys`.
    pub fn fresh(&self, keys: &[u64]) -> Vec<bool> {
        if self.capacity == 0 {
            return vec![true; keys.len()];
        }
        let mut fresh: Vec<bool> = if keys.len() <= SMALL_BATCH {
            (0..keys.len())
                .map(|i| !keys[..i].contains(&keys[i]))
                .collect()
        } else {
            let mut batch = KeySet::with_capacity_and_hasher(keys.len(), Default::default());
            keys.iter().map(|&k| batch.insert(k)).collect()
        };
        let guard = self.state.lock().unwrap();
        for (k, f) in keys.iter().zip(&mut fresh) {
            *f = *f && !guard.0.contains(k) && !guard.1.contains(k);
        }
        fresh
    }

    pub fn remember(&self, keys: &[u64]) {
        if self.capacity == 0 {
            return;
        }
        let mut guard = self.state.lock().unwrap();
        let (current, previous) = &mut *guard;
        for &k in keys {
            if previous.contains(&k) || !current.insert(k) {
                continue;
            }
            if current.len() >= self.capacity {
                // The previous generation goes; its table is reused for the next one.
                previous.clear();
                std::mem::swap(current, previous);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta<'a>(id: &'a str, user: &'a str) -> EventMeta<'a> {
        EventMeta {
            kind: Some("track".into()),
            event: Some("Clicked".into()),
            message_id: Some(id.into()),
            user_id: Some(user.into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_key_tells_users_and_events_apart() {
        let d = Dedupe::new(10);
        let k = d.key("web", &meta("1", "u1"));
        assert_eq!(k, d.key("web", &meta("1", "u1")), "a resend");
        assert_ne!(
            k,
            d.key("web", &meta("1", "u2")),
            "another user's constant id"
        );
        assert_ne!(k, d.key("app", &meta("1", "u1")), "another source");
        let mut page = meta("1", "u1");
        page.kind = Some("page".into());
        assert_ne!(k, d.key("web", &page), "another type");
    }

    #[test]
    fn remembers_per_scope_and_forgets_the_oldest() {
        let d = Dedupe::new(2);
        let key = |scope: &str, id: &str| d.key(scope, &meta(id, "u"));
        let (a, b, c) = (key("web", "m1"), key("web", "m2"), key("web", "m3"));
        assert_eq!(
            d.fresh(&[a, b, a]),
            [true, true, false],
            "repeats in one batch"
        );
        d.remember(&[a, b]);
        assert_eq!(d.fresh(&[a, b]), [false, false]);
        assert_eq!(
            d.fresh(&[key("app", "m1")]),
            [true],
            "another source's m1 is another event"
        );
        assert_ne!(key("we", "bm1"), key("web", "m1"));
        d.remember(&[c]);
        assert_eq!(d.fresh(&[a, c]), [false, false], "two generations are kept");
        d.remember(&[key("web", "m4")]);
        assert_eq!(
            d.fresh(&[a, b, c]),
            [true, true, false],
            "the oldest generation is forgotten"
        );
        let many: Vec<u64> = (0..40)
            .map(|i| key("big", &format!("m{}", i % 20)))
            .collect();
        assert_eq!(
            d.fresh(&many),
            (0..40).map(|i| i < 20).collect::<Vec<_>>(),
            "repeats in a batch too large to compare pairwise"
        );
        let off = Dedupe::new(0);
        off.remember(&[a]);
        assert_eq!(off.fresh(&[a, a]), [true, true]);
    }
}
