//! What sinks need to know about an event without owning its JSON: type, name, partition
//! key and receive time, read from the enriched payload. Every sink labels events the same
//! way with [`EventMeta::properties`], so Event Hubs and local capture files agree.

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

impl<'a> EventMeta<'a> {
    /// Parse the fields sinks use. Enriched payloads always parse; anything else yields defaults.
    pub fn parse(payload: &'a [u8]) -> EventMeta<'a> {
        serde_json::from_slice(payload).unwrap_or_default()
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
    pub fn properties(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::with_capacity(3);
        if let Some(t) = &self.kind {
            p.push(("type", t.to_string()));
        }
        if let Some(n) = self.event_name() {
            p.push(("event", n.to_string()));
        }
        p.push(("schemaVersion", SCHEMA_VERSION.to_string()));
        p
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
            m.properties(),
            vec![
                ("type", "track".into()),
                ("event", "Order \"Done\"".into()),
                ("schemaVersion", "1".into())
            ]
        );
        let m =
            EventMeta::parse(br#"{"type":"page","name":"Home","userId":"u","anonymousId":"a"}"#);
        assert_eq!(m.partition_key(), Some("u"));
        assert_eq!(m.event_name(), Some("Home"));
    }
}
