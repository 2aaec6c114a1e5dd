//! One spooled event → one Event Hubs event. The body is the enriched JSON as spooled;
//! content type `application/json`; the AMQP message-id is the event's Segment `messageId` (so
//! a redelivered event keeps its id and consumers can drop duplicates); application properties
//! carry `type`, `event` and `schemaVersion` (the same labels the capture sink writes); the
//! partition key (userId, else anonymousId) rides in the `x-opt-partition-key` annotation.

use azure_core_amqp::{AmqpMessage, AmqpSymbol};
use azure_messaging_eventhubs::models::{AmqpSimpleValue, EventData};

use crate::sinks::meta::EventMeta;
use crate::spool::Record;

/// An event ready for a batch, with what routing and metrics need.
pub struct Encoded {
    pub message: AmqpMessage,
    pub partition_key: Option<String>,
    /// When the collector accepted the event (ms since the epoch), for relay latency.
    pub received_at_ms: Option<i64>,
}

pub const CONTENT_TYPE: &str = "application/json";
pub const PARTITION_KEY_ANNOTATION: &str = "x-opt-partition-key";

pub fn encode(record: &Record) -> Encoded {
    let (meta, body) = EventMeta::split(&record.payload);
    let mut event = EventData::builder()
        .with_body(body.to_vec())
        .with_content_type(CONTENT_TYPE.to_string());
    if let Some(id) = meta.message_id.as_deref().filter(|s| !s.is_empty()) {
        event = event.with_message_id(id.to_string());
    }
    for (key, value) in meta.properties() {
        event = event.add_property(key.to_string(), AmqpSimpleValue::String(value.to_string()));
    }
    let mut message = AmqpMessage::from(event.build());
    let partition_key = meta.partition_key().map(str::to_owned);
    if let Some(key) = &partition_key {
        message.add_message_annotation(AmqpSymbol::from(PARTITION_KEY_ANNOTATION), key.clone());
    }
    let received_at_ms = meta
        .received_at
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis());
    Encoded {
        message,
        partition_key,
        received_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core_amqp::message::{AmqpAnnotationKey, AmqpMessageBody, AmqpMessageId};
    use azure_core_amqp::AmqpValue;
    use bytes::Bytes;

    fn record(json: &str) -> Record {
        Record {
            seq: 7,
            payload: Bytes::from(json.to_owned()),
        }
    }

    #[test]
    fn maps_body_id_type_properties_and_key() {
        let json = r#"{"type":"track","event":"Signed Up","userId":"u1","anonymousId":"a1","messageId":"m-1","receivedAt":"2026-11-28T12:00:00.250Z"}"#;
        let e = encode(&record(json));
        assert_eq!(e.partition_key.as_deref(), Some("u1"));
        assert_eq!(e.received_at_ms, Some(1_795_867_200_250));
        let m = &e.message;
        match &m.body {
            AmqpMessageBody::Binary(parts) => assert_eq!(parts.concat(), json.as_bytes()),
            other => panic!("{other:?}"),
        }
        let props = m.properties.as_ref().unwrap();
        assert_eq!(props.content_type, Some(AmqpSymbol::from(CONTENT_TYPE)));
        assert_eq!(props.message_id, Some(AmqpMessageId::String("m-1".into())));
        let app = m.application_properties.as_ref().unwrap();
        assert_eq!(
            app.0.get("type"),
            Some(&AmqpSimpleValue::String("track".into()))
        );
        assert_eq!(
            app.0.get("event"),
            Some(&AmqpSimpleValue::String("Signed Up".into()))
        );
        assert_eq!(
            app.0.get("schemaVersion"),
            Some(&AmqpSimpleValue::String("1".into()))
        );
        let ann = m.message_annotations.as_ref().unwrap();
        let key = AmqpAnnotationKey::Symbol(AmqpSymbol::from(PARTITION_KEY_ANNOTATION));
        assert_eq!(ann.0.get(&key), Some(&AmqpValue::String("u1".into())));
    }

    #[test]
    fn anonymous_visitors_are_keyed_by_anonymous_id() {
        let e = encode(&record(
            r#"{"type":"page","name":"Home","anonymousId":"a9","messageId":"m"}"#,
        ));
        assert_eq!(e.partition_key.as_deref(), Some("a9"));
    }
}
