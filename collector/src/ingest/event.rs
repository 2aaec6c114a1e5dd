//! One event as a flat list of its top-level fields, with each value left as raw JSON text
//! borrowed from the request body. Validation and enrichment only look at a few top-level
//! fields, so properties, traits and the rest are checked for syntax and copied through
//! without being parsed into trees, which keeps ingest cheap. Values are JSON text: borrowed
//! from the body (checked by the parser) or written by us (valid by construction).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

#[derive(Debug, Default, Clone)]
pub struct Event<'a> {
    /// (key, value as JSON text). A borrowed key needs no escaping: the parser borrows only
    /// keys without escapes (and refuses control characters), and the others are literals.
    fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Object fields read into events of their own ([`Event::object`]).
    objects: Vec<Child<'a>>,
}

/// An object field read into an event of its own. Once it has been handed out for editing it
/// is written in place of the field's text, which keeps the key's position.
#[derive(Debug, Clone)]
struct Child<'a> {
    key: &'static str,
    event: Event<'a>,
    edited: bool,
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

/// Whether two keys are equal. Keys of one object often share a length (`timestamp` and
/// `messageId`, `userId` and `sentAt`) but rarely a first byte: checking both first skips
/// most calls to `memcmp` in lookups by key.
#[inline]
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

/// Any serializable value as JSON text.
pub fn raw_json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("value serializes")
}

/// The most top-level keys an object parsed as an [`Event`] may have (an event, its `context`
/// and `integrations`, and the batch-level ones). Real events have a few dozen. Looking up a
/// key scans the fields: the cap bounds that work per object.
pub const MAX_KEYS: usize = 256;

impl<'a> Event<'a> {
    /// Parse a JSON object. Duplicate top-level keys are refused: which one would win is
    /// ambiguous downstream. So are more than [`MAX_KEYS`] keys.
    pub fn parse(json: &'a str) -> Result<Event<'a>, String> {
        let mut de = serde_json::Deserializer::from_str(json);
        let ev = de
            .deserialize_map(EventVisitor { nest: false })
            .map_err(|e| {
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
            .find(|(k, _)| same_key(k, key))
            .map(|(_, v)| v.as_ref())
    }

    /// The field's text as stored, borrowed from the input when it was read from it.
    pub fn get_cow(&self, key: &str) -> Option<Cow<'a, str>> {
        self.fields
            .iter()
            .find(|(k, _)| same_key(k, key))
            .map(|(_, v)| v.clone())
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

    /// Set a field the collector names (keys are literals: no allocation for them) to JSON
    /// text.
    pub fn set(&mut self, key: &'static str, value: Cow<'a, str>) {
        if !self.objects.is_empty() {
            self.objects.retain(|c| c.key != key);
        }
        match self.fields.iter_mut().find(|(k, _)| same_key(k, key)) {
            Some((_, v)) => *v = value,
            None => self.fields.push((Cow::Borrowed(key), value)),
        }
    }

    pub fn set_str(&mut self, key: &'static str, value: &str) {
        self.set(key, raw_string(value).into());
    }

    /// Take the fields of `defaults` this object lacks or holds as `null` (batch-level
    /// `context` and `integrations` filling in each event's). Either may hold up to
    /// [`MAX_KEYS`] keys: past a few, the defaults are found by hash, so the work stays linear
    /// in the keys instead of their product.
    pub fn fill_missing(&mut self, defaults: &Event<'a>) {
        let index: Option<HashMap<&str, usize>> = (self.fields.len() * defaults.fields.len() > 64)
            .then(|| {
                let keys = defaults.fields.iter().map(|(k, _)| k.as_ref());
                keys.enumerate().map(|(i, k)| (k, i)).collect()
            });
        let default_of = |key: &str| match &index {
            Some(index) => index.get(key).copied(),
            None => defaults.fields.iter().position(|(k, _)| same_key(k, key)),
        };
        // Parsed objects have unique keys, and `set` keeps them unique: each key of `defaults`
        // matches at most one field. A null field was never read as an object.
        let mut found = vec![false; defaults.fields.len()];
        for (k, v) in &mut self.fields {
            if let Some(i) = default_of(k) {
                if kind(v) == Kind::Null {
                    *v = defaults.fields[i].1.clone();
                }
                found[i] = true;
            }
        }
        let missing = defaults.fields.iter().zip(found).filter(|(_, f)| !f);
        self.fields.extend(missing.map(|(entry, _)| entry.clone()));
    }

    pub fn remove(&mut self, key: &str) -> Option<Cow<'a, str>> {
        let i = self.fields.iter().position(|(k, _)| same_key(k, key))?;
        if !self.objects.is_empty() {
            self.objects.retain(|c| c.key != key);
        }
        Some(self.fields.remove(i).1)
    }

    /// An object field as an event of its own, to edit in place; it is read on first use. A
    /// field that is absent or not an object becomes an empty object.
    pub fn object(&mut self, key: &'static str) -> Result<&mut Event<'a>, String> {
        let i = match self.objects.iter().position(|c| c.key == key) {
            Some(i) => i,
            None => {
                let child = match self.get_cow(key).filter(|v| kind(v) == Kind::Object) {
                    Some(Cow::Borrowed(text)) => Event::parse(text),
                    Some(Cow::Owned(text)) => Event::parse(&text).map(Event::into_owned),
                    None => {
                        self.set(key, Cow::Borrowed("{}"));
                        Ok(Event::default())
                    }
                }
                .map_err(|e| format!("`{key}`: {e}"))?;
                self.objects.push(Child {
                    key,
                    event: child,
                    edited: false,
                });
                self.objects.len() - 1
            }
        };
        let child = &mut self.objects[i];
        child.edited = true;
        Ok(&mut child.event)
    }

    /// The object field `key` if it was read into an event of its own.
    pub fn child(&self, key: &str) -> Option<&Event<'a>> {
        self.objects.iter().find(|c| c.key == key).map(|c| &c.event)
    }

    /// Set the text of a field that was read into an object of its own (the text it was read
    /// from), keeping the object.
    pub fn set_text_of_child(&mut self, key: &str, text: &'a str) {
        if let Some((_, v)) = self.fields.iter_mut().find(|(k, _)| same_key(k, key)) {
            *v = Cow::Borrowed(text);
        }
    }

    /// The same event, owning its text.
    pub fn into_owned(self) -> Event<'static> {
        let own = |c: Cow<'a, str>| Cow::Owned(c.into_owned());
        Event {
            fields: self
                .fields
                .into_iter()
                .map(|(k, v)| (own(k), own(v)))
                .collect(),
            objects: self
                .objects
                .into_iter()
                .map(|c| Child {
                    event: c.event.into_owned(),
                    ..c
                })
                .collect(),
        }
    }

    /// Serialize back to a JSON object.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match k {
                Cow::Borrowed(k) => {
                    out.push(b'"');
                    out.extend_from_slice(k.as_bytes());
                    out.push(b'"');
                }
                Cow::Owned(k) => write_string(k, out),
            }
            out.push(b':');
            match self.objects.iter().find(|c| c.edited && c.key == k) {
                Some(child) => child.event.write(out),
                None => out.extend_from_slice(v.as_bytes()),
            }
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
/// problem, duplicate keys included, fails the whole parse. Its `context`, which enrichment
/// edits, is read in the same pass as an object of its own ([`Event::object`]); its field
/// holds `{}` until the caller, who has the document, sets the text ([`Event::child`]).
impl<'de> de::Deserialize<'de> for Event<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor { nest: true })
    }
}

/// A non-empty object read as an [`Event`], or `null`; anything else is an error.
struct NestedObject;

impl<'de> de::DeserializeSeed<'de> for NestedObject {
    type Value = Option<Event<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NestedObject {
    type Value = Option<Event<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-empty JSON object or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let ev = EventVisitor { nest: false }.visit_map(map)?;
        if ev.fields.is_empty() {
            return Err(de::Error::custom("empty object"));
        }
        Ok(Some(ev))
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

/// Up to this many keys, each new key is compared with those before it; an object with more
/// is checked for duplicates once, sorted: n log n, not n squared.
const SCAN_FOR_DUPLICATES: usize = 32;

fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format!("duplicate key `{key}`"))
}

struct EventVisitor {
    /// Read `context` as an object of its own.
    nest: bool,
}

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
        let mut objects = Vec::new();
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            let v = if self.nest && k == "context" {
                match map.next_value_seed(NestedObject)? {
                    Some(child) => {
                        objects.push(Child {
                            key: "context",
                            event: child,
                            edited: false,
                        });
                        "{}"
                    }
                    None => "null",
                }
            } else {
                map.next_value::<&'de RawValue>()?.get()
            };
            if fields.len() < SCAN_FOR_DUPLICATES
                && fields.iter().any(|(existing, _)| same_key(existing, &k))
            {
                return Err(duplicate(&k));
            }
            if fields.len() == MAX_KEYS {
                return Err(de::Error::custom(format!(
                    "object has more than {MAX_KEYS} top-level keys"
                )));
            }
            fields.push((k, Cow::Borrowed(v)));
        }
        if fields.len() > SCAN_FOR_DUPLICATES {
            let mut keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_ref()).collect();
            keys.sort_unstable();
            if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
                return Err(duplicate(pair[0]));
            }
        }
        Ok(Event { fields, objects })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_only_when_equal() {
        let ev = Event::parse(r#"{"":0,"timestamp":1,"messageId":2,"type":3,"tyqe":4}"#).unwrap();
        for (key, want) in [
            ("", Some("0")),
            ("timestamp", Some("1")),
            ("messageId", Some("2")),
            ("type", Some("3")),
            ("tyqe", Some("4")),
            ("typ", None),
            ("types", None),
            ("tzpe", None),
            ("Type", None),
        ] {
            assert_eq!(ev.get(key), want, "{key:?}");
        }
        assert!(Event::parse(r#"{"type":1,"tyqe":2,"type":3}"#)
            .unwrap_err()
            .contains("duplicate key `type`"));
    }

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
        // Past the keys compared one by one: found in the sorted check.
        let mut wide: Vec<String> = (0..100).map(|i| format!(r#""k{i}":{i}"#)).collect();
        wide.push(r#""k7":0"#.into());
        assert!(Event::parse(&format!("{{{}}}", wide.join(",")))
            .unwrap_err()
            .contains("duplicate key `k7`"));
        wide.pop();
        assert!(Event::parse(&format!("{{{}}}", wide.join(","))).is_ok());
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
    fn fill_missing_takes_absent_and_null_fields_by_scan_and_by_hash() {
        let obj = |keys: &[usize], value: &str| {
            let fields: Vec<String> = keys.iter().map(|i| format!(r#""k{i}":{value}"#)).collect();
            format!("{{{}}}", fields.join(","))
        };
        // Own fields k0..n hold 1, k1 null; defaults k1 and k{d}.. hold 2. Small objects are
        // scanned; 200 x 201 keys go through the hash index.
        for (n, d, m) in [(3, 2, 4), (200, 100, 200)] {
            let own: Vec<usize> = (0..n).collect();
            let defaults: Vec<usize> = std::iter::once(1).chain(d..d + m).collect();
            let (own_text, defaults_text) = (obj(&own, "1"), obj(&defaults, "2"));
            let mut ev = Event::parse(&own_text).unwrap();
            ev.set("k1", Cow::Borrowed("null"));
            ev.fill_missing(&Event::parse(&defaults_text).unwrap());
            let keys: Vec<&str> = ev.fields().map(|(k, _)| k).collect();
            let expected: Vec<String> = (0..d + m).map(|i| format!("k{i}")).collect();
            assert_eq!(
                keys, expected,
                "own keys in place, then the missing ones in order"
            );
            for (i, (_, v)) in ev.fields().enumerate() {
                let want = if i == 1 || i >= n { "2" } else { "1" };
                assert_eq!(v, want, "k{i}");
            }
        }
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
