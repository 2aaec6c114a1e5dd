//! Getting a batch body to the collector: `fetch` while the page lives, `sendBeacon`
//! when it is being hidden or left (both done by the host).
//!
//! Bodies go as `text/plain` (a string body's default type), so no CORS preflight is
//! needed; the writeKey travels inside the body. Fetches of at most 32 KB use
//! `keepalive`, so they survive the page being closed mid-request; beacons are cut at
//! 32 KB because keepalive fetches and beacons share a 64 KiB in-flight quota.

use crate::backoff::{retry_after_secs_ms, RETRY_AFTER_MAX_MS};
use crate::config::KEEPALIVE_MAX;
use crate::host::Host;

/// What came back: the HTTP status (0 for a network error) and the Retry-After in ms.
pub struct Outcome {
    pub status: u16,
    pub retry_after_ms: Option<f64>,
}

impl Outcome {
    /// From the host's report: the status and the raw Retry-After header, if any.
    pub fn read(h: &Host, status: u64, retry_after: Option<&str>) -> Outcome {
        let retry_after_ms = retry_after.and_then(|v| {
            retry_after_secs_ms(v).or_else(|| {
                let at = h.parse_date(v);
                (!at.is_nan()).then(|| (at - h.now()).clamp(0.0, RETRY_AFTER_MAX_MS))
            })
        });
        let status = if status < 1000 { status as u16 } else { 0 };
        Outcome {
            status,
            retry_after_ms,
        }
    }
}

/// POSTs `body` to `url`, with `keepalive` if `may_keepalive` and the body is small
/// enough. Returns whether the request went out with `keepalive`.
pub fn post(h: &Host, url: &str, body: &str, may_keepalive: bool) -> bool {
    let keepalive = may_keepalive && body.len() <= KEEPALIVE_MAX;
    h.post(url, body, keepalive);
    keepalive
}
