//! The queue of messages waiting to be sent, and how batches are cut from it.
//!
//! Messages are kept as their final JSON text, so the byte caps are exact, a batch body is
//! a concatenation, and a resend carries exactly what was first built (same messageId).
//! The queue is capped by count and by bytes; when full, the oldest messages are dropped
//! first and counted.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

pub struct Queue {
    items: VecDeque<String>,
    bytes: usize,
    pub max_items: usize,
    pub max_bytes: usize,
    /// Messages dropped because the queue was full, since the tracker started.
    pub dropped: u32,
}

impl Queue {
    pub fn new(max_items: usize, max_bytes: usize) -> Self {
        Queue {
            items: VecDeque::new(),
            bytes: 0,
            max_items,
            max_bytes,
            dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes of JSON text queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.items.iter()
    }

    /// Appends a new message, dropping the oldest ones if the caps are exceeded.
    pub fn push(&mut self, msg: String) {
        self.bytes += msg.len();
        self.items.push_back(msg);
        self.enforce_caps();
    }

    /// Puts a batch that could not be delivered back in front, in its original order.
    pub fn unshift(&mut self, batch: Vec<String>) {
        for m in batch.into_iter().rev() {
            self.bytes += m.len();
            self.items.push_front(m);
        }
        self.enforce_caps();
    }

    fn enforce_caps(&mut self) {
        while self.items.len() > self.max_items
            || (self.bytes > self.max_bytes && !self.items.is_empty())
        {
            if let Some(m) = self.items.pop_front() {
                self.bytes -= m.len();
                self.dropped = self.dropped.saturating_add(1);
            }
        }
    }

    pub fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }

    /// How many messages from the `start`-th on fit in a body of at most `max_body` bytes
    /// (at least one, if there is any).
    pub fn fitting(&self, start: usize, max_body: usize, envelope: usize) -> usize {
        let mut size = envelope;
        let mut n = 0;
        for m in self.items.range(start.min(self.items.len())..) {
            size += m.len() + 1;
            if size > max_body && n > 0 {
                break;
            }
            n += 1;
        }
        n
    }

    /// The messages from the `start`-th on, `n` of them, in place.
    pub fn slice(&self, start: usize, n: usize) -> impl Iterator<Item = &String> {
        self.items.range(start..start + n)
    }

    /// Takes the oldest messages that fit in a request body of at most `max_body` bytes,
    /// given the size of the empty envelope. Always takes at least one message if any.
    pub fn take(&mut self, max_body: usize, envelope: usize) -> Vec<String> {
        let mut size = envelope;
        let mut out = Vec::new();
        while let Some(m) = self.items.front() {
            size += m.len() + 1;
            if size > max_body && !out.is_empty() {
                break;
            }
            if let Some(m) = self.items.pop_front() {
                self.bytes -= m.len();
                out.push(m);
            }
        }
        out
    }
}

/// The request body of the batch endpoint for `batch`.
pub fn body<'a>(batch: impl Iterator<Item = &'a String>, sent_at: &str, write_key: &str) -> String {
    let mut s = String::new();
    s.push_str("{\"batch\":[");
    for (i, m) in batch.enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(m);
    }
    s.push_str("],\"sentAt\":");
    crate::json::push_str(&mut s, sent_at);
    s.push_str(",\"writeKey\":");
    crate::json::push_str(&mut s, write_key);
    s.push('}');
    s
}

/// Storage text for a list of messages: one JSON message per line (JSON text never
/// contains a raw newline).
pub fn encode<'a>(msgs: impl Iterator<Item = &'a String>) -> String {
    let mut s = String::new();
    for m in msgs {
        s.push_str(m);
        s.push('\n');
    }
    s
}

/// The messages stored by [`encode`]; lines that are not JSON objects are skipped.
pub fn decode(s: &str) -> Vec<String> {
    crate::text::split(s, b'\n')
        .filter(|l| l.as_bytes().first() == Some(&b'{') && l.as_bytes().last() == Some(&b'}'))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn msg(i: usize) -> String {
        format!("{{\"n\":{i}}}")
    }

    #[test]
    fn count_cap_drops_oldest_first() {
        let mut q = Queue::new(3, 1_000);
        for i in 0..5 {
            q.push(msg(i));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped, 2);
        assert_eq!(
            q.iter().cloned().collect::<Vec<_>>(),
            vec![msg(2), msg(3), msg(4)]
        );
    }

    #[test]
    fn byte_cap_drops_oldest_first() {
        let mut q = Queue::new(100, 20);
        for i in 0..4 {
            q.push(msg(i)); // 7 bytes each
        }
        assert_eq!(q.bytes(), 14);
        assert_eq!(q.dropped, 2);
        assert_eq!(q.iter().next(), Some(&msg(2)));
    }

    #[test]
    fn failed_batch_goes_back_in_front_in_order() {
        let mut q = Queue::new(4, 1_000);
        for i in 0..3 {
            q.push(msg(i));
        }
        let batch = q.take(1_000, 0);
        assert_eq!(batch.len(), 3);
        assert!(q.is_empty());
        q.push(msg(3));
        q.push(msg(4));
        q.unshift(batch);
        // 5 items, cap 4: the oldest (0) goes.
        assert_eq!(
            q.iter().cloned().collect::<Vec<_>>(),
            vec![msg(1), msg(2), msg(3), msg(4)]
        );
        assert_eq!(q.dropped, 1);
        assert_eq!(q.bytes(), 28);
    }

    #[test]
    fn pieces_are_cut_in_place_from_any_position() {
        let mut q = Queue::new(100, 10_000);
        for i in 0..6 {
            q.push(msg(i)); // 7 bytes each, 8 in a body
        }
        assert_eq!(q.fitting(0, 10 + 16, 10), 2);
        assert_eq!(q.fitting(4, 10 + 100, 10), 2, "only what is left");
        assert_eq!(
            q.fitting(5, 1, 10),
            1,
            "one message even when it does not fit"
        );
        assert_eq!(q.fitting(6, 100, 10), 0);
        let piece: Vec<_> = q.slice(2, 2).cloned().collect();
        assert_eq!(piece, vec![msg(2), msg(3)]);
        assert_eq!(q.len(), 6, "nothing taken");
    }

    #[test]
    fn batches_respect_the_body_limit() {
        let mut q = Queue::new(100, 10_000);
        for i in 0..10 {
            q.push(msg(i));
        }
        let envelope = body([].iter(), "2024-01-01T00:00:00.000Z", "k").len();
        let b = q.take(envelope + 8 * 3, envelope);
        assert_eq!(b.len(), 3);
        assert!(body(b.iter(), "2024-01-01T00:00:00.000Z", "k").len() <= envelope + 24);
        // A single message larger than the limit still leaves on its own.
        let big = q.take(1, envelope);
        assert_eq!(big, vec![msg(3)]);
        assert_eq!(q.len(), 6);
    }

    #[test]
    fn builds_the_segment_batch_body() {
        let b = body(
            ["{\"a\":1}".to_string(), "{\"b\":2}".to_string()].iter(),
            "2024-01-01T00:00:00.000Z",
            "k\"1",
        );
        assert_eq!(
            b,
            r#"{"batch":[{"a":1},{"b":2}],"sentAt":"2024-01-01T00:00:00.000Z","writeKey":"k\"1"}"#
        );
    }

    #[test]
    fn storage_text_round_trips_and_skips_junk() {
        let msgs = vec![msg(1), "{\"s\":\"a\\nb\"}".to_string()];
        let text = encode(msgs.iter());
        assert_eq!(decode(&text), msgs);
        assert_eq!(
            decode("junk\n{\"ok\":1}\n{broken"),
            vec!["{\"ok\":1}".to_string()]
        );
    }
}
