//! The Segment HTTP Tracking API's shapes: the message types, and the request envelope of
//! `/v1/batch` (`{"batch":[...], "sentAt", "context", "integrations", "writeKey"}`) or of a
//! single-message endpoint. Events stay raw here; validation looks inside them.
//!
//! Before the parser sees a body, [`super::screen`] walks its bytes once and refuses what the
//! parser would let through into raw event text but readers downstream choke on (deep nesting,
//! numbers out of a double's range, unpaired surrogate escapes).
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
use super::screen::screen;
#[cfg(test)]
use super::screen::MAX_DEPTH;
use super::ApiError;

/// The Segment message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// The most events one batch may hold. A 512 KB body of minimal events holds about 15 000; a
/// body of `{}`s, 170 000, each of which would cost a dead letter and a line in the response.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// Batch-level `context` and `integrations` fill in every event, so their bytes are copied once
/// per event. Their size times the event count may not pass this (2 MiB: 500 events with a
/// 4 KB context), which bounds what one request can make the collector store and hold.
pub const MAX_SHARED_COPY_BYTES: usize = 2 << 20;

/// A parse error as a whole-request error that names the problem.
fn not_json(body: &[u8], e: serde_json::Error) -> ApiError {
    let msg = e.to_string();
    if let Some(field) = msg.strip_prefix("duplicate field ") {
        let field = field.split(" at line").next().unwrap_or(field);
        return ApiError::bad_request(format!("duplicate key {field} in the request body"));
    }
    if msg.starts_with("invalid unicode code point") {
        if let Err(u) = std::str::from_utf8(body) {
            return ApiError::bad_request(format!(
                "body is not valid UTF-8 (invalid byte at offset {})",
                u.valid_up_to()
            ));
        }
    }
    if body.starts_with(&[0x1f, 0x8b]) {
        return ApiError::bad_request(
            "body is gzip-compressed but has no `Content-Encoding: gzip` header".to_string(),
        );
    }
    ApiError::bad_request(format!("body is not valid JSON: {e}"))
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
    fn batch_bodies_are_screened() {
        let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        // A batch body spends two levels; an event gets the rest. Raw event text is checked too.
        let event = format!(r#"{{"type":"track","p":{}}}"#, nest(MAX_DEPTH - 3));
        assert!(parse_batch(format!(r#"{{"batch":[{event}]}}"#).as_bytes()).is_ok());
        let event = format!(r#"{{"type":"track","p":{}}}"#, nest(MAX_DEPTH - 2));
        let e = parse_batch(format!(r#"{{"batch":[{event}]}}"#).as_bytes()).unwrap_err();
        assert!(e.message.contains("deeper than"), "{}", e.message);
        // 100 000 levels: refused at level 65 without recursing.
        let e = parse_single(nest(100_000).as_bytes()).unwrap_err();
        assert!(e.message.contains("(at byte 64)"), "{}", e.message);
        let e = parse_batch(br#"{"batch":[{"type":"track","n":1e400}]}"#).unwrap_err();
        assert!(e.message.contains("out of range"), "{}", e.message);
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
    fn single_message_with_write_key() {
        let e = parse_single(br#"{"type":"track","event":"x","writeKey":"k"}"#).unwrap();
        assert_eq!(e.events.len(), 1);
        assert_eq!(e.write_key.as_deref(), Some("k"));
    }
}
