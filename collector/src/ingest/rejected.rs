//! The rejected events of one request, as dead letters: without a write key (one sent in the
//! body is a secret of sorts and must never be stored or shown), with reasons of bounded
//! length, and within the request's [`budget`](super::budget); past it, one closing letter
//! counts the events not kept.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::budget::Budget;
use super::enrich::cut;
use super::event::Event;
use crate::deadletter::DeadLetter;
use crate::plan::Violation;

/// Longest reason kept: reasons may quote what the client sent (a key, a type, a value).
pub const MAX_REASON_BYTES: usize = 300;

/// What a dead-letter line adds around the event and its reason.
const LINE_BYTES: usize = 80;

/// `reason`, cut to [`MAX_REASON_BYTES`].
pub fn cap_reason(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        let keep = cut(&reason, MAX_REASON_BYTES - '…'.len_utf8()).len();
        reason.truncate(keep);
        reason.push('…');
    }
    reason
}

/// An event's text as received, without a top-level `writeKey` (however its name is escaped).
/// Events rarely carry one, so the text is copied as it is unless it could.
pub fn without_write_key(raw: &str) -> Cow<'_, str> {
    if !raw.contains("writeKey") && !raw.contains("\\u") {
        return Cow::Borrowed(raw);
    }
    if let Ok(mut ev) = Event::parse(raw) {
        return match ev.remove("writeKey") {
            Some(_) => Cow::Owned(ev.to_json()),
            None => Cow::Borrowed(raw),
        };
    }
    // Not readable as an event (a repeated key, too many keys): a tree keeps the last copy of
    // each key, and the key goes with all of them.
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.remove("writeKey");
            Cow::Owned(serde_json::Value::Object(map).to_string())
        }
        _ => Cow::Borrowed(raw),
    }
}

/// Why one event was refused: a reason, and what the tracking plan found (if it was the plan).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub violations: Vec<Violation>,
}

impl From<String> for Rejection {
    fn from(reason: String) -> Rejection {
        Rejection {
            reason,
            violations: Vec::new(),
        }
    }
}

impl Rejection {
    /// The same, with the reason cut to [`MAX_REASON_BYTES`].
    pub fn capped(self) -> Rejection {
        Rejection {
            reason: cap_reason(self.reason),
            ..self
        }
    }
}

/// Dead letters of one request.
pub struct DeadBatch {
    budget: Budget,
    letters: Vec<DeadLetter>,
    unkept: usize,
}

impl DeadBatch {
    pub fn new(body_len: usize) -> DeadBatch {
        DeadBatch {
            budget: Budget::for_body(body_len),
            letters: Vec::new(),
            unkept: 0,
        }
    }

    /// Keep a rejected event (its text as received) with its reason, if the budget allows.
    pub fn push(&mut self, raw: &str, r: &Rejection) {
        let event = without_write_key(raw);
        let extra: usize = r
            .violations
            .iter()
            .map(|v| v.path.len() + v.message.len() + 48)
            .sum();
        if !self
            .budget
            .charge(event.len() + r.reason.len() + extra + LINE_BYTES)
        {
            self.unkept += 1;
            return;
        }
        let event = RawValue::from_string(event.into_owned()).expect("event text is JSON");
        self.letters.push(DeadLetter {
            stage: if r.violations.is_empty() {
                "validate"
            } else {
                "plan"
            },
            reason: r.reason.clone(),
            violations: r.violations.clone(),
            event,
        });
    }

    /// The letters to write: those kept and, when some were not, one that counts them.
    pub fn finish(mut self) -> Vec<DeadLetter> {
        if self.unkept > 0 {
            metrics::counter!("collector_dead_letters_dropped_total", "cause" => "request_budget")
                .increment(self.unkept as u64);
            self.letters.push(DeadLetter {
                stage: "validate",
                reason: format!(
                    "{} more rejected events of this request are not kept: a request's dead letters may take {} bytes",
                    self.unkept,
                    self.budget.limit()
                ),
                violations: Vec::new(),
                event: RawValue::from_string("null".into()).expect("null is JSON"),
            });
        }
        self.letters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_keys_are_removed_however_they_are_spelt() {
        let plain = r#"{"type":"track","writeKey":"wk_1","event":"x"}"#;
        assert_eq!(without_write_key(plain), r#"{"type":"track","event":"x"}"#);
        let escaped = r#"{"type":"track","write\u004bey":"wk_2"}"#;
        assert_eq!(without_write_key(escaped), r#"{"type":"track"}"#);
        let repeated = r#"{"writeKey":"a","type":"t","writeKey":"b"}"#;
        assert_eq!(without_write_key(repeated), r#"{"type":"t"}"#);
        let nested = r#"{"properties":{"writeKey":"not the key"}}"#;
        assert_eq!(
            without_write_key(nested),
            nested,
            "only the top-level field"
        );
        assert!(matches!(without_write_key(r#"{"a":1}"#), Cow::Borrowed(_)));
        assert_eq!(without_write_key("[1]"), "[1]");
    }

    #[test]
    fn reasons_are_capped_at_a_character_boundary() {
        let long = format!("duplicate key `{}`", "é".repeat(400));
        let capped = cap_reason(long);
        assert!(capped.len() <= MAX_REASON_BYTES && capped.ends_with('…'));
        assert_eq!(cap_reason("short".into()), "short");
    }

    #[test]
    fn letters_past_the_budget_are_counted_in_one() {
        let mut d = DeadBatch::new(10);
        let event = format!(r#"{{"p":"{}"}}"#, "x".repeat(5000));
        for _ in 0..10 {
            d.push(&event, &"missing `type`".to_string().into());
        }
        let letters = d.finish();
        assert_eq!(
            letters.len(),
            4,
            "three fit in 16 KiB + 80 bytes, then one summary"
        );
        assert!(letters[3].reason.starts_with("7 more rejected events"));
        assert_eq!(letters[3].event.get(), "null");
    }
}
