//! Web Storage that may not be there.
//!
//! localStorage can be missing, disabled, throw on access (sandboxed iframes, some
//! privacy modes) or throw on every write (old Safari private mode, a full quota).
//! Every call here swallows those errors: without storage the tracker still works, it
//! just cannot carry anything over to the next page.

use alloc::string::String;
use alloc::vec::Vec;

/// Prefix of every key the tracker writes.
pub const PREFIX: &str = "_cs.";

#[derive(Clone)]
pub struct Store {
    area: Option<web_sys::Storage>,
}

impl Store {
    /// No storage: everything stays in memory.
    pub fn none() -> Store {
        Store { area: None }
    }

    /// localStorage (`session == false`) or sessionStorage, if it can be written.
    pub fn open(session: bool) -> Store {
        let area = web_sys::window().and_then(|w| {
            let a = if session {
                w.session_storage()
            } else {
                w.local_storage()
            };
            a.ok().flatten()
        });
        let area = area.filter(|a| {
            let probe = "_cs.probe";
            let ok = a.set_item(probe, "1").is_ok();
            let _ = a.remove_item(probe);
            ok
        });
        Store { area }
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.area.as_ref()?.get_item(key).ok().flatten()
    }

    /// Returns false when the value could not be stored.
    pub fn set(&self, key: &str, value: &str) -> bool {
        self.area
            .as_ref()
            .is_some_and(|a| a.set_item(key, value).is_ok())
    }

    pub fn remove(&self, key: &str) {
        if let Some(a) = &self.area {
            let _ = a.remove_item(key);
        }
    }

    /// All keys starting with `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let Some(a) = &self.area else {
            return Vec::new();
        };
        let n = a.length().unwrap_or(0);
        (0..n)
            .filter_map(|i| a.key(i).ok().flatten())
            .filter(|k| k.starts_with(prefix))
            .collect()
    }

    /// Removes every tracker key.
    pub fn wipe(&self) {
        for k in self.keys(PREFIX) {
            self.remove(&k);
        }
    }
}
