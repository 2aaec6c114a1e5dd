//! The tracker's settings, read from the plain JavaScript object given to `init` (or built
//! by the snippet from its `data-*` attributes, where every value is a string).
//!
//! Read field by field with `js_sys::Reflect` rather than a serde `Deserialize`: serde's
//! machinery and error strings cost about 15 KB of wasm for a dozen fields.

use crate::text;
use alloc::string::String;
use alloc::vec::Vec;
use js_sys::{Array, Reflect};
use wasm_bindgen::{JsCast, JsValue};

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

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

fn string(o: &JsValue, k: &str) -> Option<String> {
    get(o, k).as_string()
}

/// A switch: a boolean, or the text of a data attribute ("false"/"0"/"off" are false).
fn flag(o: &JsValue, k: &str, default: bool) -> bool {
    let v = get(o, k);
    if let Some(b) = v.as_bool() {
        return b;
    }
    match v.as_string() {
        Some(s) => !matches!(s.as_str(), "false" | "0" | "off" | "no"),
        None => default,
    }
}

/// A positive integer: a number, or decimal text; otherwise the default.
fn count(o: &JsValue, k: &str, default: usize) -> usize {
    let v = get(o, k);
    let n = match v.as_f64() {
        Some(f) if (1.0..4e9).contains(&f) => Some(f as usize),
        Some(_) => None,
        None => v
            .as_string()
            .and_then(|s| text::parse_u64(text::trim(&s)))
            .map(|n| n.min(u32::MAX as u64) as usize),
    };
    n.filter(|&n| n > 0).unwrap_or(default)
}

/// A list of names: an array of strings, or comma-separated text.
fn names(o: &JsValue, k: &str, default: &[&str]) -> Vec<String> {
    let v = get(o, k);
    if let Some(s) = v.as_string() {
        return text::split(&s, b',')
            .map(text::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
    }
    match v.dyn_into::<Array>() {
        Ok(a) => a.iter().filter_map(|x| x.as_string()).collect(),
        Err(_) => default.iter().map(|s| String::from(*s)).collect(),
    }
}

/// Parameters redacted when the site does not say otherwise.
pub const DEFAULT_REDACT: &[&str] = &["token", "access_token", "password", "email"];

impl Config {
    /// Reads the config object; `origin` is the page's origin, the default endpoint
    /// (the collector serving the tracker first-party).
    pub fn read(o: &JsValue, origin: String) -> Config {
        let mut endpoint = string(o, "endpoint")
            .filter(|s| !s.is_empty())
            .unwrap_or(origin);
        while endpoint.ends_with('/') {
            endpoint.pop();
        }
        Config {
            write_key: string(o, "writeKey").unwrap_or_default(),
            endpoint,
            flush_at: count(o, "flushAt", 20),
            flush_interval_ms: count(o, "flushInterval", 5_000) as f64,
            max_batch_bytes: count(o, "maxBatchBytes", KEEPALIVE_MAX).clamp(1024, REQUEST_MAX),
            max_queue_events: count(o, "maxQueueEvents", 1_000),
            max_queue_bytes: count(o, "maxQueueBytes", 1_000_000),
            cookieless: flag(o, "cookieless", false),
            redact: names(o, "redactParams", DEFAULT_REDACT),
            respect_dnt: flag(o, "respectDnt", true),
            respect_gpc: flag(o, "respectGpc", true),
            consent: string(o, "consent")
                .and_then(|s| Consent::parse(&s))
                .unwrap_or(Consent::Granted),
            auto_page: flag(o, "autoPage", true),
            auto_spa: flag(o, "autoSpa", true),
            auto_clicks: flag(o, "autoClicks", true),
            auto_declarative: flag(o, "autoDeclarative", true),
            auto_engagement: flag(o, "autoEngagement", true),
        }
    }
}
