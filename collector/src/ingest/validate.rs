//! The Segment spec's rules for one event. A failure is a reason string that names the field;
//! the event is dead-lettered and the rest of the batch goes on.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::event::{kind, raw_string, Event, Kind};
use super::message::MessageType;

/// Parse an ISO-8601 date-time as real SDKs send it: RFC 3339 with `Z` or an offset, any
/// fraction (milli- or microseconds), an offset without a colon (`+0000`), or no offset (UTC).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// An id field (userId, anonymousId, groupId, previousId, messageId): a non-empty string, or
/// a number, which is turned into a string as Segment does.
fn id_field(ev: &mut Event, key: &'static str) -> Result<bool, String> {
    let Some(raw) = ev.get(key) else {
        return Ok(false);
    };
    match kind(raw) {
        Kind::Null => Ok(false),
        Kind::String => Ok(raw.len() > 2),
        Kind::Number => {
            let s = raw_string(raw);
            ev.set(key, s.into());
            Ok(true)
        }
        _ => Err(format!("`{key}` must be a string")),
    }
}

/// Check one event (and normalise ids). `route` is the type implied by a single-message
/// endpoint such as `/v1/track`, which wins over the body.
pub fn validate(ev: &mut Event, route: Option<MessageType>) -> Result<MessageType, String> {
    let kind_of = match route {
        Some(t) => {
            ev.set_str("type", t.as_str());
            t
        }
        None => match ev.present("type").map(kind) {
            None => return Err("missing `type`".into()),
            Some(Kind::String) => {
                let s = ev.str("type").unwrap_or_default();
                MessageType::parse(&s)
                    .ok_or_else(|| format!("unknown type {s:?}; expected one of track, page, identify, group, alias, screen"))?
            }
            Some(_) => return Err("`type` must be a string".into()),
        },
    };
    let has_user = id_field(ev, "userId")?;
    let has_anon = id_field(ev, "anonymousId")?;
    if !has_user && !has_anon {
        return Err(format!(
            "{} needs `userId` or `anonymousId`",
            kind_of.as_str()
        ));
    }
    id_field(ev, "messageId")?;
    for key in ["properties", "traits", "context", "integrations"] {
        if ev.present(key).is_some_and(|v| kind(v) != Kind::Object) {
            return Err(format!("`{key}` must be an object"));
        }
    }
    for key in ["timestamp", "sentAt", "originalTimestamp"] {
        if let Some(v) = ev.present(key) {
            if ev.str(key).and_then(|s| parse_timestamp(&s)).is_none() {
                return Err(format!("`{key}` is not an ISO-8601 date-time: {v}"));
            }
        }
    }
    match kind_of {
        MessageType::Track => {
            if ev.str("event").is_none_or(|s| s.trim().is_empty()) {
                return Err("track needs a non-empty string `event`".into());
            }
        }
        MessageType::Page | MessageType::Screen => {
            if ev.present("name").is_some_and(|v| kind(v) != Kind::String) {
                return Err("`name` must be a string".into());
            }
        }
        MessageType::Group => {
            if !id_field(ev, "groupId")? {
                return Err("group needs `groupId`".into());
            }
        }
        MessageType::Alias => {
            if !id_field(ev, "previousId")? {
                return Err("alias needs `previousId`".into());
            }
            if !has_user {
                return Err("alias needs `userId`".into());
            }
        }
        MessageType::Identify => {}
    }
    Ok(kind_of)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn check(v: Value) -> Result<MessageType, String> {
        let text = v.to_string();
        let mut ev = Event::parse(&text).unwrap();
        validate(&mut ev, None)
    }

    #[test]
    fn accepts_what_real_sdks_send() {
        assert_eq!(
            check(
                json!({"type":"track","event":"Order Completed","userId":"u1","anonymousId":null,
                "timestamp":"2026-11-28T15:09:38.123456+02:00","integrations":{"All":true},"extra":[1]})
            ),
            Ok(MessageType::Track)
        );
        assert_eq!(
            check(json!({"type":"page","anonymousId":"a","name":null})),
            Ok(MessageType::Page)
        );
        assert_eq!(
            check(json!({"type":"identify","userId":42,"traits":{"email":"x@y"}})),
            Ok(MessageType::Identify)
        );
        assert_eq!(
            check(json!({"type":"group","userId":"u","groupId":7})),
            Ok(MessageType::Group)
        );
        assert_eq!(
            check(json!({"type":"alias","userId":"u","previousId":"a"})),
            Ok(MessageType::Alias)
        );
        assert_eq!(
            check(json!({"type":"screen","userId":"u","name":"Home"})),
            Ok(MessageType::Screen)
        );
    }

    #[test]
    fn rejects_with_a_reason_naming_the_field() {
        let e = |v| check(v).unwrap_err();
        assert_eq!(e(json!({"event":"x","userId":"u"})), "missing `type`");
        assert!(e(json!({"type":"click","userId":"u"})).contains("unknown type \"click\""));
        assert_eq!(
            e(json!({"type":"track","event":"x"})),
            "track needs `userId` or `anonymousId`"
        );
        assert_eq!(
            e(json!({"type":"track","event":"x","userId":""})),
            "track needs `userId` or `anonymousId`"
        );
        assert_eq!(
            e(json!({"type":"track","userId":"u"})),
            "track needs a non-empty string `event`"
        );
        assert!(
            e(json!({"type":"track","event":"x","userId":"u","timestamp":"yesterday"}))
                .contains("`timestamp` is not an ISO-8601")
        );
        assert_eq!(
            e(json!({"type":"track","event":"x","userId":{"a":1}})),
            "`userId` must be a string"
        );
        assert_eq!(
            e(json!({"type":"track","event":"x","userId":"u","properties":[1]})),
            "`properties` must be an object"
        );
        assert_eq!(
            e(json!({"type":"group","userId":"u"})),
            "group needs `groupId`"
        );
        assert_eq!(
            e(json!({"type":"alias","anonymousId":"a","previousId":"p"})),
            "alias needs `userId`"
        );
    }

    #[test]
    fn route_type_wins_and_numbers_become_strings() {
        let text = json!({"type":"page","event":"x","userId":5}).to_string();
        let mut ev = Event::parse(&text).unwrap();
        assert_eq!(
            validate(&mut ev, Some(MessageType::Track)),
            Ok(MessageType::Track)
        );
        assert_eq!(ev.str("type").unwrap(), "track");
        assert_eq!(ev.str("userId").unwrap(), "5");
    }

    #[test]
    fn timestamp_forms() {
        let t =
            |s| parse_timestamp(s).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        assert_eq!(
            t("2026-11-28T15:09:38Z").unwrap(),
            "2026-11-28T15:09:38.000000Z"
        );
        assert_eq!(
            t("2026-11-28T17:09:38.123456+02:00").unwrap(),
            "2026-11-28T15:09:38.123456Z"
        );
        assert_eq!(
            t("2026-11-28T15:09:38.1+0000").unwrap(),
            "2026-11-28T15:09:38.100000Z"
        );
        assert_eq!(
            t("2026-11-28T15:09:38.5").unwrap(),
            "2026-11-28T15:09:38.500000Z"
        );
        assert!(t("2026-11-28").is_none());
        assert!(t("not a date").is_none());
    }
}
