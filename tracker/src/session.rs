//! The visit ("session") an event belongs to: it starts at the first event and ends after
//! 30 minutes without activity. Its id is the start time in milliseconds (the convention
//! analytics tools share), so it is both unique per browser and sortable.
//!
//! Persisted as the text "id last" so the session survives reloads and spans tabs.

use crate::json::push_u64;
use alloc::string::String;

/// Inactivity after which the next event starts a new session.
pub const TIMEOUT_MS: f64 = 30.0 * 60.0 * 1000.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Session {
    /// Start time of the session, ms since the epoch.
    pub id: f64,
    /// Time of the last activity, ms since the epoch.
    pub last: f64,
}

impl Session {
    pub fn new(now: f64) -> Self {
        Session { id: now, last: now }
    }

    /// Records activity at `now`, first starting a new session if the old one expired.
    /// Returns true when a new session started.
    pub fn touch(&mut self, now: f64) -> bool {
        let expired = now - self.last > TIMEOUT_MS || now < self.id;
        if expired {
            *self = Session::new(now);
        } else if now > self.last {
            self.last = now;
        }
        expired
    }

    pub fn encode(&self) -> String {
        let mut s = String::new();
        push_u64(&mut s, self.id as u64);
        s.push(' ');
        push_u64(&mut s, self.last as u64);
        s
    }

    pub fn decode(s: &str) -> Option<Session> {
        let (id, last) = crate::text::split_once(s, b' ')?;
        let id = crate::text::parse_u64(id)? as f64;
        let last = crate::text::parse_u64(last)? as f64;
        (last >= id).then_some(Session { id, last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const T0: f64 = 1_700_000_000_000.0;

    #[test]
    fn activity_within_timeout_keeps_session() {
        let mut s = Session::new(T0);
        assert!(!s.touch(T0 + 10_000.0));
        assert!(!s.touch(T0 + 10_000.0 + TIMEOUT_MS));
        assert_eq!(s.id, T0);
        assert_eq!(s.last, T0 + 10_000.0 + TIMEOUT_MS);
    }

    #[test]
    fn thirty_minutes_idle_starts_new_session() {
        let mut s = Session::new(T0);
        let later = T0 + TIMEOUT_MS + 1.0;
        assert!(s.touch(later));
        assert_eq!(
            s,
            Session {
                id: later,
                last: later
            }
        );
    }

    #[test]
    fn clock_going_backwards_starts_new_session() {
        let mut s = Session::new(T0);
        assert!(s.touch(T0 - 5.0));
        assert_eq!(s.id, T0 - 5.0);
    }

    #[test]
    fn round_trips_through_storage_text() {
        let s = Session {
            id: T0,
            last: T0 + 42.0,
        };
        assert_eq!(s.encode(), "1700000000000 1700000000042");
        assert_eq!(Session::decode(&s.encode()), Some(s));
        assert_eq!(Session::decode("garbage"), None);
        assert_eq!(Session::decode("5 3"), None);
        assert_eq!(Session::decode("5"), None);
    }
}
