//! When to retry a failed send: which answers are worth retrying, the exponential
//! backoff schedule with jitter, and the collector's `Retry-After`.
//!
//! Kept apart from the transport so the schedule is a pure function that tests can pin.

/// First retry delay, in milliseconds.
pub const BASE_MS: f64 = 1_000.0;
/// No retry waits longer than this (unless the collector's Retry-After asks for more).
pub const CAP_MS: f64 = 60_000.0;
/// Retry-After values above this are clamped: a page does not live that long anyway.
pub const RETRY_AFTER_MAX_MS: f64 = 600_000.0;

/// What the tracker does with a batch after the collector (or the network) answered.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Verdict {
    /// Delivered: forget the batch.
    Done,
    /// Transient: keep the batch and try again later.
    Retry,
    /// The collector refused the request itself: drop it (with one warning), never retry.
    Drop,
}

/// Classifies an HTTP status; `0` stands for a network error (no response at all).
pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Done,
        0 | 408 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Drop,
    }
}

/// The delay before retry number `attempt` (1-based): `BASE_MS * 2^(attempt-1)` capped at
/// `CAP_MS`, then "equal jitter": a uniformly random point in the upper half, so clients
/// that failed together do not come back together. `rand01` is in `[0, 1)`.
pub fn delay_ms(attempt: u32, rand01: f64) -> f64 {
    let exp = attempt.saturating_sub(1).min(16);
    let full = (BASE_MS * (1u32 << exp) as f64).min(CAP_MS);
    full / 2.0 + full / 2.0 * rand01
}

/// Parses a `Retry-After` given in seconds into milliseconds. HTTP dates are handled by
/// the caller (they need the browser's clock and date parser).
pub fn retry_after_secs_ms(v: &str) -> Option<f64> {
    let v = crate::text::trim(v);
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = v.bytes().fold(0u32, |n, b| n * 10 + (b - b'0') as u32);
    Some((secs as f64 * 1000.0).min(RETRY_AFTER_MAX_MS))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn classifies_statuses() {
        assert_eq!(verdict(200), Verdict::Done);
        assert_eq!(verdict(204), Verdict::Done);
        for s in [0, 408, 429, 500, 502, 503, 599] {
            assert_eq!(verdict(s), Verdict::Retry, "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert_eq!(verdict(s), Verdict::Drop, "{s}");
        }
    }

    #[test]
    fn schedule_doubles_then_caps_with_jitter_in_upper_half() {
        let expect = [
            1_000.0, 2_000.0, 4_000.0, 8_000.0, 16_000.0, 32_000.0, 60_000.0, 60_000.0,
        ];
        for (i, full) in expect.iter().enumerate() {
            let a = i as u32 + 1;
            assert_eq!(delay_ms(a, 0.0), full / 2.0);
            assert!(delay_ms(a, 0.999_999) < *full);
            assert!(delay_ms(a, 0.999_999) > full * 0.99);
            let mid = delay_ms(a, 0.5);
            assert!(mid > full / 2.0 && mid < *full);
        }
        assert_eq!(delay_ms(1000, 0.0), 30_000.0);
        assert_eq!(delay_ms(0, 0.0), 500.0);
    }

    #[test]
    fn parses_retry_after_seconds() {
        assert_eq!(retry_after_secs_ms("5"), Some(5_000.0));
        assert_eq!(retry_after_secs_ms(" 0 "), Some(0.0));
        assert_eq!(retry_after_secs_ms("99999"), Some(RETRY_AFTER_MAX_MS));
        assert_eq!(retry_after_secs_ms("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after_secs_ms("-1"), None);
        assert_eq!(retry_after_secs_ms(""), None);
    }
}
