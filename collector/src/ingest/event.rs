//! One event as a flat list of its top-level fields, with each value left as raw JSON text
//! borrowed from the request body. Validation and enrichment only look at a few top-level
//! fields, so properties, traits and the rest are checked for syntax and copied through
//! without being parsed into trees, which keeps ingest cheap. Values are JSON text: borrowed
//! from the body (checked by the parser) or written by us (valid by construction).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

#[derive(Debug, Default, Clone)]
pub struct Event<'a> {
    fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// A JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// The JSON type of a value's text, from its first byte.
pub fn kind(json: &str) -> Kind {
    match json.as_bytes().first() {
        Some(b'n') => Kind::Null,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'"') => Kind::String,
        Some(b'[') => Kind::Array,
        Some(b'{') => Kind::Object,
        _ => Kind::Number,
    }
}

/// A string as JSON text.
pub fn raw_string(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    write_string(s, &mut out);
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// Append a string as JSON text. Most strings need no escapes and are copied as they are.
fn write_string(s: &str, out: &mut Vec<u8>) {
    // No early exit: the compiler turns this into a vector loop.
    let needs_escape = s.bytes().fold(false, |acc, b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if needs_escape {
        serde_json::to_writer(&mut *out, s).expect("strings serialize");
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Any serializable value as JSON text.
pub fn raw_json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("value serializes")
}

/// The most top-level keys an object parsed as an [`Event`] may have (an event, its `context`
/// and `integrations`, and the batch-level ones). Real events have a few dozen. Lookups are
/// linear, and batch-level `context` keys are looked up in every event's `context`, so the cap
/// keeps that work proportional to the body.
pub const MAX_KEYS: usize = 256;

impl<'a> Event<'a> {
    /// Parse a JSON object. Duplicate top-level keys are refused: which one would win is
    /// ambiguous downstream. So are more than [`MAX_KEYS`] keys.
    pub fn parse(json: &'a str) -> Result<Event<'a>, String> {
        let mut de = serde_json::Deserializer::from_str(json);
        let ev = de.deserialize_map(EventVisitor).map_err(|e| {
            let msg = e.to_string();
            if msg.starts_with("duplicate key") || msg.starts_with("object has more than") {
                msg
            } else {
                "event must be a JSON object".to_string()
            }
        })?;
        de.end()
            .map_err(|_| "event must be a JSON object".to_string())?;
        Ok(ev)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The field unless it is absent or `null`.
    pub fn present(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| kind(v) != Kind::Null)
    }

    /// The field as a string, if it is one.
    pub fn str(&self, key: &str) -> Option<Cow<'_, str>> {
        let raw = self.get(key)?;
        if kind(raw) != Kind::String {
            return None;
        }
        let s = raw;
        let inner = &s[1..s.len() - 1];
        if inner.contains('\\') {
            serde_json::from_str::<String>(s).ok().map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(inner))
        }
    }

    /// The first key and the last value as written in the input, when they are borrowed from
    /// it (a key with escapes is not).
    pub fn ends(&self) -> Option<(&'a str, &'a str)> {
        match (self.fields.first()?, self.fields.last()?) {
            ((Cow::Borrowed(key), _), (_, Cow::Borrowed(value))) => Some((key, value)),
            _ => None,
        }
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Set a field to JSON text (which the caller produced with serde_json).
    /// Set a field the collector names (keys are literals: no allocation for them).
    pub fn set(&mut self, key: &'static str, value: Cow<'a, str>) {
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.fields.push((Cow::Borrowed(key), value)),
        }
    }

    pub fn set_str(&mut self, key: &'static str, value: &str) {
        self.set(key, raw_string(value).into());
    }

    /// Set unless the field is present and not null.
    pub fn set_default(&mut self, key: &str, value: &str) {
        if self.present(key).is_some() {
            return;
        }
        let value = Cow::Owned(value.to_string());
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.fields.push((Cow::Owned(key.to_string()), value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Cow<'a, str>> {
        let i = self.fields.iter().position(|(k, _)| k == key)?;
        Some(self.fields.remove(i).1)
    }

    /// Serialize back to a JSON object.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(k, out);
            out.push(b':');
            out.extend_from_slice(v.as_bytes());
        }
        out.push(b'}');
    }

    pub fn to_json(&self) -> String {
        let size: usize = self.fields.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut out = Vec::with_capacity(size + 2);
        self.write(&mut out);
        String::from_utf8(out).expect("JSON is UTF-8")
    }
}

/// An object read as an [`Event`] inside a larger document (the fast path of a batch): any
/// problem, duplicate keys included, fails the whole parse.
impl<'de> de::Deserialize<'de> for Event<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

/// A key borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event<'de>, A::Error> {
        // No guessed capacity: a batch holds all its events at once, and 170 000 empty
        // objects must not cost 170 000 preallocated field lists.
        let mut fields: Vec<(Cow<'de, str>, Cow<'de, str>)> =
            Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            let v: &'de RawValue = map.next_value()?;
            if fields.iter().any(|(existing, _)| *existing == k) {
                return Err(de::Error::custom(format!("duplicate key `{k}`")));
            }
            if fields.len() == MAX_KEYS {
                return Err(de::Error::custom(format!(
                    "object has more than {MAX_KEYS} top-level keys"
                )));
            }
            fields.push((k, Cow::Borrowed(v.get())));
        }
        Ok(Event { fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "plain",
            "Mozilla/5.0 (X11)",
            "quote\"",
            "back\\slash",
            "tab\t",
            "\u{1}",
            "é ✓ 😀",
            "\u{7f}",
        ] {
            assert_eq!(raw_string(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn round_trip_keeps_values_verbatim() {
        let text = r#"{"type":"track","properties":{"a":[1,2.50,{"b":null}]},"esc\"key":"x\ny"}"#;
        let mut ev = Event::parse(text).unwrap();
        assert_eq!(
            ev.get("properties").unwrap(),
            r#"{"a":[1,2.50,{"b":null}]}"#
        );
        assert_eq!(ev.str("esc\"key").unwrap(), "x\ny");
        assert_eq!(ev.str("type").unwrap(), "track");
        assert!(ev.str("properties").is_none());
        ev.set_str("type", "page");
        ev.set_str("new", "v");
        ev.remove("properties");
        let v: serde_json::Value = serde_json::from_str(&ev.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"page","esc\"key":"x\ny","new":"v"})
        );
    }

    #[test]
    fn refuses_non_objects_bad_json_and_duplicate_keys() {
        assert_eq!(
            Event::parse("[1]").unwrap_err(),
            "event must be a JSON object"
        );
        assert_eq!(
            Event::parse("\"x\"").unwrap_err(),
            "event must be a JSON object"
        );
        assert!(Event::parse(r#"{"type":"a","type":"b"}"#)
            .unwrap_err()
            .contains("duplicate key `type`"));
    }

    #[test]
    fn refuses_too_many_keys() {
        let obj = |n: usize| {
            let fields: Vec<String> = (0..n).map(|i| format!(r#""k{i}":{i}"#)).collect();
            format!("{{{}}}", fields.join(","))
        };
        assert_eq!(
            Event::parse(&obj(MAX_KEYS)).unwrap().fields().count(),
            MAX_KEYS
        );
        let e = Event::parse(&obj(MAX_KEYS + 1)).unwrap_err();
        assert!(
            e.starts_with("object has more than 256 top-level keys"),
            "{e}"
        );
    }

    #[test]
    fn kinds() {
        let ev = Event::parse(r#"{"a":null,"b":true,"c":-1,"d":"s","e":[],"f":{}}"#).unwrap();
        let k: Vec<Kind> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|f| kind(ev.get(f).unwrap()))
            .collect();
        assert_eq!(
            k,
            [
                Kind::Null,
                Kind::Bool,
                Kind::Number,
                Kind::String,
                Kind::Array,
                Kind::Object
            ]
        );
        assert!(ev.present("a").is_none());
    }
}
