//! Turns what arrives on an event link into [`ReceivedEvent`]s: a plain message is one event; a
//! batched transfer (message format 0x80013700) carries N Data sections, each an encoded AMQP
//! message, exactly as the Event Hubs client builds them in `send_batch`.

use std::time::SystemTime;

use fe2o3_amqp::types::messaging::message::__private::Deserializable;
use fe2o3_amqp::types::messaging::{Body, Message, MessageId};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};
use serde_json::Value as Json;

use crate::record::ReceivedEvent;

/// The message format of an Event Hubs batch envelope.
pub const BATCH_MESSAGE_FORMAT: u32 = 0x8001_3700;

/// Where a link's events go: the attach target and the partition parsed from it.
#[derive(Debug, Clone)]
pub struct LinkTarget {
    pub address: String,
    pub partition: Option<String>,
}

impl LinkTarget {
    pub fn new(address: String) -> Self {
        let partition = address
            .rsplit_once("/Partitions/")
            .map(|(_, p)| p.trim_end_matches('/').to_owned());
        LinkTarget { address, partition }
    }
}

/// Decodes one transfer into its events.
pub fn decode_transfer(
    message: &Message<Body<Value>>,
    message_format: Option<u32>,
    target: &LinkTarget,
) -> anyhow::Result<Vec<ReceivedEvent>> {
    if message_format == Some(BATCH_MESSAGE_FORMAT) {
        let Body::Data(sections) = &message.body else {
            anyhow::bail!("a batched transfer must have Data sections in its body");
        };
        sections
            .iter()
            .map(|data| {
                let inner: Deserializable<Message<Body<Value>>> = serde_amqp::from_slice(&data.0)?;
                Ok(to_event(&inner.0, target, true))
            })
            .collect()
    } else {
        Ok(vec![to_event(message, target, false)])
    }
}

fn to_event(message: &Message<Body<Value>>, target: &LinkTarget, batched: bool) -> ReceivedEvent {
    let props = message.properties.as_ref();
    let partition_key = message.message_annotations.as_ref().and_then(|ann| {
        ann.0.iter().find_map(|(k, v)| match (k, v) {
            (key, Value::String(s)) if key_is(key, "x-opt-partition-key") => Some(s.clone()),
            _ => None,
        })
    });
    let properties = message
        .application_properties
        .as_ref()
        .map(|ap| {
            ap.0.iter()
                .map(|(k, v)| (k.clone(), simple_to_json(v)))
                .collect()
        })
        .unwrap_or_default();
    ReceivedEvent {
        body: body_bytes(&message.body),
        message_id: props
            .and_then(|p| p.message_id.as_ref())
            .map(message_id_string),
        partition_key,
        content_type: props
            .and_then(|p| p.content_type.as_ref())
            .map(|s| s.0.clone()),
        properties,
        target: target.address.clone(),
        partition: target.partition.clone(),
        batched,
        received_at: SystemTime::now(),
    }
}

fn key_is(key: &fe2o3_amqp::types::messaging::annotations::OwnedKey, name: &str) -> bool {
    use fe2o3_amqp::types::messaging::annotations::OwnedKey;
    match key {
        OwnedKey::Symbol(s) => s.0 == name,
        OwnedKey::Ulong(_) => false,
    }
}

fn body_bytes(body: &Body<Value>) -> Vec<u8> {
    match body {
        Body::Data(sections) => sections.iter().flat_map(|d| d.0.iter().copied()).collect(),
        Body::Value(v) => value_to_json(&v.0).to_string().into_bytes(),
        Body::Sequence(seqs) => Json::Array(
            seqs.iter()
                .flat_map(|s| s.0.iter().map(value_to_json))
                .collect(),
        )
        .to_string()
        .into_bytes(),
        Body::Empty => Vec::new(),
    }
}

/// Message ids as strings: UUIDs hyphenated, binary ids as lowercase hex.
pub fn message_id_string(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => uuid::Uuid::from_bytes(*u.as_inner())
            .hyphenated()
            .to_string(),
        MessageId::Binary(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

fn simple_to_json(v: &SimpleValue) -> Json {
    value_to_json(&Value::from(v.clone()))
}

/// A lossy, readable rendering of an AMQP value for assertions and NDJSON output.
pub fn value_to_json(v: &Value) -> Json {
    use base64::Engine as _;
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Ubyte(n) => (*n).into(),
        Value::Ushort(n) => (*n).into(),
        Value::Uint(n) => (*n).into(),
        Value::Ulong(n) => (*n).into(),
        Value::Byte(n) => (*n).into(),
        Value::Short(n) => (*n).into(),
        Value::Int(n) => (*n).into(),
        Value::Long(n) => (*n).into(),
        Value::Float(f) => {
            serde_json::Number::from_f64(f.into_inner() as f64).map_or(Json::Null, Json::Number)
        }
        Value::Double(f) => {
            serde_json::Number::from_f64(f.into_inner()).map_or(Json::Null, Json::Number)
        }
        Value::Char(c) => Json::String(c.to_string()),
        Value::Timestamp(t) => t.milliseconds().into(),
        Value::Uuid(u) => Json::String(uuid::Uuid::from_bytes(*u.as_inner()).to_string()),
        Value::Binary(b) => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(b.as_slice()))
        }
        Value::String(s) => Json::String(s.clone()),
        Value::Symbol(s) => Json::String(s.0.clone()),
        Value::List(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Array(items) => Json::Array(items.0.iter().map(value_to_json).collect()),
        Value::Map(map) => Json::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => s.clone(),
                        Value::Symbol(s) => s.0.clone(),
                        other => value_to_json(other).to_string(),
                    };
                    (key, value_to_json(v))
                })
                .collect(),
        ),
        Value::Described(d) => value_to_json(&d.value),
        other => Json::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_parsed_from_the_target() {
        assert_eq!(
            LinkTarget::new("amqps://ns/hub/Partitions/3".into())
                .partition
                .as_deref(),
            Some("3")
        );
        assert_eq!(LinkTarget::new("amqps://ns/hub".into()).partition, None);
    }
}
