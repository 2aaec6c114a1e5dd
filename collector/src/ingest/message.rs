//! The Segment HTTP Tracking API's shapes: the message types, and the request envelope of
//! `/v1/batch` (`{"batch":[...], "sentAt", "context", "integrations", "writeKey"}`) or of a
//! single-message endpoint. Events stay raw here; validation looks inside them.
//!
//! Before the parser sees a body, [`screen`] walks its bytes once (strings are skipped with
//! SIMD) and refuses what the parser would let through into raw event text but readers
//! downstream choke on: nesting deeper than [`MAX_DEPTH`], numbers outside a 64-bit float's
//! range (`1e400`, 400-digit integers), and `\u` escapes of unpaired UTF-16 surrogates.
//!
//! Duplicate keys: in the envelope, a repeated `batch`, `sentAt`, `context`, `integrations` or
//! `writeKey` fails the request (which copy wins would be a guess); other envelope keys are
//! ignored, repeated or not. In an event, a repeated top-level key rejects that event (see
//! [`super::event`]). Below the top level (inside `properties`, `traits`, ...) values are kept as
//! the client's text, duplicates included, and readers apply their own rule (most keep the last).

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::event::Event;
use super::ApiError;

/// The Segment message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Track,
    Page,
    Identify,
    Group,
    Alias,
    Screen,
}

impl MessageType {
    pub const ALL: [MessageType; 6] = [
        MessageType::Track,
        MessageType::Page,
        MessageType::Identify,
        MessageType::Group,
        MessageType::Alias,
        MessageType::Screen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Track => "track",
            MessageType::Page => "page",
            MessageType::Identify => "identify",
            MessageType::Group => "group",
            MessageType::Alias => "alias",
            MessageType::Screen => "screen",
        }
    }

    pub fn parse(s: &str) -> Option<MessageType> {
        MessageType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One event of a request: its text as received and, when the batch fast path read it
/// already, its top-level fields.
#[derive(Debug)]
pub struct Item<'a> {
    pub raw: &'a str,
    pub event: Option<Event<'a>>,
}

impl<'a> Item<'a> {
    fn unparsed(raw: &'a RawValue) -> Item<'a> {
        Item {
            raw: raw.get(),
            event: None,
        }
    }

    /// The event's top-level fields, or why it is not an event.
    pub fn into_event(self) -> Result<Event<'a>, String> {
        match self.event {
            Some(ev) => Ok(ev),
            None => Event::parse(self.raw),
        }
    }
}

/// What every event of a request shares.
#[derive(Debug, Default)]
pub struct Envelope<'a> {
    pub events: Vec<Item<'a>>,
    pub sent_at: Option<Value>,
    /// Batch-level `context` and `integrations`: JSON objects applied to every event.
    pub context: Option<&'a RawValue>,
    pub integrations: Option<&'a RawValue>,
    pub write_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchBody<'a, T> {
    batch: Option<Vec<T>>,
    sent_at: Option<Value>,
    #[serde(borrow)]
    context: Option<&'a RawValue>,
    #[serde(borrow)]
    integrations: Option<&'a RawValue>,
    write_key: Option<Value>,
}

/// How deep a request body may nest objects and arrays. A batch body uses two levels (the body
/// and `batch`), so an event's own object may hold 62 more. serde_json's own limit is 128, and
/// only for the parts it builds trees of; raw event text has none.
pub const MAX_DEPTH: usize = 64;

/// The most events one batch may hold. A 512 KB body of minimal events holds about 15 000; a
/// body of `{}`s, 170 000, each of which would cost a dead letter and a line in the response.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// Batch-level `context` and `integrations` fill in every event, so their bytes are copied once
/// per event. Their size times the event count may not pass this (2 MiB: 500 events with a
/// 4 KB context), which bounds what one request can make the collector store and hold.
pub const MAX_SHARED_COPY_BYTES: usize = 2 << 20;

fn bad_request(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// Refuse what JSON parsing would let through into raw event text but should not: nesting
/// deeper than [`MAX_DEPTH`], numbers that overflow a 64-bit float, and unpaired surrogate
/// escapes. One pass over the bytes; problems of plain syntax are left to the parser.
pub fn screen(body: &[u8]) -> Result<(), ApiError> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                i += 1;
                loop {
                    // An unterminated string (or one ending in a lone backslash): the parser
                    // says so.
                    let Some(j) = body.get(i..).and_then(find_quote_or_backslash) else {
                        return Ok(());
                    };
                    i += j;
                    if body[i] == b'"' {
                        i += 1;
                        break;
                    }
                    i += escape_len(body, i)?;
                }
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(bad_request(format!(
                        "JSON nests deeper than {MAX_DEPTH} levels (at byte {i})"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                let mut float = false;
                while i < body.len() {
                    match body[i] {
                        b'0'..=b'9' | b'-' | b'+' => {}
                        b'.' | b'e' | b'E' => float = true,
                        _ => break,
                    }
                    i += 1;
                }
                let token = &body[start..i];
                // 15 digits always fit; only exponents and long digit runs can overflow.
                if float || token.len() > 15 {
                    check_number(token, start)?;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The first `"` or `\\` in `s`. Most strings in events are short (keys, ids), so the first
/// 32 bytes are looked at eight at a time in a word; the rest of a long string goes to
/// memchr's SIMD search.
fn find_quote_or_backslash(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // The lowest byte that is zero gets its high bit set (bytes above it may too).
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let head = s.len().min(32);
    let mut i = 0;
    while i + 8 <= head {
        let word = u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
        let hits = zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')));
        if hits != 0 {
            return Some(i + hits.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    if let Some(p) = s[i..head].iter().position(|&c| c == b'"' || c == b'\\') {
        return Some(i + p);
    }
    memchr::memchr2(b'"', b'\\', &s[head..]).map(|p| p + head)
}

fn check_number(token: &[u8], at: usize) -> Result<(), ApiError> {
    let text = std::str::from_utf8(token).unwrap_or("");
    match text.parse::<f64>() {
        Ok(x) if !x.is_finite() => {
            let shown = if text.len() > 24 {
                format!("{}... ({} characters)", &text[..20], text.len())
            } else {
                text.to_string()
            };
            Err(bad_request(format!(
                "number {shown} at byte {at} is out of range: numbers must fit a 64-bit float"
            )))
        }
        _ => Ok(()), // in range, or not a number at all: the parser says so
    }
}

/// The length of the escape starting with the backslash at `i`; a `\u` escape of a UTF-16
/// surrogate must be a high one followed by a low one.
fn escape_len(body: &[u8], i: usize) -> Result<usize, ApiError> {
    if body.get(i + 1) != Some(&b'u') {
        return Ok(2);
    }
    let hex = |at: usize| -> Option<u16> {
        let s = std::str::from_utf8(body.get(at..at + 4)?).ok()?;
        u16::from_str_radix(s, 16).ok()
    };
    let lone = |code: u16| {
        bad_request(format!(
            "string has an unpaired surrogate escape \\u{code:04x} at byte {i}; JSON text must be valid Unicode"
        ))
    };
    match hex(i + 2) {
        Some(high @ 0xD800..=0xDBFF) => {
            let low = (body.get(i + 6..i + 8) == Some(b"\\u"))
                .then(|| hex(i + 8))
                .flatten();
            match low {
                Some(0xDC00..=0xDFFF) => Ok(12),
                _ => Err(lone(high)),
            }
        }
        Some(low @ 0xDC00..=0xDFFF) => Err(lone(low)),
        _ => Ok(2), // a plain escape, or a bad one the parser names
    }
}

/// A parse error as a whole-request error that names the problem.
fn not_json(body: &[u8], e: serde_json::Error) -> ApiError {
    let msg = e.to_string();
    if let Some(field) = msg.strip_prefix("duplicate field ") {
        let field = field.split(" at line").next().unwrap_or(field);
        return bad_request(format!("duplicate key {field} in the request body"));
    }
    if msg.starts_with("invalid unicode code point") {
        if let Err(u) = std::str::from_utf8(body) {
            return bad_request(format!(
                "body is not valid UTF-8 (invalid byte at offset {})",
                u.valid_up_to()
            ));
        }
    }
    if body.starts_with(&[0x1f, 0x8b]) {
        return bad_request(
            "body is gzip-compressed but has no `Content-Encoding: gzip` header".to_string(),
        );
    }
    bad_request(format!("body is not valid JSON: {e}"))
}

fn object_or_null<'a>(
    name: &str,
    v: Option<&'a RawValue>,
) -> Result<Option<&'a RawValue>, ApiError> {
    match v.map(|r| r.get().as_bytes()[0]) {
        None | Some(b'n') => Ok(None),
        Some(b'{') => Ok(v),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("`{name}` must be an object"),
        )),
    }
}

fn write_key_of(v: Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// Parse the body of `/v1/batch`.
///
/// The usual batch (every event an object with distinct keys, the first of them unescaped) is
/// read in one pass that splits the events and reads their top-level fields together. Anything
/// else takes the general path: split into raw events first, then each event is read on its
/// own, so one bad event is rejected alone. Both give the same result.
pub fn parse_batch(body: &[u8]) -> Result<Envelope<'_>, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body is empty; expected {\"batch\":[...]}",
        ));
    }
    screen(body)?;
    if first == Some(&b'{') {
        if let Some(env) = parse_batch_fast(body) {
            return check_batch(env);
        }
    }
    parse_batch_general(body)
}

/// The one-pass read; `None` sends the body down the general path.
fn parse_batch_fast(body: &[u8]) -> Option<Envelope<'_>> {
    // Checked as UTF-8 once here, the parser need not check each string again.
    let body = std::str::from_utf8(body).ok()?;
    let b: BatchBody<Event> = serde_json::from_str(body).ok()?;
    let events = b.batch?;
    let mut items = Vec::with_capacity(events.len());
    for mut event in events {
        if let Some(context) = event.child("context") {
            let text = object_text(body, context)?;
            event.set_text_of_child("context", text);
        }
        let raw = object_text(body, &event)?;
        items.push(Item {
            raw,
            event: Some(event),
        });
    }
    Some(Envelope {
        events: items,
        sent_at: b.sent_at.filter(|v| !v.is_null()),
        context: b.context,
        integrations: b.integrations,
        write_key: write_key_of(b.write_key),
    })
}

/// The text of an object in `body`, from the `{` before its first key to the `}` after its
/// last value (only whitespace can lie between them).
fn object_text<'a>(text: &'a str, event: &Event<'a>) -> Option<&'a str> {
    let body = text.as_bytes();
    let (key, value) = event.ends()?;
    let base = body.as_ptr() as usize;
    let key_at = (key.as_ptr() as usize).checked_sub(base)?;
    let value_end = (value.as_ptr() as usize).checked_sub(base)? + value.len();
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let before = body.get(..key_at.checked_sub(1)?)?;
    let open = before.iter().rposition(|b| !is_ws(b))?;
    let close = value_end + body.get(value_end..)?.iter().position(|b| !is_ws(b))?;
    if body[key_at - 1] != b'"' || body[open] != b'{' || body[close] != b'}' {
        return None;
    }
    text.get(open..=close)
}

/// The general path of [`parse_batch`] (public so tests and fuzzing can compare the two).
pub fn parse_batch_general(body: &[u8]) -> Result<Envelope<'_>, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        // Still say whether it is JSON at all.
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| not_json(body, e))?;
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body must be a JSON object like {\"batch\":[...]}",
        ));
    }
    let b: BatchBody<&RawValue> = serde_json::from_slice(body).map_err(|e| match e.classify() {
        // Valid JSON of the wrong shape: only `batch` has a type the parser enforces.
        serde_json::error::Category::Data if !e.to_string().starts_with("duplicate field") => {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "`batch` must be an array of events",
            )
        }
        _ => not_json(body, e),
    })?;
    let Some(events) = b.batch else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body has no `batch` array",
        ));
    };
    check_batch(Envelope {
        events: events.into_iter().map(Item::unparsed).collect(),
        sent_at: b.sent_at.filter(|v| !v.is_null()),
        context: b.context,
        integrations: b.integrations,
        write_key: write_key_of(b.write_key),
    })
}

/// The batch-wide limits, and the shape of the shared objects.
fn check_batch(mut env: Envelope<'_>) -> Result<Envelope<'_>, ApiError> {
    let n = env.events.len();
    if n == 0 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "`batch` is empty"));
    }
    if n > MAX_BATCH_EVENTS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("`batch` has {n} events; the limit is {MAX_BATCH_EVENTS}: split it"),
        ));
    }
    env.context = object_or_null("context", env.context)?;
    env.integrations = object_or_null("integrations", env.integrations)?;
    let shared =
        env.context.map_or(0, |c| c.get().len()) + env.integrations.map_or(0, |i| i.get().len());
    if shared.saturating_mul(n) > MAX_SHARED_COPY_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "batch-level `context` and `integrations` ({shared} bytes) would be copied into each of {n} events; \
                 the limit is {MAX_SHARED_COPY_BYTES} bytes in all: send them in the events or split the batch"
            ),
        ));
    }
    Ok(env)
}

/// Parse the body of a single-message endpoint (`/v1/track`, ...): the message itself.
pub fn parse_single(body: &[u8]) -> Result<Envelope<'_>, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body is empty; expected a JSON message",
        ));
    }
    screen(body)?;
    let raw: &RawValue = serde_json::from_slice(body).map_err(|e| not_json(body, e))?;
    if !raw.get().starts_with('{') {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body must be a JSON object (one message)",
        ));
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Key {
        write_key: Option<Value>,
    }
    let key: Key = serde_json::from_str(raw.get()).map_err(|e| not_json(body, e))?;
    Ok(Envelope {
        events: vec![Item::unparsed(raw)],
        write_key: write_key_of(key.write_key),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_envelope() {
        let body = br#"{"batch":[{"type":"track"},{"type":"page"}],"sentAt":"2026-01-01T00:00:00Z","context":{"ip":"1.2.3.4"},"writeKey":"wk","extra":1}"#;
        let e = parse_batch(body).unwrap();
        assert_eq!(e.events.len(), 2);
        assert_eq!(e.events[1].raw, r#"{"type":"page"}"#);
        assert_eq!(e.write_key.as_deref(), Some("wk"));
        assert_eq!(e.context.unwrap().get(), r#"{"ip":"1.2.3.4"}"#);
        assert!(e.sent_at.is_some());
    }

    /// What a parse yields: each event's text and fields (or why it is not an event).
    fn items(env: Envelope) -> Vec<(String, Result<String, String>)> {
        env.events
            .into_iter()
            .map(|i| (i.raw.to_string(), i.into_event().map(|e| e.to_json())))
            .collect()
    }

    #[test]
    fn fast_and_general_batch_paths_agree() {
        let bodies = [
            r#"{"batch":[{"type":"track","event":"a"},{"type":"page"}],"sentAt":null}"#,
            "{ \"batch\" : [ \n\t{ \"type\" : \"track\" , \"p\":{\"x\": [1, 2]} } ,{\"b\":\"}\"}\r\n] }",
            r#"{"batch":[{"\u0074ype":"track"},{"type":"page"}]}"#,
            r#"{"batch":[{"type":"track","type":"page"},{"type":"page"}]}"#,
            r#"{"batch":[{},{"type":"page"},3,"x",[1],null]}"#,
            r#"{"batch":[{"a":"{","b":"}"}],"context":{"ip":"1.2.3.4"},"writeKey":"k"}"#,
            // An event's own context is read in the same pass (as an object of its own).
            r#"{"batch":[{"type":"track","context":{"ip":"1.2.3.4","page":{"a":[1]}},"event":"e"}]}"#,
            "{\"batch\":[{\"type\":\"page\",\"context\" : { \"locale\" : \"en\" } }]}",
            r#"{"batch":[{"type":"page","context":null},{"type":"page","context":{}}]}"#,
            r#"{"batch":[{"type":"page","context":"x"},{"type":"page","context":[]}]}"#,
            r#"{"batch":[{"type":"page","context":{"a":1,"a":2}},{"type":"page"}]}"#,
            r#"{"batch":[{"type":"page","context":{"a":1},"context":{"b":1}}]}"#,
        ];
        for body in bodies {
            let fast = parse_batch(body.as_bytes()).unwrap();
            let general = parse_batch_general(body.as_bytes()).unwrap();
            assert_eq!(
                (fast.context.map(|c| c.get()), fast.write_key.clone()),
                (general.context.map(|c| c.get()), general.write_key.clone())
            );
            assert_eq!(items(fast), items(general), "{body}");
        }
        let e = parse_batch(bodies[0].as_bytes()).unwrap();
        assert!(
            e.events.iter().all(|i| i.event.is_some()),
            "the usual batch is read in one pass"
        );
        let e = parse_batch(bodies[6].as_bytes()).unwrap();
        let ev = e.events[0].event.as_ref().expect("one pass");
        assert_eq!(
            ev.child("context").map(|c| c.to_json()).as_deref(),
            Some(r#"{"ip":"1.2.3.4","page":{"a":[1]}}"#)
        );
        assert_eq!(
            ev.get("context"),
            Some(r#"{"ip":"1.2.3.4","page":{"a":[1]}}"#)
        );
        let e = parse_batch(bodies[2].as_bytes()).unwrap();
        assert!(
            e.events[0].event.is_none(),
            "an escaped first key takes the general path"
        );
    }

    #[test]
    fn whole_request_errors_name_the_problem() {
        let msg = |b: &[u8]| parse_batch(b).unwrap_err().message;
        assert!(msg(b"").contains("empty"));
        assert!(msg(b"{nope").contains("not valid JSON"));
        assert!(msg(b"[1,2]").contains("JSON object"));
        assert!(msg(b"{\"events\":[]}").contains("no `batch`"));
        assert!(msg(b"{\"batch\":{}}").contains("array"));
        assert!(msg(b"{\"batch\":[]}").contains("empty"));
        assert!(msg(b"{\"batch\":[{}],\"context\":3}").contains("`context`"));
        assert!(parse_single(b"[]")
            .unwrap_err()
            .message
            .contains("one message"));
    }

    #[test]
    fn event_count_and_shared_copy_caps() {
        let events = |n: usize| vec!["{}"; n].join(",");
        assert!(
            parse_batch(format!(r#"{{"batch":[{}]}}"#, events(MAX_BATCH_EVENTS)).as_bytes())
                .is_ok()
        );
        let e =
            parse_batch(format!(r#"{{"batch":[{}]}}"#, events(MAX_BATCH_EVENTS + 1)).as_bytes())
                .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            e.message.contains("has 10001 events; the limit is 10000"),
            "{}",
            e.message
        );
        // 1 KB of context for 2048 events is the limit; one more event is over.
        let ctx = format!(r#"{{"p":"{}"}}"#, "x".repeat(1024 - 8));
        let body = |n: usize| format!(r#"{{"batch":[{}],"context":{ctx}}}"#, events(n));
        assert!(parse_batch(body(2048).as_bytes()).is_ok());
        let e = parse_batch(body(2049).as_bytes()).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            e.message
                .contains("(1024 bytes) would be copied into each of 2049 events"),
            "{}",
            e.message
        );
    }

    #[test]
    fn depth_limit_counts_levels_outside_strings() {
        let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(screen(nest(MAX_DEPTH).as_bytes()).is_ok());
        let e = screen(nest(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("deeper than 64 levels"), "{}", e.message);
        // Brackets inside strings, escaped quotes included, do not count.
        let text = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
        assert!(screen(text.as_bytes()).is_ok());
        // A batch body spends two levels; an event gets the rest. Raw event text is checked too.
        let event = format!(r#"{{"type":"track","p":{}}}"#, nest(MAX_DEPTH - 3));
        assert!(parse_batch(format!(r#"{{"batch":[{event}]}}"#).as_bytes()).is_ok());
        let event = format!(r#"{{"type":"track","p":{}}}"#, nest(MAX_DEPTH - 2));
        let e = parse_batch(format!(r#"{{"batch":[{event}]}}"#).as_bytes()).unwrap_err();
        assert!(e.message.contains("deeper than"), "{}", e.message);
        // 100 000 levels: refused at level 65 without recursing.
        let e = parse_single(nest(100_000).as_bytes()).unwrap_err();
        assert!(e.message.contains("(at byte 64)"), "{}", e.message);
    }

    #[test]
    fn numbers_must_fit_a_double() {
        for ok in [
            "0",
            "-1.5e300",
            "1e-400",
            "123456789012345678901234567890",
            "1E+308",
        ] {
            assert!(
                screen(format!(r#"{{"n":{ok}}}"#).as_bytes()).is_ok(),
                "{ok}"
            );
        }
        let e = screen(br#"{"n":1e400}"#).unwrap_err();
        assert!(
            e.message.contains("number 1e400 at byte 5 is out of range"),
            "{}",
            e.message
        );
        let e = screen(format!("[-{}]", "9".repeat(400)).as_bytes()).unwrap_err();
        assert!(
            e.message
                .contains("-9999999999999999999... (401 characters)"),
            "{}",
            e.message
        );
        // Inside a string a number is text.
        assert!(screen(br#"{"n":"1e400"}"#).is_ok());
        // Truncated input, wherever it stops: no panic, and only a cut surrogate pair is
        // refused here (the rest is left to the parser).
        let text = br#"{"a":"x\ud83d\ude00\"","n":-12e3}"#;
        for end in 0..text.len() {
            if let Err(e) = screen(&text[..end]) {
                assert!((13..19).contains(&end), "{end}: {}", e.message);
            }
        }
    }

    #[test]
    fn surrogate_escapes_must_pair() {
        assert!(screen(br#"["\ud83d\ude00", "\u00e9\n\\ud800"]"#).is_ok());
        for bad in [
            r#"["\ud800"]"#,
            r#"["\ud800\u0041"]"#,
            r#"["\udc00"]"#,
            r#"["x\uDBFF"]"#,
        ] {
            let e = screen(bad.as_bytes()).unwrap_err();
            assert!(
                e.message.contains("unpaired surrogate"),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn envelope_duplicates_utf8_and_gzip_are_named() {
        let msg = |b: &[u8]| parse_batch(b).unwrap_err().message;
        assert_eq!(
            msg(br#"{"batch":[{}],"batch":[{}]}"#),
            "duplicate key `batch` in the request body"
        );
        assert_eq!(
            msg(br#"{"batch":[{}],"writeKey":"a","writeKey":"b"}"#),
            "duplicate key `writeKey` in the request body"
        );
        // Unknown envelope keys are ignored, repeated or not.
        assert!(parse_batch(br#"{"batch":[{}],"x":1,"x":2}"#).is_ok());
        assert_eq!(
            msg(b"{\"batch\":[{\"p\":\"\xff\"}]}"),
            "body is not valid UTF-8 (invalid byte at offset 16)"
        );
        assert!(msg(b"\x1f\x8b\x08\x00").contains("no `Content-Encoding: gzip`"));
        assert!(msg(br#"{"batch":[{"p":"#).contains("EOF while parsing"));
        let single = parse_single(br#"{"type":"track","writeKey":"a","writeKey":"b"}"#);
        assert_eq!(
            single.unwrap_err().message,
            "duplicate key `writeKey` in the request body"
        );
    }

    #[test]
    fn quote_finder_matches_a_plain_search() {
        // Neighbours of the two bytes (! # [ ]), bytes with the high bit set (é, 😀), and
        // both targets at several offsets within and past the first words.
        let text = "abcdefgh\\ij!#[]é😀mnopqrstuvwxyz0123456789\"ABCDEFGHIJKLMNOPQRS\\TU\"V";
        let text = text.as_bytes();
        for start in 0..text.len() {
            for end in start..=text.len() {
                let s = &text[start..end];
                let want = s.iter().position(|&c| c == b'"' || c == b'\\');
                assert_eq!(find_quote_or_backslash(s), want, "{start}..{end}");
            }
        }
    }

    #[test]
    fn single_message_with_write_key() {
        let e = parse_single(br#"{"type":"track","event":"x","writeKey":"k"}"#).unwrap();
        assert_eq!(e.events.len(), 1);
        assert_eq!(e.write_key.as_deref(), Some("k"));
    }
}
