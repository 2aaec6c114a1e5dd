//! The Avro schema Azure Event Hubs Capture writes, and the mapping of a spooled event to one
//! Capture record. `SequenceNumber` and `Offset` hold the spool position, which makes crash
//! recovery exact (see `recover`).

use std::collections::HashMap;
use std::sync::LazyLock;

use apache_avro::types::Value;
use apache_avro::Schema;

use crate::sinks::meta::EventMeta;
use crate::spool::Record;

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

/// Union branch of "string" in both map value unions.
const STRING_BRANCH: u32 = 2;

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

fn string(s: impl Into<String>) -> Value {
    Value::Union(STRING_BRANCH, Box::new(Value::String(s.into())))
}

/// The Capture record of one spooled event. The enqueue time is the event's `receivedAt`.
pub fn to_avro(record: &Record) -> Value {
    let meta = EventMeta::parse(&record.payload);
    let enqueued = meta
        .received_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now);
    let mut system = HashMap::new();
    system.insert("content-type".to_string(), string("application/json"));
    if let Some(key) = meta.partition_key() {
        system.insert("x-opt-partition-key".to_string(), string(key));
    }
    let properties: HashMap<String, Value> = meta
        .properties()
        .into_iter()
        .map(|(k, v)| (k.to_string(), string(v)))
        .collect();
    Value::Record(vec![
        ("SequenceNumber".into(), Value::Long(record.seq as i64)),
        ("Offset".into(), Value::String(record.seq.to_string())),
        (
            "EnqueuedTimeUtc".into(),
            Value::String(enqueued_time(enqueued)),
        ),
        ("SystemProperties".into(), Value::Map(system)),
        ("Properties".into(), Value::Map(properties)),
        (
            "Body".into(),
            Value::Union(1, Box::new(Value::Bytes(record.payload.to_vec()))),
        ),
    ])
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
    use chrono::TimeZone;

    #[test]
    fn record_validates_against_schema() {
        let rec = Record { seq: 7, payload: r#"{"type":"track","event":"Buy","anonymousId":"a","receivedAt":"2026-11-28T15:09:38.123Z"}"#.into() };
        let v = to_avro(&rec);
        assert!(v.validate(&SCHEMA));
        assert_eq!(sequence_number(&v), Some(7));
        let Value::Record(fields) = &v else { panic!() };
        assert_eq!(fields[2].1, Value::String("11/28/2026 3:09:38 PM".into()));
    }

    #[test]
    fn enqueued_time_format() {
        let t = chrono::Utc.with_ymd_and_hms(2026, 1, 5, 0, 7, 9).unwrap();
        assert_eq!(enqueued_time(t), "1/5/2026 12:07:09 AM");
    }
}
