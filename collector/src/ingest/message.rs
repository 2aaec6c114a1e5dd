//! The Segment HTTP Tracking API's shapes: the message types, and the request envelope of
//! `/v1/batch` (`{"batch":[...], "sentAt", "context", "integrations", "writeKey"}`) or of a
//! single-message endpoint. Events stay raw here; validation looks inside them.
//!
//! Before the parser sees a body, [`screen`] walks its bytes once (strings are skipped eight
//! bytes at a time) and refuses what the parser would let through into raw event text but readers
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

/// What every event of a request shares.
#[derive(Debug, Default)]
pub struct Envelope<'a> {
    pub events: Vec<&'a RawValue>,
    pub sent_at: Option<Value>,
    /// Batch-level `context` and `integrations`: JSON objects applied to every event.
    pub context: Option<&'a RawValue>,
    pub integrations: Option<&'a RawValue>,
    pub write_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a RawValue>>,
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

/// The first `"` or `\\` in `s`, eight bytes at a time (strings are most of a body's bytes).
fn find_quote_or_backslash(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has_zero_byte = |v: u64| v.wrapping_sub(LO) & !v & HI != 0;
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        if has_zero_byte(w ^ (LO * u64::from(b'"'))) || has_zero_byte(w ^ (LO * u64::from(b'\\'))) {
            break;
        }
        i += 8;
    }
    s[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|p| p + i)
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
pub fn parse_batch(body: &[u8]) -> Result<Envelope<'_>, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body is empty; expected {\"batch\":[...]}",
        ));
    }
    screen(body)?;
    if first != Some(&b'{') {
        // Still say whether it is JSON at all.
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| not_json(body, e))?;
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body must be a JSON object like {\"batch\":[...]}",
        ));
    }
    let b: BatchBody = serde_json::from_slice(body).map_err(|e| match e.classify() {
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
    if events.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "`batch` is empty"));
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "`batch` has {} events; the limit is {MAX_BATCH_EVENTS}: split it",
                events.len()
            ),
        ));
    }
    let context = object_or_null("context", b.context)?;
    let integrations = object_or_null("integrations", b.integrations)?;
    let shared = context.map_or(0, |c| c.get().len()) + integrations.map_or(0, |i| i.get().len());
    if shared.saturating_mul(events.len()) > MAX_SHARED_COPY_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "batch-level `context` and `integrations` ({shared} bytes) would be copied into each of {} events; \
                 the limit is {MAX_SHARED_COPY_BYTES} bytes in all: send them in the events or split the batch",
                events.len()
            ),
        ));
    }
    Ok(Envelope {
        events,
        sent_at: b.sent_at.filter(|v| !v.is_null()),
        context,
        integrations,
        write_key: write_key_of(b.write_key),
    })
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
        events: vec![raw],
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
        assert_eq!(e.events[1].get(), r#"{"type":"page"}"#);
        assert_eq!(e.write_key.as_deref(), Some("wk"));
        assert_eq!(e.context.unwrap().get(), r#"{"ip":"1.2.3.4"}"#);
        assert!(e.sent_at.is_some());
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
        let text = br#"abcdefgh\ijklmnopqrstuvwxyz0123456789"ABCDEFGHIJKLMNOP"#;
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
