//! The parts of a message a schema can see. Most plan schemas name a few keys with
//! `properties` and `required` and leave the rest of the message open: the keys they do not
//! name cannot change the verdict, so the check reads only the named ones into a
//! `serde_json::Value` and skips the rest of the text (building that tree is most of what a
//! check costs). A schema node is read this way only when every keyword it has is one whose
//! verdict depends on nothing but the named keys; anything else (`additionalProperties`,
//! `$ref`, `format`, combinators, ...) reads its whole value. The projection decides only
//! valid or not: violations are always listed from the whole message.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Deepest nesting of `properties` read by parts; below it values are read whole.
const MAX_DEPTH: usize = 32;

/// What a check needs of a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// The value as it is.
    Whole,
    /// Only that it is there (a key only `required`, or an annotation-only schema).
    Present,
    /// For an object, only these keys (sorted by name), each with what is needed of it; a
    /// value that is not an object is read whole.
    Keys(Vec<(String, Shape)>),
}

/// Keywords that say nothing about an instance, or (`type: "object"`, `properties`,
/// `required`) say something that depends only on the keys they name.
fn harmless(keyword: &str) -> bool {
    keyword.starts_with("x-")
        || matches!(
            keyword,
            "properties"
                | "required"
                | "type"
                | "title"
                | "description"
                | "$comment"
                | "examples"
                | "default"
                | "deprecated"
                | "readOnly"
                | "writeOnly"
                | "$schema"
                | "$id"
                | "$anchor"
                | "$defs"
                | "definitions"
        )
}

impl Shape {
    /// What a schema needs of the value it checks.
    pub fn of(schema: &Value) -> Shape {
        Shape::at(schema, 0)
    }

    fn at(schema: &Value, depth: usize) -> Shape {
        let obj = match schema {
            Value::Bool(true) => return Shape::Present,
            Value::Object(obj) => obj,
            _ => return Shape::Whole,
        };
        let simple = depth < MAX_DEPTH
            && obj.keys().all(|k| harmless(k))
            && obj.get("type").is_none_or(|t| t == "object");
        if !simple {
            return Shape::Whole;
        }
        let props = match obj.get("properties") {
            None => None,
            Some(Value::Object(p)) => Some(p),
            Some(_) => return Shape::Whole,
        };
        let required = match obj.get("required") {
            None => Vec::new(),
            Some(Value::Array(r)) => {
                match r.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                    Some(r) => r,
                    None => return Shape::Whole,
                }
            }
            Some(_) => return Shape::Whole,
        };
        if props.is_none() && required.is_empty() && !obj.contains_key("type") {
            return Shape::Present;
        }
        let mut keys: Vec<(String, Shape)> = props
            .into_iter()
            .flatten()
            .map(|(k, s)| (k.clone(), Shape::at(s, depth + 1)))
            .collect();
        for r in required {
            if !keys.iter().any(|(k, _)| k == r) {
                keys.push((r.to_string(), Shape::Present));
            }
        }
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        Shape::Keys(keys)
    }

    /// The parts of an object given as its fields (key, value as JSON text) this shape needs,
    /// as a value to check: the message's own fields are already split, so only the values
    /// needed are read.
    pub fn project_fields(
        &self,
        fields: &[(Cow<str>, Cow<str>)],
    ) -> Result<Value, serde_json::Error> {
        let mut out = Map::new();
        for (k, text) in fields {
            let value = match self {
                Shape::Present => return Ok(Value::Null),
                Shape::Whole => serde_json::from_str(text)?,
                Shape::Keys(keys) => match keys.binary_search_by(|(n, _)| n.as_str().cmp(k)) {
                    Ok(i) => keys[i].1.project(text)?,
                    Err(_) => continue,
                },
            };
            out.insert(k.to_string(), value);
        }
        Ok(Value::Object(out))
    }

    /// The parts of the JSON `text` this shape needs, as a value to check.
    pub fn project(&self, text: &str) -> Result<Value, serde_json::Error> {
        match self {
            Shape::Whole => serde_json::from_str(text),
            Shape::Present => Ok(Value::Null),
            Shape::Keys(keys) => {
                let mut de = serde_json::Deserializer::from_str(text);
                let value = Part(keys).deserialize(&mut de)?;
                de.end()?;
                Ok(value)
            }
        }
    }
}

/// Reads an object keeping only the listed keys, each projected by its own shape.
struct Pick<'s>(&'s [(String, Shape)]);

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(found) = map.next_key_seed(Key(self.0))? {
            let Some(i) = found else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let (name, shape) = &self.0[i];
            let value = match shape {
                Shape::Whole => map.next_value::<Value>()?,
                Shape::Present => {
                    map.next_value::<IgnoredAny>()?;
                    Value::Null
                }
                Shape::Keys(keys) => map.next_value_seed(Part(keys))?,
            };
            out.insert(name.clone(), value);
        }
        Ok(out)
    }
}

/// A value read by parts in one pass: an object by [`Pick`], anything else whole.
struct Part<'s>(&'s [(String, Shape)]);

impl<'de> DeserializeSeed<'de> for Part<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Part<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        Pick(self.0).visit_map(map).map(Value::Object)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        Value::deserialize(de::value::SeqAccessDeserializer::new(seq))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A key of the object being read: its index in the wanted list, or `None` to skip it.
struct Key<'s>(&'s [(String, Shape)]);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, k: &str) -> Result<Self::Value, E> {
        Ok(self
            .0
            .binary_search_by(|(name, _)| name.as_str().cmp(k))
            .ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(list: &[(&str, Shape)]) -> Shape {
        Shape::Keys(
            list.iter()
                .map(|(k, s)| (k.to_string(), s.clone()))
                .collect(),
        )
    }

    #[test]
    fn named_keys_are_read_and_the_rest_skipped() {
        let schema = json!({
            "x-type": "track", "required": ["properties", "userId"],
            "properties": {
                "properties": {"type": "object", "required": ["id"],
                               "properties": {"id": {"type": "string"}, "n": {"description": "any"}}},
                "context": {"additionalProperties": false}
            }
        });
        let shape = Shape::of(&schema);
        assert_eq!(
            shape,
            keys(&[
                ("context", Shape::Whole),
                (
                    "properties",
                    keys(&[("id", Shape::Whole), ("n", Shape::Present)])
                ),
                ("userId", Shape::Present),
            ])
        );
        let text = r#"{"type":"track","userId":"u","properties":{"id":"a","n":[1,2],"big":{"x":1}},
                       "context":{"a":1},"anonymousId":"x","k\u0065y":"escaped"}"#;
        assert_eq!(
            shape.project(text).unwrap(),
            json!({"userId": null, "properties": {"id": "a", "n": null}, "context": {"a": 1}})
        );
        // Not an object where one is read by parts: read whole, so `type` sees it.
        assert_eq!(
            shape.project(r#"{"properties":"text"}"#).unwrap(),
            json!({"properties": "text"})
        );
    }

    #[test]
    fn keywords_that_see_more_than_named_keys_read_the_whole_value() {
        for schema in [
            json!({"properties": {"a": {}}, "additionalProperties": false}),
            json!({"properties": {"a": {}}, "minProperties": 2}),
            json!({"$ref": "defs.json"}),
            json!({"type": "string"}),
            json!({"type": ["object", "null"]}),
            json!({"properties": {"a": {}}, "unevaluatedProperties": false}),
            json!({"allOf": [{"required": ["a"]}]}),
            json!({"format": "email"}),
            json!({"custom": 1}),
            json!(false),
        ] {
            assert_eq!(Shape::of(&schema), Shape::Whole, "{schema}");
        }
        assert_eq!(Shape::of(&json!(true)), Shape::Present);
        assert_eq!(
            Shape::of(&json!({"description": "anything"})),
            Shape::Present
        );
    }

    #[test]
    fn deep_schemas_stop_reading_by_parts() {
        let mut schema = json!({"type": "string"});
        for _ in 0..100 {
            schema = json!({"properties": {"a": schema}});
        }
        let mut shape = &Shape::of(&schema);
        let mut depth = 0;
        while let Shape::Keys(k) = shape {
            shape = &k[0].1;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
    }

    /// The projection's verdict is the whole message's, for valid and invalid messages alike.
    #[test]
    fn the_projection_judges_as_the_whole_message() {
        let schemas = [
            json!({"required": ["properties"], "properties": {
                "userId": {"type": "string", "minLength": 1},
                "properties": {"type": "object", "required": ["price"], "properties": {
                    "price": {"type": "number", "minimum": 0},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "meta": {"properties": {"deep": {"required": ["x"]}}}}},
                "context": {"type": "object", "properties": {"page": {"type": "object", "required": ["url"],
                    "properties": {"url": {"type": "string", "format": "uri"}}}}}}}),
            json!({"properties": {"traits": {"additionalProperties": {"type": "string"}}}}),
            json!({"type": "object", "required": ["a", "b"]}),
            json!({"properties": {"a": true, "b": false}}),
        ];
        let messages = [
            json!({"userId": "u", "properties": {"price": 1}, "extra": [1, {"a": 2}]}),
            json!({"userId": "", "properties": {"price": 1}}),
            json!({"userId": 5, "properties": {"price": "12,99"}}),
            json!({"properties": {"price": 1, "tags": ["a", 1]}}),
            json!({"properties": {"price": 1, "meta": {"deep": {}}}}),
            json!({"properties": {"price": 1, "meta": {"deep": {"x": null}}}}),
            json!({"properties": {"price": 1, "meta": "text"}}),
            json!({"properties": "text"}),
            json!({"properties": {}}),
            json!({"properties": {"price": 1}, "context": {"page": {"url": "not a uri"}}}),
            json!({"properties": {"price": 1}, "context": {"page": {"url": "https://a.example/"}}}),
            json!({"properties": {"price": 1}, "context": {"page": {}}}),
            json!({"properties": {"price": 1}, "context": []}),
            json!({"traits": {"a": "x"}, "a": 1, "b": null}),
            json!({"traits": {"a": 1}, "a": 1}),
            json!({"b": 1}),
        ];
        for schema in &schemas {
            let validator = jsonschema::validator_for(schema).unwrap();
            let shape = Shape::of(schema);
            for message in &messages {
                let projected = shape.project(&message.to_string()).unwrap();
                let fields: Vec<_> = message
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), Cow::Owned(v.to_string())))
                    .collect();
                assert_eq!(shape.project_fields(&fields).unwrap(), projected);
                assert_eq!(&Shape::Whole.project_fields(&fields).unwrap(), message);
                assert_eq!(
                    validator.is_valid(&projected),
                    validator.is_valid(message),
                    "{schema} on {message}: projected to {projected}"
                );
            }
        }
    }
}
