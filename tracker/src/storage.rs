//! Where identifiers and the queue persist: localStorage, sessionStorage, or nowhere.
//!
//! Storage can be missing, disabled, or throw on every write (old Safari private mode, a
//! full quota). A store is only used if a probe write succeeds, and every later failure
//! is swallowed by the host: without storage the tracker still works, it just cannot
//! carry anything over to the next page.

use crate::host::Host;
use alloc::string::String;

/// Prefix of every key the tracker writes.
pub const PREFIX: &str = "_cs.";

pub const LOCAL: u8 = 1;
pub const SESSION: u8 = 2;

#[derive(Clone, Copy)]
pub struct Store {
    /// 0: none, LOCAL or SESSION.
    area: u8,
}

impl Store {
    /// No storage: everything stays in memory.
    pub fn none() -> Store {
        Store { area: 0 }
    }

    /// `area` (LOCAL or SESSION) if it can be written, else none.
    pub fn open(h: &Host, area: u8) -> Store {
        let probe = "_cs.probe";
        let ok = h.set(area, probe, "1");
        h.del(area, probe);
        Store {
            area: if ok { area } else { 0 },
        }
    }

    pub fn get(&self, h: &Host, key: &str) -> Option<String> {
        if self.area == 0 {
            return None;
        }
        h.get(self.area, key)
    }

    /// Returns false when the value could not be stored.
    pub fn set(&self, h: &Host, key: &str, value: &str) -> bool {
        self.area != 0 && h.set(self.area, key, value)
    }

    pub fn remove(&self, h: &Host, key: &str) {
        if self.area != 0 {
            h.del(self.area, key);
        }
    }

    /// The keys starting with `prefix`, one per line.
    pub fn keys(&self, h: &Host, prefix: &str) -> String {
        if self.area == 0 {
            return String::new();
        }
        h.keys(self.area, prefix)
    }

    /// Removes every tracker key from both areas.
    pub fn wipe(h: &Host) {
        h.wipe(PREFIX);
    }
}
