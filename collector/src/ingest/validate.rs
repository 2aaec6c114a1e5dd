//! The Segment spec's rules for one event. A failure is a reason string that names the field;
//! the event is dead-lettered and the rest of the batch goes on.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, SecondsFormat, Utc};

use super::event::{kind, raw_string, Event, Kind};
use super::message::MessageType;

/// Why a date-time was refused: not one at all, or outside the years RFC 3339 can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadTime {
    NotADate,
    OutOfRange,
}

impl BadTime {
    /// The reason for a field holding this value (`raw` is its JSON text or the string).
    pub fn reason(self, field: &str, raw: &str) -> String {
        match self {
            BadTime::NotADate => format!("`{field}` is not an ISO-8601 date-time: {raw}"),
            BadTime::OutOfRange => {
                format!("`{field}` {raw} is outside years 0001-9999 (UTC)")
            }
        }
    }
}

/// The first and last instants every reader of RFC 3339 takes: years 0001 to 9999, in UTC.
pub fn in_calendar(t: DateTime<Utc>) -> bool {
    (1..=9999).contains(&t.year())
}

/// Read an ISO-8601 date-time as real SDKs send it: RFC 3339 with `Z` or an offset, any
/// fraction (milli- or microseconds), an offset without a colon (`+0000`), or no offset (UTC).
/// Returns the instant with the client's offset, and whether the text is RFC 3339 as it stands.
/// Instants outside years 0001-9999 (in UTC or at their offset) are refused: RFC 3339 cannot
/// write them.
pub fn read_time(s: &str) -> Result<(DateTime<FixedOffset>, bool), BadTime> {
    let (t, strict) = match DateTime::parse_from_rfc3339(s) {
        Ok(t) => (t, true),
        Err(_) => {
            let t = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
                .or_else(|_| {
                    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                        .map(|t| t.and_utc().fixed_offset())
                })
                .map_err(|_| BadTime::NotADate)?;
            (t, false)
        }
    };
    if in_calendar(t.with_timezone(&Utc)) && (1..=9999).contains(&t.year()) {
        Ok((t, strict))
    } else {
        Err(BadTime::OutOfRange)
    }
}

/// [`read_time`] as an instant in UTC.
pub fn read_timestamp(s: &str) -> Result<DateTime<Utc>, BadTime> {
    read_time(s).map(|(t, _)| t.with_timezone(&Utc))
}

/// A valid date-time as it is stored: the text when it is RFC 3339 already, else the same
/// instant written in RFC 3339 at the client's offset (`Z` for UTC).
pub fn rfc3339(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// [`read_timestamp`], when only a valid instant matters.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    read_timestamp(s).ok()
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
            let read = ev
                .str(key)
                .ok_or(BadTime::NotADate)
                .and_then(|s| read_timestamp(&s));
            if let Err(bad) = read {
                return Err(bad.reason(key, v));
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
        // The calendar RFC 3339 can write, in UTC and at the client's offset.
        assert!(t("0001-01-01T00:00:00Z").is_some());
        assert!(t("9999-12-31T23:59:59.999Z").is_some());
        assert_eq!(
            read_timestamp("0001-01-01T00:30:00+01:00"),
            Err(BadTime::OutOfRange)
        );
        assert_eq!(
            read_timestamp("9999-12-31T23:00:00-02:00"),
            Err(BadTime::OutOfRange)
        );
        assert_eq!(
            read_timestamp("+262000-01-01T00:00:00"),
            Err(BadTime::OutOfRange)
        );
        assert_eq!(
            read_timestamp("-0001-01-01T00:00:00"),
            Err(BadTime::OutOfRange)
        );
        assert_eq!(
            read_timestamp("0000-01-01T00:00:00Z"),
            Err(BadTime::OutOfRange)
        );
        // What is stored: RFC 3339 text as it is, other forms rewritten at their offset.
        let stored = |s| {
            let (t, strict) = read_time(s).unwrap();
            (strict, rfc3339(t))
        };
        assert_eq!(
            stored("2026-11-28T15:09:38.1+0200"),
            (false, "2026-11-28T15:09:38.100+02:00".into())
        );
        assert_eq!(
            stored("2026-11-28T15:09:38"),
            (false, "2026-11-28T15:09:38Z".into())
        );
        assert!(stored("2026-11-28T15:09:38.123456-05:00").0);
    }
}
