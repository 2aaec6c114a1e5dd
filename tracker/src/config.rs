//! The tracker's settings, from the plain JavaScript object given to `init` (or built by
//! the snippet from its `data-*` attributes, where every value is a string).
//!
//! Read field by field as text rather than with a serde `Deserialize`: serde's machinery
//! and error strings cost about 15 KB of wasm for a dozen fields.

use crate::text;
use alloc::string::String;
use alloc::vec::Vec;

/// The visitor's consent state, as reported by the site's consent banner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// Track, store identifiers and the queue, and send.
    Granted,
    /// Queue in memory only; nothing is stored or sent until consent is granted.
    Pending,
    /// Nothing is queued, stored or sent; stored tracker data is erased.
    Denied,
}

impl Consent {
    pub fn parse(s: &str) -> Option<Consent> {
        match s {
            "granted" => Some(Consent::Granted),
            "pending" => Some(Consent::Pending),
            "denied" => Some(Consent::Denied),
            _ => None,
        }
    }
}

pub struct Config {
    pub write_key: String,
    /// Collector base URL without a trailing slash; the batch goes to `{endpoint}/v1/batch`.
    pub endpoint: String,
    /// Flush when this many messages are queued.
    pub flush_at: usize,
    /// Flush this long after the first message of a batch was queued.
    pub flush_interval_ms: f64,
    /// Flush when the queued JSON reaches this many bytes; also the largest request body.
    pub max_batch_bytes: usize,
    /// Caps of the persistent queue; the oldest messages are dropped beyond them.
    pub max_queue_events: usize,
    pub max_queue_bytes: usize,
    /// No persistent identifier: the anonymousId and queue live in sessionStorage.
    pub cookieless: bool,
    /// Query parameters whose values are replaced by `REDACTED` in every captured URL.
    pub redact: Vec<String>,
    /// Treat `navigator.doNotTrack == "1"` as consent denied.
    pub respect_dnt: bool,
    /// Treat `navigator.globalPrivacyControl` as consent denied.
    pub respect_gpc: bool,
    pub consent: Consent,
    /// Automatic tracking switches.
    pub auto_page: bool,
    pub auto_spa: bool,
    pub auto_clicks: bool,
    pub auto_declarative: bool,
    pub auto_engagement: bool,
}

/// The largest body a keepalive fetch or beacon reliably carries (they share a 64 KiB
/// in-flight quota per page).
pub const KEEPALIVE_MAX: usize = 32 * 1024;
/// The collector's body limit, with room to spare.
const REQUEST_MAX: usize = 450_000;

/// A switch: "false"/"0"/"off"/"no" are false, any other text true, absent the default.
fn flag(v: Option<String>, default: bool) -> bool {
    match v {
        Some(s) => !matches!(s.as_str(), "false" | "0" | "off" | "no"),
        None => default,
    }
}

/// A positive integer in decimal text; otherwise the default.
fn count(v: Option<String>, default: usize) -> usize {
    v.and_then(|s| text::parse_u64(text::trim(&s)))
        .filter(|&n| n > 0)
        .map_or(default, |n| n.min(u32::MAX as u64) as usize)
}

/// A comma-separated list of names.
fn names(v: Option<String>, default: &[&str]) -> Vec<String> {
    match v {
        Some(s) => text::split(&s, b',')
            .map(text::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        None => default.iter().map(|s| String::from(*s)).collect(),
    }
}

/// Parameters redacted when the site does not say otherwise.
pub const DEFAULT_REDACT: &[&str] = &["token", "access_token", "password", "email"];

impl Config {
    /// Reads the settings through `get`, which returns a field of the config object as
    /// text (`js/index.js` turns booleans, numbers and arrays into strings). The
    /// endpoint defaults to "" (same origin: the collector serving the tracker
    /// first-party).
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Config {
        let mut endpoint = get("endpoint").unwrap_or_default();
        while endpoint.as_bytes().last() == Some(&b'/') {
            endpoint.truncate(endpoint.len() - 1);
        }
        Config {
            write_key: get("writeKey").unwrap_or_default(),
            endpoint,
            flush_at: count(get("flushAt"), 20),
            flush_interval_ms: count(get("flushInterval"), 5_000) as f64,
            max_batch_bytes: count(get("maxBatchBytes"), KEEPALIVE_MAX).clamp(1024, REQUEST_MAX),
            max_queue_events: count(get("maxQueueEvents"), 1_000),
            max_queue_bytes: count(get("maxQueueBytes"), 1_000_000),
            cookieless: flag(get("cookieless"), false),
            redact: names(get("redactParams"), DEFAULT_REDACT),
            respect_dnt: flag(get("respectDnt"), true),
            respect_gpc: flag(get("respectGpc"), true),
            consent: get("consent")
                .and_then(|s| Consent::parse(&s))
                .unwrap_or(Consent::Granted),
            auto_page: flag(get("autoPage"), true),
            auto_spa: flag(get("autoSpa"), true),
            auto_clicks: flag(get("autoClicks"), true),
            auto_declarative: flag(get("autoDeclarative"), true),
            auto_engagement: flag(get("autoEngagement"), true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn from(pairs: &[(&str, &str)]) -> Config {
        Config::read(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| String::from(*v))
        })
    }

    #[test]
    fn defaults() {
        let c = from(&[]);
        assert_eq!(
            (c.flush_at, c.flush_interval_ms, c.max_batch_bytes),
            (20, 5_000.0, KEEPALIVE_MAX)
        );
        assert_eq!(c.endpoint, "");
        assert_eq!(c.consent, Consent::Granted);
        assert!(c.respect_dnt && c.respect_gpc && c.auto_page && c.auto_spa && !c.cookieless);
        assert_eq!(c.redact, vec!["token", "access_token", "password", "email"]);
    }

    #[test]
    fn reads_data_attribute_text() {
        let c = from(&[
            ("endpoint", "https://c.example/"),
            ("writeKey", "wk"),
            ("flushAt", " 5 "),
            ("flushInterval", "abc"),
            ("maxBatchBytes", "10"),
            ("cookieless", "true"),
            ("autoClicks", "false"),
            ("redactParams", "a, b,,c"),
            ("consent", "pending"),
        ]);
        assert_eq!(c.endpoint, "https://c.example");
        assert_eq!(c.write_key, "wk");
        assert_eq!(c.flush_at, 5);
        assert_eq!(c.flush_interval_ms, 5_000.0);
        assert_eq!(c.max_batch_bytes, 1024);
        assert!(c.cookieless && !c.auto_clicks);
        assert_eq!(c.redact, vec!["a", "b", "c"]);
        assert_eq!(c.consent, Consent::Pending);
    }
}
