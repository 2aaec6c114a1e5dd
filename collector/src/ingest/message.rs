//! The Segment HTTP Tracking API's shapes: the message types, and the request envelope of
//! `/v1/batch` (`{"batch":[...], "sentAt", "context", "integrations", "writeKey"}`) or of a
//! single-message endpoint. Events stay raw here; validation looks inside them.

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

fn not_json(e: serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("body is not valid JSON: {e}"),
    )
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
    if first != Some(&b'{') {
        // Still say whether it is JSON at all.
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(not_json)?;
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body must be a JSON object like {\"batch\":[...]}",
        ));
    }
    let b: BatchBody = serde_json::from_slice(body).map_err(|e| match e.classify() {
        // Valid JSON of the wrong shape: only `batch` has a type the parser enforces.
        serde_json::error::Category::Data => ApiError::new(
            StatusCode::BAD_REQUEST,
            "`batch` must be an array of events",
        ),
        _ => not_json(e),
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
    Ok(Envelope {
        events,
        sent_at: b.sent_at.filter(|v| !v.is_null()),
        context: object_or_null("context", b.context)?,
        integrations: object_or_null("integrations", b.integrations)?,
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
    let raw: &RawValue = serde_json::from_slice(body).map_err(not_json)?;
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
    let key: Key = serde_json::from_str(raw.get()).map_err(not_json)?;
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
    fn single_message_with_write_key() {
        let e = parse_single(br#"{"type":"track","event":"x","writeKey":"k"}"#).unwrap();
        assert_eq!(e.events.len(), 1);
        assert_eq!(e.write_key.as_deref(), Some("k"));
    }
}
