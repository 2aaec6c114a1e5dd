//! Recently accepted messageIds, so an event sent twice is stored once. Browsers resend what
//! they could not see acknowledged (a page left while its batch was in flight), and server
//! SDKs retry after timeouts; both resend the same event with the same messageId. Ids are
//! remembered only after the spool has the event, so a refused request can always be retried.
//! While a request stores an event its key is claimed: a copy arriving meanwhile (a page's
//! close-time beacon and the next page's resend often do) waits for that outcome instead of
//! passing the check too.
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
//! many) are remembered.
//!
//! Restarts: every spooled event carries its key (see `sinks::meta`), and keys are SipHash
//! under a secret seed kept beside the spool ([`load_seed`]), so the same event gets the same
//! key in the next process. At start the collector reads the keys of the spool's newest events
//! back ([`crate::spool::Spool::recent`]), so a browser resending at its next page load what a
//! collector killed mid-request had stored is still stored once. Not shared between
//! collectors, so downstream jobs should still dedupe by messageId.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use siphasher::sip::SipHasher13;
use tokio::sync::Notify;

use crate::sinks::meta::{self, EventMeta};
use crate::spool::Spool;

/// Keys are already uniform 64-bit hashes (under a secret seed, so clients cannot aim ids at
/// one bucket): the sets use them as they are.
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
    seed: [u8; 16],
    state: Mutex<State>,
    /// Wakes requests waiting on a claimed key when a claim settles.
    settled: Notify,
}

#[derive(Default)]
struct State {
    current: KeySet,
    previous: KeySet,
    /// Keys a request is storing now: a copy arriving meanwhile waits for the outcome.
    claimed: KeySet,
}

impl State {
    fn remembers(&self, key: &u64) -> bool {
        self.current.contains(key) || self.previous.contains(key)
    }
}

/// How long a request waits for another request storing the same keys before storing them
/// itself. The wait ends sooner in practice: a claim lasts one spool append.
const CLAIM_WAIT: Duration = Duration::from_secs(5);

/// The new keys of one request, claimed while it stores their events: other requests with the
/// same keys wait for the outcome. [`Claim::stored`] remembers them; dropping the claim
/// without it (a failed append, a request cancelled) releases them, so a copy can be stored.
pub struct Claim<'a> {
    dedupe: &'a Dedupe,
    /// Keys this request claimed (not those it stores after waiting in vain).
    owned: Vec<u64>,
    /// Every key whose event this request stores.
    fresh: Vec<u64>,
}

impl Claim<'_> {
    /// The events are in the spool: remember their keys.
    pub fn stored(mut self) {
        let owned = std::mem::take(&mut self.owned);
        let mut state = self.dedupe.state.lock().unwrap();
        for k in &owned {
            state.claimed.remove(k);
        }
        self.dedupe.remember_locked(&mut state, &self.fresh);
        drop(state);
        self.dedupe.settled.notify_waiters();
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.owned.is_empty() {
            return;
        }
        let mut state = self.dedupe.state.lock().unwrap();
        for k in &self.owned {
            state.claimed.remove(k);
        }
        drop(state);
        self.dedupe.settled.notify_waiters();
    }
}

impl Dedupe {
    /// Remember at least the last `capacity` ids, keyed under `seed`; 0 turns deduplication
    /// off.
    pub fn new(capacity: usize, seed: [u8; 16]) -> Dedupe {
        Dedupe {
            capacity,
            seed,
            state: Mutex::new(Default::default()),
            settled: Notify::new(),
        }
    }

    /// Remember at least the last `capacity` ids, under the seed kept at `seed_path`, starting
    /// with the keys of the newest events in `spool`: the window a restart keeps.
    pub fn open(capacity: usize, seed_path: &Path, spool: &Spool) -> anyhow::Result<Dedupe> {
        let seed = load_seed(seed_path)
            .with_context(|| format!("reading the dedupe seed {}", seed_path.display()))?;
        let dedupe = Dedupe::new(capacity, seed);
        if capacity == 0 {
            return Ok(dedupe);
        }
        let started = std::time::Instant::now();
        let mut keys = Vec::new();
        let read = spool
            .recent(capacity, |payload| keys.extend(meta::dedupe_key(payload)))
            .context("reading the spool's newest events")?;
        dedupe.remember(&keys);
        tracing::info!(
            events = read,
            keys = keys.len(),
            ms = started.elapsed().as_millis() as u64,
            "dedupe window rebuilt from the spool"
        );
        Ok(dedupe)
    }

    /// The key of one event: its scope, messageId, type, name and user ids, hashed to 64 bits.
    /// Each field is written with its length, so no two lists of fields hash the same input;
    /// the bytes are fixed here (not by `Hash` impls) because keys outlive the process.
    pub fn key(&self, scope: &str, meta: &EventMeta) -> u64 {
        let mut h = SipHasher13::new_with_key(&self.seed);
        for field in [
            Some(scope),
            meta.message_id.as_deref(),
            meta.kind.as_deref(),
            meta.event_name(),
            meta.user_id.as_deref(),
            meta.anonymous_id.as_deref(),
        ] {
            match field {
                Some(s) => {
                    h.write_u64(s.len() as u64);
                    h.write(s.as_bytes());
                }
                None => h.write_u64(u64::MAX),
            }
        }
        h.finish()
    }

    /// For each key, whether it is new: neither remembered nor repeated earlier in `keys`. The
    /// new ones are claimed until the returned [`Claim`] settles. If another request is storing
    /// one of them, this waits (claiming nothing meanwhile, so two requests never wait on each
    /// other) for its outcome, up to [`CLAIM_WAIT`]; past that the event is stored again, since
    /// a duplicate is better than a loss.
    pub async fn claim(&self, keys: &[u64]) -> (Vec<bool>, Claim<'_>) {
        let mut claim = Claim {
            dedupe: self,
            owned: Vec::new(),
            fresh: Vec::new(),
        };
        if self.capacity == 0 {
            return (vec![true; keys.len()], claim);
        }
        let unrepeated: Vec<bool> = if keys.len() <= SMALL_BATCH {
            (0..keys.len())
                .map(|i| !keys[..i].contains(&keys[i]))
                .collect()
        } else {
            let mut batch = KeySet::with_capacity_and_hasher(keys.len(), Default::default());
            keys.iter().map(|&k| batch.insert(k)).collect()
        };
        let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
        loop {
            // Made before the state is read, so a claim settling after the read still wakes it.
            let settled = self.settled.notified();
            {
                let mut state = self.state.lock().unwrap();
                let fresh: Vec<bool> = keys
                    .iter()
                    .zip(&unrepeated)
                    .map(|(k, &f)| f && !state.remembers(k))
                    .collect();
                let waiting = keys
                    .iter()
                    .zip(&fresh)
                    .any(|(k, &f)| f && state.claimed.contains(k));
                if !waiting || tokio::time::Instant::now() >= deadline {
                    for (&k, _) in keys.iter().zip(&fresh).filter(|(_, &f)| f) {
                        claim.fresh.push(k);
                        if state.claimed.insert(k) {
                            claim.owned.push(k);
                        }
                    }
                    return (fresh, claim);
                }
            }
            let _ = tokio::time::timeout_at(deadline, settled).await;
        }
    }

    pub fn remember(&self, keys: &[u64]) {
        if self.capacity == 0 {
            return;
        }
        self.remember_locked(&mut self.state.lock().unwrap(), keys);
    }

    fn remember_locked(&self, state: &mut State, keys: &[u64]) {
        if self.capacity == 0 {
            return;
        }
        let State {
            current, previous, ..
        } = state;
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

/// The secret seed of the dedupe keys, kept in the file at `path`: read it, or make one and
/// store it durably (written aside, fsync'd, then renamed) when there is none yet.
pub fn load_seed(path: &Path) -> std::io::Result<[u8; 16]> {
    match std::fs::read(path) {
        Ok(bytes) => {
            return bytes.try_into().map_err(|_| {
                std::io::Error::other(format!(
                    "{} is not a 16-byte dedupe seed; delete it to make a new one",
                    path.display()
                ))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let seed = uuid::Uuid::new_v4().into_bytes();
    let aside = path.with_extension("new");
    let mut f = std::fs::File::create(&aside)?;
    f.write_all(&seed)?;
    f.sync_all()?;
    std::fs::rename(&aside, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 16] = *b"0123456789abcdef";

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
        let d = Dedupe::new(10, SEED);
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

    /// Claims `keys` and settles the claim as stored; returns which were new.
    async fn store(d: &Dedupe, keys: &[u64]) -> Vec<bool> {
        let (fresh, claim) = d.claim(keys).await;
        claim.stored();
        fresh
    }

    #[tokio::test]
    async fn remembers_per_scope_and_forgets_the_oldest() {
        let d = Dedupe::new(2, SEED);
        let key = |scope: &str, id: &str| d.key(scope, &meta(id, "u"));
        let (a, b, c) = (key("web", "m1"), key("web", "m2"), key("web", "m3"));
        assert_eq!(
            store(&d, &[a, b, a]).await,
            [true, true, false],
            "repeats in one batch"
        );
        assert_eq!(store(&d, &[a, b]).await, [false, false]);
        assert_eq!(
            d.claim(&[key("app", "m1")]).await.0,
            [true],
            "another source's m1 is another event"
        );
        assert_ne!(key("we", "bm1"), key("web", "m1"));
        store(&d, &[c]).await;
        assert_eq!(
            store(&d, &[a, c]).await,
            [false, false],
            "two generations are kept"
        );
        store(&d, &[key("web", "m4")]).await;
        assert_eq!(
            d.claim(&[a, b, c]).await.0,
            [true, true, false],
            "the oldest generation is forgotten"
        );
        let many: Vec<u64> = (0..40)
            .map(|i| key("big", &format!("m{}", i % 20)))
            .collect();
        assert_eq!(
            d.claim(&many).await.0,
            (0..40).map(|i| i < 20).collect::<Vec<_>>(),
            "repeats in a batch too large to compare pairwise"
        );
        let off = Dedupe::new(0, SEED);
        off.remember(&[a]);
        assert_eq!(store(&off, &[a, a]).await, [true, true]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_copy_waits_for_the_claim_on_its_key() {
        let d = Dedupe::new(10, SEED);
        let key = |id: &str| d.key("web", &meta(id, "u"));
        let (a, b) = (key("a"), key("b"));

        // Stored: the copy waiting on it is a duplicate.
        let (_, first) = d.claim(&[a]).await;
        let both = [a, b];
        let copy = d.claim(&both);
        tokio::pin!(copy);
        assert!(
            futures::poll!(copy.as_mut()).is_pending(),
            "waits while a is claimed"
        );
        first.stored();
        let (fresh, copy) = copy.await;
        assert_eq!(fresh, [false, true]);
        copy.stored();

        // Not stored (the append failed, the claim is dropped): the copy stores it.
        let c = key("c");
        let (_, failed) = d.claim(&[c]).await;
        let just_c = [c];
        let copy = d.claim(&just_c);
        tokio::pin!(copy);
        assert!(futures::poll!(copy.as_mut()).is_pending());
        drop(failed);
        let (fresh, copy) = copy.await;
        assert_eq!(fresh, [true]);

        // Never settled: after CLAIM_WAIT the copy is stored anyway; a duplicate, not a loss.
        let started = tokio::time::Instant::now();
        assert_eq!(d.claim(&[c]).await.0, [true]);
        assert_eq!(started.elapsed(), CLAIM_WAIT);
        drop(copy);
        // Released: nothing stays claimed.
        assert!(d.state.lock().unwrap().claimed.is_empty());
    }

    #[test]
    fn keys_stay_the_same_under_a_stored_seed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedupe.seed");
        let seed = load_seed(&path).unwrap();
        assert_eq!(load_seed(&path).unwrap(), seed, "read back, not made anew");
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_seed(&other.path().join("s")).unwrap(), seed);
        let (a, b) = (Dedupe::new(10, seed), Dedupe::new(10, seed));
        assert_eq!(
            a.key("web", &meta("1", "u1")),
            b.key("web", &meta("1", "u1"))
        );
        assert_ne!(
            a.key("web", &meta("1", "u1")),
            Dedupe::new(10, SEED).key("web", &meta("1", "u1"))
        );
        // Fixed bytes: the same key in every build, so a spool outlives an upgrade.
        assert_eq!(
            Dedupe::new(1, SEED).key("web", &meta("1", "u1")),
            0x4b03_6442_047f_6a09
        );
        std::fs::write(&path, b"short").unwrap();
        let e = load_seed(&path).unwrap_err().to_string();
        assert!(e.contains("not a 16-byte dedupe seed"), "{e}");
    }
}
