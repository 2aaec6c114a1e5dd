//! Fault injection: the failures a test can ask the double to produce on event transfers, so
//! the relay's retry and dead-letter paths run against real rejections on the wire.

use std::sync::Mutex;
use std::time::Duration;

/// An AMQP error the double puts in a `rejected` outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The error condition symbol, e.g. `com.microsoft:server-busy` or `amqp:not-allowed`.
    pub condition: String,
    pub description: String,
}

impl Rejection {
    pub fn new(condition: impl Into<String>, description: impl Into<String>) -> Self {
        Rejection {
            condition: condition.into(),
            description: description.into(),
        }
    }
}

/// The condition the real service uses for an event over the size limit.
pub const MESSAGE_SIZE_EXCEEDED: &str = "amqp:link:message-size-exceeded";

#[derive(Debug, Default)]
struct State {
    reject_next: u32,
    rejection: Option<Rejection>,
    max_event_body: Option<usize>,
    delay: Option<Duration>,
    rejected: u64,
}

/// The fault plan shared by every link; it survives restarts like the recorder.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State>,
}

impl Faults {
    /// Reject the next `count` event transfers (single or batched) with `rejection`.
    pub fn reject_next(&self, count: u32, rejection: Rejection) {
        let mut s = self.state.lock().unwrap();
        s.reject_next = count;
        s.rejection = Some(rejection);
    }

    /// Reject every transfer that carries an event whose body is larger than `bytes`, with
    /// `amqp:link:message-size-exceeded` (as the service does). `None` turns it off.
    pub fn reject_events_larger_than(&self, bytes: Option<usize>) {
        self.state.lock().unwrap().max_event_body = bytes;
    }

    /// Hold every event transfer this long before settling it: a slow broker, so a test can
    /// be sure the client is mid-send when it kills something. `None` turns it off.
    pub fn delay_transfers(&self, delay: Option<Duration>) {
        self.state.lock().unwrap().delay = delay;
    }

    pub(crate) fn delay(&self) -> Option<Duration> {
        self.state.lock().unwrap().delay
    }

    /// How many transfers the double rejected so far.
    pub fn rejected(&self) -> u64 {
        self.state.lock().unwrap().rejected
    }

    /// Decides the fate of one transfer whose events have these body sizes.
    pub(crate) fn judge(&self, body_sizes: impl Iterator<Item = usize>) -> Option<Rejection> {
        let mut s = self.state.lock().unwrap();
        let verdict = if s.reject_next > 0 {
            s.reject_next -= 1;
            s.rejection.clone()
        } else if let Some(limit) = s.max_event_body {
            body_sizes.into_iter().find(|&n| n > limit).map(|n| {
                Rejection::new(
                    MESSAGE_SIZE_EXCEEDED,
                    format!("an event of {n} bytes exceeds the limit of {limit} bytes"),
                )
            })
        } else {
            None
        };
        if verdict.is_some() {
            s.rejected += 1;
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_exactly_the_next_k_transfers() {
        let f = Faults::default();
        f.reject_next(2, Rejection::new("com.microsoft:server-busy", "busy"));
        assert!(f.judge([1].into_iter()).is_some());
        assert!(f.judge([1].into_iter()).is_some());
        assert!(f.judge([1].into_iter()).is_none());
        assert_eq!(f.rejected(), 2);
    }

    #[test]
    fn size_limit_applies_to_any_event_in_the_transfer() {
        let f = Faults::default();
        f.reject_events_larger_than(Some(10));
        assert!(f.judge([5, 10].into_iter()).is_none());
        let r = f.judge([5, 11, 2].into_iter()).unwrap();
        assert_eq!(r.condition, MESSAGE_SIZE_EXCEEDED);
        f.reject_events_larger_than(None);
        assert!(f.judge([100].into_iter()).is_none());
    }
}
