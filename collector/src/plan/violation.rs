//! A violation: where in the message (a JSON pointer), which schema keyword, and what was
//! expected and found. Violations are shown to the sender, stored in dead letters and tagged
//! events, and counted, so each is bounded: a message quotes the offending value, which the
//! sender chose, and is cut to [`MAX_MESSAGE_BYTES`]; an event lists at most
//! [`MAX_PER_EVENT`].

use serde::Serialize;

use crate::ingest::enrich::cut;

/// Most violations listed per event; the rest are counted in one closing entry.
pub const MAX_PER_EVENT: usize = 10;
/// Longest message kept.
pub const MAX_MESSAGE_BYTES: usize = 200;
/// Longest instance path kept (a pointer into a deep or wide message).
pub const MAX_PATH_BYTES: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Violation {
    /// JSON pointer into the message: `/properties/revenue`; empty for the whole message.
    pub path: String,
    /// The schema keyword that failed (`type`, `required`, ...), or `unplanned`.
    pub keyword: String,
    pub message: String,
}

fn capped(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    format!("{}…", cut(s, max - '…'.len_utf8()))
}

impl Violation {
    pub fn new(path: &str, keyword: &str, message: &str) -> Violation {
        Violation {
            path: capped(path, MAX_PATH_BYTES),
            keyword: capped(keyword, 64),
            message: capped(message, MAX_MESSAGE_BYTES),
        }
    }

    /// The entry that stands for violations not listed.
    fn more(n: usize) -> Violation {
        Violation::new("", "more", &format!("{n} more violations not listed"))
    }
}

/// The violations of one message against one schema, at most [`MAX_PER_EVENT`] (+1 counting
/// the rest). Errors are produced lazily, so a huge invalid message costs only what is listed
/// plus the count of the rest.
pub fn collect(validator: &jsonschema::Validator, message: &serde_json::Value) -> Vec<Violation> {
    let mut list = Vec::new();
    let mut more = 0;
    for e in validator.iter_errors(message) {
        if list.len() < MAX_PER_EVENT {
            list.push(Violation::new(
                e.instance_path().as_str(),
                e.kind().keyword(),
                &e.to_string(),
            ));
        } else {
            more += 1;
        }
    }
    if more > 0 {
        list.push(Violation::more(more));
    }
    list
}

/// One line naming the violations: the reason of a rejected event.
pub fn reason(subject: &str, violations: &[Violation]) -> String {
    let mut s = format!("violates the tracking plan for {subject}:");
    for (i, v) in violations.iter().enumerate() {
        if i > 0 {
            s.push(';');
        }
        if v.keyword == "more" {
            s.push_str(&format!(" ({})", v.message));
            continue;
        }
        let path = if v.path.is_empty() { "/" } else { &v.path };
        s.push_str(&format!(" {path}: {}: {}", v.keyword, v.message));
    }
    s
}

/// The violations as JSON text, for `context.violations`.
pub fn to_json(violations: &[Violation]) -> String {
    serde_json::to_string(violations).expect("violations serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_pointer_keyword_and_message_and_counts_the_rest() {
        let v = jsonschema::validator_for(&json!({
            "properties": {"properties": {"properties": {"revenue": {"type": "number"}}}},
            "required": ["userId"]
        }))
        .unwrap();
        let found = collect(&v, &json!({"properties": {"revenue": "12,99"}}));
        assert_eq!(found.len(), 2);
        let t = found.iter().find(|v| v.keyword == "type").unwrap();
        assert_eq!(t.path, "/properties/revenue");
        assert!(t.message.contains("12,99") && t.message.contains("number"));
        assert!(found.iter().any(|v| v.keyword == "required"));

        let many = jsonschema::validator_for(&json!({"items": {"type": "string"}})).unwrap();
        let found = collect(&many, &json!((0..50).collect::<Vec<_>>()));
        assert_eq!(found.len(), MAX_PER_EVENT + 1);
        assert_eq!(
            found[MAX_PER_EVENT].message,
            "40 more violations not listed"
        );
        let r = reason("track \"x\"", &found);
        assert!(r.starts_with("violates the tracking plan for track \"x\": /0: type:"));
        assert!(r.ends_with("(40 more violations not listed)"));
    }

    #[test]
    fn long_messages_and_paths_are_cut() {
        let long = "é".repeat(1000);
        let v = Violation::new(&long, "type", &long);
        assert!(v.message.len() <= MAX_MESSAGE_BYTES && v.message.ends_with('…'));
        assert!(v.path.len() <= MAX_PATH_BYTES);
    }
}
