//! What sinks need to know about an event without parsing its JSON: type, name, partition
//! key, messageId and receive time. Every sink labels events the same way with
//! [`EventMeta::properties`], so Event Hubs and local capture files agree.
//!
//! Ingest already holds these fields when it stores an event, so it writes them in front of
//! the event's JSON in the spooled payload ([`EventMeta::write_header`]); sinks read them back
//! with [`EventMeta::split`] instead of scanning every event's JSON a second time. The header
//! is a tag byte (`0x02`; JSON text never starts with it), the event's dedupe key (a
//! little-endian `u64`, read back at start by [`dedupe_key`] to rebuild the dedupe window),
//! and seven fields, each a little-endian `u32` length (`u32::MAX` for none) and UTF-8 bytes.
//! Older spools hold tag `0x01` headers (no key) or plain JSON, which is parsed.

use std::borrow::Cow;

use serde::Deserialize;

/// Version of the event layout that sinks stamp on each event (`schemaVersion` property).
pub const SCHEMA_VERSION: &str = "1";

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct EventMeta<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub anonymous_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub message_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub received_at: Option<Cow<'a, str>>,
}

/// First byte of a spooled payload that starts with a header and a dedupe key.
const HEADER_TAG: u8 = 0x02;
/// First byte of a header written before the dedupe key was (no key).
const HEADER_TAG_V1: u8 = 0x01;
/// Length that marks an absent field.
const ABSENT: u32 = u32::MAX;

impl<'a> EventMeta<'a> {
    /// Parse the fields sinks use from event JSON. Anything that is not an event yields defaults.
    pub fn parse(json: &'a [u8]) -> EventMeta<'a> {
        serde_json::from_slice(json).unwrap_or_default()
    }

    fn fields(&self) -> [&Option<Cow<'a, str>>; 7] {
        [
            &self.kind,
            &self.event,
            &self.name,
            &self.user_id,
            &self.anonymous_id,
            &self.message_id,
            &self.received_at,
        ]
    }

    /// Write the header that goes in front of the event's JSON in a spooled payload.
    pub fn write_header(&self, dedupe_key: u64, out: &mut Vec<u8>) {
        out.push(HEADER_TAG);
        out.extend_from_slice(&dedupe_key.to_le_bytes());
        for field in self.fields() {
            match field {
                Some(s) => {
                    let len = u32::try_from(s.len()).expect("fields are capped far below 4 GiB");
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                None => out.extend_from_slice(&ABSENT.to_le_bytes()),
            }
        }
    }

    /// A spooled payload's header and the event's JSON. A payload with no header is JSON and
    /// is parsed; a damaged header (the spool's checksums make that a bug) yields defaults.
    pub fn split(payload: &'a [u8]) -> (EventMeta<'a>, &'a [u8]) {
        let mut rest = match payload.first() {
            Some(&HEADER_TAG) => match payload.get(9..) {
                Some(rest) => rest,
                None => return (EventMeta::default(), &[]),
            },
            Some(&HEADER_TAG_V1) => &payload[1..],
            _ => return (EventMeta::parse(payload), payload),
        };
        let mut next = || -> Result<Option<Cow<'a, str>>, ()> {
            let (len, tail) = rest.split_first_chunk::<4>().ok_or(())?;
            let len = u32::from_le_bytes(*len);
            if len == ABSENT {
                rest = tail;
                return Ok(None);
            }
            let len = len as usize;
            let text = tail.get(..len).ok_or(())?;
            rest = &tail[len..];
            let text = std::str::from_utf8(text).map_err(|_| ())?;
            Ok(Some(Cow::Borrowed(text)))
        };
        let mut read = || -> Result<EventMeta<'a>, ()> {
            Ok(EventMeta {
                kind: next()?,
                event: next()?,
                name: next()?,
                user_id: next()?,
                anonymous_id: next()?,
                message_id: next()?,
                received_at: next()?,
            })
        };
        match read() {
            Ok(meta) => (meta, rest),
            Err(()) => (EventMeta::default(), &[]),
        }
    }

    /// userId, or anonymousId when there is none: keeps each visitor's events in order.
    pub fn partition_key(&self) -> Option<&str> {
        self.user_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.anonymous_id.as_deref())
    }

    /// The event's name: `event` for track, `name` for page and screen.
    pub fn event_name(&self) -> Option<&str> {
        self.event.as_deref().or(self.name.as_deref())
    }

    /// Application properties: `type`, `event` (when named) and `schemaVersion`.
    pub fn properties(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("type", self.kind.as_deref()),
            ("event", self.event_name()),
            ("schemaVersion", Some(SCHEMA_VERSION)),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
    }
}

/// The dedupe key a spooled payload's header carries, if it has one.
pub fn dedupe_key(payload: &[u8]) -> Option<u64> {
    match payload.split_first_chunk::<9>() {
        Some(([HEADER_TAG, key @ ..], _)) => Some(u64::from_le_bytes(*key)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_ignores_the_rest() {
        let m = EventMeta::parse(br#"{"type":"track","event":"Order \"Done\"","anonymousId":"a1","userId":null,"properties":{"x":[1,2]}}"#);
        assert_eq!(m.partition_key(), Some("a1"));
        assert_eq!(m.event_name(), Some("Order \"Done\""));
        assert_eq!(
            m.properties().collect::<Vec<_>>(),
            vec![
                ("type", "track"),
                ("event", "Order \"Done\""),
                ("schemaVersion", "1")
            ]
        );
        let m =
            EventMeta::parse(br#"{"type":"page","name":"Home","userId":"u","anonymousId":"a"}"#);
        assert_eq!(m.partition_key(), Some("u"));
        assert_eq!(m.event_name(), Some("Home"));
    }

    #[test]
    fn header_round_trips_and_plain_json_still_reads() {
        let json = br#"{"type":"page","name":"Home","anonymousId":"a"}"#;
        let meta = EventMeta {
            kind: Some("page".into()),
            name: Some("Home \u{e9}".into()),
            anonymous_id: Some("a".into()),
            received_at: Some("2026-11-28T15:09:38.123Z".into()),
            ..Default::default()
        };
        let mut payload = Vec::new();
        meta.write_header(0x0123_4567_89ab_cdef, &mut payload);
        payload.extend_from_slice(json);
        let (back, body) = EventMeta::split(&payload);
        assert_eq!(body, json);
        assert_eq!(back.fields(), meta.fields());
        assert_eq!(dedupe_key(&payload), Some(0x0123_4567_89ab_cdef));
        assert_eq!(dedupe_key(json), None);
        // A header from before the key still reads.
        let mut v1 = vec![HEADER_TAG_V1];
        v1.extend_from_slice(&payload[9..]);
        let (back, body) = EventMeta::split(&v1);
        assert_eq!((back.fields(), body), (meta.fields(), &json[..]));
        assert_eq!(dedupe_key(&v1), None);
        let (plain, body) = EventMeta::split(json);
        assert_eq!(body, json);
        assert_eq!(plain.event_name(), Some("Home"));
        // A cut header is refused, not read past its end.
        for end in 1..payload.len() - json.len() {
            let (m, body) = EventMeta::split(&payload[..end]);
            assert!(m.kind.is_none() && body.is_empty(), "{end}");
        }
    }
}
