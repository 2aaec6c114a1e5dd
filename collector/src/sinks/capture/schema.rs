//! The Avro schema Azure Event Hubs Capture writes, and the mapping of a spooled event to one
//! Capture record. `SequenceNumber` and `Offset` hold the spool position, which makes crash
//! recovery exact (see `recover`).

use std::sync::LazyLock;

use apache_avro::types::Value;
use apache_avro::Schema;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::sinks::meta::EventMeta;

/// Verbatim from the Event Hubs Capture documentation.
pub const CAPTURE_SCHEMA: &str = r#"{
    "type":"record",
    "name":"EventData",
    "namespace":"Microsoft.ServiceBus.Messaging",
    "fields":[
        {"name":"SequenceNumber","type":"long"},
        {"name":"Offset","type":"string"},
        {"name":"EnqueuedTimeUtc","type":"string"},
        {"name":"SystemProperties","type":{"type":"map","values":["long","double","string","bytes"]}},
        {"name":"Properties","type":{"type":"map","values":["long","double","string","bytes","null"]}},
        {"name":"Body","type":["null","bytes"]}
    ]
}"#;

pub static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::parse_str(CAPTURE_SCHEMA).expect("capture schema parses"));

/// Capture's EnqueuedTimeUtc format, e.g. `11/28/2026 3:09:38 PM`.
pub fn enqueued_time(t: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let (pm, hour) = t.hour12();
    let ampm = if pm { "PM" } else { "AM" };
    format!(
        "{}/{}/{} {}:{:02}:{:02} {ampm}",
        t.month(),
        t.day(),
        t.year(),
        hour,
        t.minute(),
        t.second()
    )
}

/// One Capture record, serialized straight into the Avro block (no intermediate value tree).
#[derive(Serialize)]
pub struct EventData<'a> {
    #[serde(rename = "SequenceNumber")]
    sequence_number: i64,
    #[serde(rename = "Offset")]
    offset: Offset,
    #[serde(rename = "EnqueuedTimeUtc")]
    enqueued_time_utc: &'a str,
    #[serde(rename = "SystemProperties")]
    system_properties: StringMap<'a>,
    #[serde(rename = "Properties")]
    properties: StringMap<'a>,
    #[serde(rename = "Body")]
    body: Option<Body<'a>>,
}

/// A map of string values (the "string" branch of the Capture map unions): at most three
/// entries, so no allocation per record.
#[derive(Default)]
struct StringMap<'a> {
    entries: [(&'a str, &'a str); 3],
    len: usize,
}

impl<'a> StringMap<'a> {
    fn push(&mut self, key: &'a str, value: &'a str) {
        self.entries[self.len] = (key, value);
        self.len += 1;
    }
}

impl Serialize for StringMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len))?;
        for (k, v) in &self.entries[..self.len] {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The spool position as Capture's string `Offset`, formatted without an allocation.
struct Offset(u64);

impl Serialize for Offset {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use std::io::Write;
        let mut buf = [0u8; 20];
        let mut rest = &mut buf[..];
        write!(rest, "{}", self.0).expect("a u64 has at most 20 digits");
        let n = 20 - rest.len();
        s.serialize_str(std::str::from_utf8(&buf[..n]).expect("digits"))
    }
}

/// Avro `bytes`, not an array of ints.
struct Body<'a>(&'a [u8]);

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Capture's EnqueuedTimeUtc for an event's `receivedAt` (now, if it has none).
pub fn enqueued_time_of(received_at: Option<&str>) -> String {
    let t = received_at
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now);
    enqueued_time(t)
}

/// The Capture record of one spooled event: its header `meta`, its JSON `body`, and the
/// enqueue time from [`enqueued_time_of`].
pub fn event_data<'a>(
    seq: u64,
    meta: &'a EventMeta<'a>,
    body: &'a [u8],
    enqueued_time_utc: &'a str,
) -> EventData<'a> {
    let mut system = StringMap::default();
    system.push("content-type", "application/json");
    if let Some(key) = meta.partition_key() {
        system.push("x-opt-partition-key", key);
    }
    let mut properties = StringMap::default();
    for (k, v) in meta.properties() {
        properties.push(k, v);
    }
    EventData {
        sequence_number: seq as i64,
        offset: Offset(seq),
        enqueued_time_utc,
        system_properties: system,
        properties,
        body: Some(Body(body)),
    }
}

/// The spool position stored in a Capture record.
pub fn sequence_number(value: &Value) -> Option<u64> {
    match value {
        Value::Record(fields) => fields.iter().find_map(|(k, v)| match (k.as_str(), v) {
            ("SequenceNumber", Value::Long(n)) => u64::try_from(*n).ok(),
            _ => None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Record;
    use chrono::TimeZone;

    #[test]
    fn record_round_trips_through_an_avro_file() {
        let rec = Record {
            seq: 7,
            payload: r#"{"type":"track","event":"Buy","anonymousId":"a","receivedAt":"2026-11-28T15:09:38.123Z"}"#.into(),
        };
        let (meta, body) = EventMeta::split(&rec.payload);
        let enqueued = enqueued_time_of(meta.received_at.as_deref());
        let mut w = apache_avro::Writer::new(&SCHEMA, Vec::new());
        w.append_ser(event_data(rec.seq, &meta, body, &enqueued))
            .unwrap();
        let bytes = w.into_inner().unwrap();
        let values: Vec<Value> = apache_avro::Reader::new(&bytes[..])
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(sequence_number(&values[0]), Some(7));
        let Value::Record(fields) = &values[0] else {
            panic!()
        };
        assert_eq!(fields[1].1, Value::String("7".into()));
        assert_eq!(fields[2].1, Value::String("11/28/2026 3:09:38 PM".into()));
        let Value::Map(system) = &fields[3].1 else {
            panic!()
        };
        assert_eq!(
            system["x-opt-partition-key"],
            Value::Union(2, Box::new(Value::String("a".into())))
        );
        let Value::Map(props) = &fields[4].1 else {
            panic!()
        };
        assert_eq!(
            props["event"],
            Value::Union(2, Box::new(Value::String("Buy".into())))
        );
        assert_eq!(
            fields[5].1,
            Value::Union(1, Box::new(Value::Bytes(rec.payload.to_vec())))
        );
    }

    #[test]
    fn enqueued_time_format() {
        let t = chrono::Utc.with_ymd_and_hms(2026, 1, 5, 0, 7, 9).unwrap();
        assert_eq!(enqueued_time(t), "1/5/2026 12:07:09 AM");
    }
}
