//! What one request may cost in stored bytes. Enrichment adds to every event (timestamps, a
//! messageId, the IP, the User-Agent and what it says), so a batch of many tiny events could
//! otherwise store many times its body: 10 000 events of 34 bytes with a long User-Agent stored
//! ~145 MB from a body that gzip makes a few KB. A request's stored events, and separately its
//! dead letters, may take at most [`RATIO`] × its (decompressed) body plus [`ALLOWANCE`]; the
//! events past that are refused, each with a reason, and never acknowledged.

/// Stored bytes allowed per body byte.
pub const RATIO: usize = 8;
/// Stored bytes allowed on top, so a request with one small event always fits.
pub const ALLOWANCE: usize = 16 * 1024;
/// Charged per stored event on top of its spooled bytes: the spool's record header, and what a
/// capture file adds around each event (sequence number, offset, times, properties).
pub const PER_EVENT: usize = 96;

/// Bytes a request with a body of `len` bytes may store.
pub fn for_body(len: usize) -> usize {
    len.saturating_mul(RATIO).saturating_add(ALLOWANCE)
}

/// A request's running total against its limit.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: usize,
    body_len: usize,
    spent: bool,
}

impl Budget {
    pub fn for_body(body_len: usize) -> Budget {
        Budget {
            limit: for_body(body_len),
            used: 0,
            body_len,
            spent: false,
        }
    }

    /// Take `bytes` (and [`PER_EVENT`]) from the budget; false, taking nothing, when they do
    /// not fit. After one refusal the budget counts as spent.
    pub fn charge(&mut self, bytes: usize) -> bool {
        let cost = bytes.saturating_add(PER_EVENT);
        if self.spent || self.used.saturating_add(cost) > self.limit {
            self.spent = true;
            return false;
        }
        self.used += cost;
        true
    }

    pub fn spent(&self) -> bool {
        self.spent
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The reason given for an event refused because the budget is spent.
    pub fn refusal(&self) -> String {
        format!(
            "the request's storage budget is spent: it may store {} bytes ({RATIO} x its {}-byte body + {} KiB, \
             enrichment included); send fewer events per request",
            self.limit,
            self.body_len,
            ALLOWANCE / 1024
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_until_spent_then_refuses_everything() {
        let mut b = Budget::for_body(100);
        assert_eq!(b.limit(), 800 + ALLOWANCE);
        assert!(b.charge(ALLOWANCE));
        assert!(b.charge(800 - 2 * PER_EVENT));
        assert!(!b.spent());
        assert!(!b.charge(1), "one byte over");
        assert!(b.spent());
        assert!(!b.charge(0), "spent stays spent");
        assert!(
            b.refusal().contains("8 x its 100-byte body"),
            "{}",
            b.refusal()
        );
        assert_eq!(for_body(usize::MAX), usize::MAX);
    }
}
