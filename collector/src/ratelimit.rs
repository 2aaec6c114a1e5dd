//! Rate limits: a token bucket per client IP (IPv6: per /64, which every host can pick
//! addresses from) and one per source (GCRA via `governor`). Over the limit a request gets 429
//! with Retry-After. The default per-IP bucket (50/s, burst 200) leaves room for a page's
//! normal bursts (a batch, then a beacon on unload) and stops floods. Idle buckets are dropped
//! periodically so memory stays bounded.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use hyper::StatusCode;

use crate::ingest::ip::limit_key;
use crate::ingest::ApiError;

/// Token-bucket rates; 0 turns a limit off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    pub ip_per_sec: u32,
    pub ip_burst: u32,
    pub source_per_sec: u32,
    pub source_burst: u32,
}

pub struct RateLimits {
    ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    source: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

fn quota(per_sec: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_sec)?;
    let burst = NonZeroU32::new(burst.max(per_sec)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl RateLimits {
    pub fn new(cfg: &LimitsConfig) -> RateLimits {
        RateLimits {
            ip: quota(cfg.ip_per_sec, cfg.ip_burst).map(DefaultKeyedRateLimiter::keyed),
            source: quota(cfg.source_per_sec, cfg.source_burst).map(DefaultKeyedRateLimiter::keyed),
            clock: DefaultClock::default(),
        }
    }

    fn refuse(&self, scope: &'static str, wait: std::time::Duration) -> ApiError {
        metrics::counter!("collector_rate_limited_total", "scope" => scope).increment(1);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError {
            retry_after: Some(secs.max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many requests from this {scope}; retry after {} s",
                    secs.max(1)
                ),
            )
        }
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        match &self.ip {
            Some(l) => l
                .check_key(&limit_key(ip))
                .map_err(|n| self.refuse("ip", n.wait_time_from(self.clock.now()))),
            None => Ok(()),
        }
    }

    pub fn check_source(&self, name: &str) -> Result<(), ApiError> {
        match &self.source {
            Some(l) => l
                .check_key(&name.to_string())
                .map_err(|n| self.refuse("source", n.wait_time_from(self.clock.now()))),
            None => Ok(()),
        }
    }

    /// Forget buckets that are full again (idle clients).
    pub fn housekeeping(&self) {
        if let Some(l) = &self.ip {
            l.retain_recent();
            l.shrink_to_fit();
            metrics::gauge!("collector_rate_limit_tracked_ips").set(l.len() as f64);
        }
        if let Some(l) = &self.source {
            l.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_bucket_allows_a_burst_then_refuses_with_retry_after() {
        let l = RateLimits::new(&LimitsConfig {
            ip_per_sec: 1,
            ip_burst: 5,
            source_per_sec: 0,
            source_burst: 0,
        });
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        for _ in 0..5 {
            l.check_ip(ip).unwrap();
        }
        let e = l.check_ip(ip).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after, Some(1));
        l.check_ip("203.0.113.10".parse().unwrap())
            .expect("other clients are not affected");
        l.check_source("web").expect("no source limit configured");
    }

    #[test]
    fn source_bucket() {
        let l = RateLimits::new(&LimitsConfig {
            ip_per_sec: 0,
            ip_burst: 0,
            source_per_sec: 2,
            source_burst: 2,
        });
        l.check_source("web").unwrap();
        l.check_source("web").unwrap();
        assert_eq!(
            l.check_source("web").unwrap_err().status,
            StatusCode::TOO_MANY_REQUESTS
        );
        l.check_source("app").unwrap();
        for _ in 0..100 {
            l.check_ip("203.0.113.9".parse().unwrap()).unwrap();
        }
    }
}
