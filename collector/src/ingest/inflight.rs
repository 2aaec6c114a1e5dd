//! The bytes of requests held in memory at once, across all requests: bodies as they arrive and
//! after gunzip, and the events enriched from them until the spool has them. Each request may
//! hold up to the body cap for the whole body timeout, so without a global bound a few hundred
//! slow uploads hold hundreds of megabytes. A request reserves what it holds as it grows;
//! when the total would pass the bound, it is answered `503` with `Retry-After` at once.

use std::sync::Arc;

use hyper::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// The default bound, in bytes.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// The shared bound.
#[derive(Clone)]
pub struct InFlight {
    bytes: Arc<Semaphore>,
    max: usize,
    /// `collector_body_bytes_in_flight`, looked up once.
    gauge: metrics::Gauge,
}

impl InFlight {
    /// `max` bytes at once; 0 means no bound.
    pub fn new(max: usize) -> InFlight {
        let max = if max == 0 {
            Semaphore::MAX_PERMITS
        } else {
            max.min(Semaphore::MAX_PERMITS)
        };
        InFlight {
            bytes: Arc::new(Semaphore::new(max)),
            max,
            gauge: metrics::gauge!("collector_body_bytes_in_flight"),
        }
    }

    /// An empty reservation for one request.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            pool: self.clone(),
            held: None,
            bytes: 0,
        }
    }
}

/// What one request holds; given back when dropped.
pub struct Reservation {
    pool: InFlight,
    held: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Reservation {
    /// Hold `total` bytes in all (no change if it already holds that many), or refuse the
    /// request with a 503.
    pub fn grow_to(&mut self, total: usize) -> Result<(), ApiError> {
        if total <= self.bytes {
            return Ok(());
        }
        // One request's permits add up in a u32: more than 4 GiB is refused like any excess.
        let more = total - self.bytes;
        let permit = u32::try_from(more)
            .ok()
            .filter(|_| u32::try_from(total).is_ok())
            .and_then(|n| self.pool.bytes.clone().try_acquire_many_owned(n).ok())
            .ok_or_else(|| {
                metrics::counter!("collector_body_budget_refused_total").increment(1);
                ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "the collector holds {} bytes of request bodies at once and is at that bound; retry",
                            self.pool.max
                        ),
                    )
                }
            })?;
        match &mut self.held {
            Some(h) => h.merge(permit),
            None => self.held = Some(permit),
        }
        self.bytes = total;
        self.pool.gauge.increment(more as f64);
        Ok(())
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.pool.gauge.decrement(self.bytes as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_bound_and_give_it_back() {
        let pool = InFlight::new(100);
        let mut a = pool.reservation();
        a.grow_to(60).unwrap();
        a.grow_to(40).unwrap();
        assert_eq!(a.bytes(), 60, "never shrinks while held");
        let mut b = pool.reservation();
        let e = b.grow_to(50).unwrap_err();
        assert_eq!(
            (e.status, e.retry_after),
            (StatusCode::SERVICE_UNAVAILABLE, Some(1))
        );
        assert!(e.message.contains("request bodies"), "{}", e.message);
        b.grow_to(40).unwrap();
        drop(a);
        b.grow_to(100).unwrap();
        let unbounded = InFlight::new(0);
        unbounded.reservation().grow_to(1 << 30).unwrap();
    }
}
