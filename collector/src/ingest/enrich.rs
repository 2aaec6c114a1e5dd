//! Adds what the collector knows and the client does not, the way Segment does:
//!
//! - `receivedAt`: when the collector received the request.
//! - `sentAt`: the client's send time (batch-level, or the message's own).
//! - `originalTimestamp`: the client's `timestamp`, untouched.
//! - `timestamp`: corrected for client clock skew: `receivedAt - (sentAt - originalTimestamp)`;
//!   `receivedAt` when the client sent no timestamp.
//! - `messageId`: a UUID v4 when the client sent none.
//! - `context.ip`: the client IP (the message's own, else the connection's), anonymized by default.
//! - `context.userAgent`: the User-Agent header when the message has none.
//! - `context.browser`, `context.os`, `context.device.type`, `context.bot`: parsed from it.
//! - `writeKey`: the key the request was sent with.
//! - batch-level `context` and `integrations` fill keys the message lacks.

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::ip;
use super::useragent;
use super::validate::{parse_timestamp, Event};
use crate::config::IpMode;

/// Request-wide facts applied to each event.
#[derive(Debug)]
pub struct RequestInfo<'a> {
    pub received_at: DateTime<Utc>,
    pub client_ip: Option<IpAddr>,
    pub ip_mode: IpMode,
    pub user_agent: Option<&'a str>,
    pub write_key: Option<&'a str>,
    pub sent_at: Option<DateTime<Utc>>,
    pub context: Option<&'a Map<String, Value>>,
    pub integrations: Option<&'a Map<String, Value>>,
}

pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn fill_missing(target: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    for (k, v) in defaults {
        if target.get(k).is_none_or(Value::is_null) {
            target.insert(k.clone(), v.clone());
        }
    }
}

fn object_at<'m>(m: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    if !m.get(key).is_some_and(Value::is_object) {
        m.insert(key.to_string(), Value::Object(Map::new()));
    }
    m.get_mut(key).and_then(Value::as_object_mut).unwrap()
}

/// Enrich one validated event in place.
pub fn enrich(ev: &mut Event, req: &RequestInfo) {
    let received_at = req.received_at;
    ev.insert("receivedAt".into(), Value::String(format_time(received_at)));

    let sent_at = ev
        .get("sentAt")
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
        .or(req.sent_at);
    if let Some(s) = sent_at {
        ev.insert("sentAt".into(), Value::String(format_time(s)));
    }
    let client_ts = ev
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(parse_timestamp);
    let timestamp = match (client_ts, sent_at) {
        (Some(ts), Some(sent)) => received_at - (sent - ts),
        (Some(ts), None) => ts,
        (None, _) => received_at,
    };
    if let Some(Value::String(original)) = ev.get("timestamp") {
        if ev.get("originalTimestamp").is_none_or(Value::is_null) {
            let original = original.clone();
            ev.insert("originalTimestamp".into(), Value::String(original));
        }
    }
    ev.insert("timestamp".into(), Value::String(format_time(timestamp)));

    if ev.get("messageId").is_none_or(|v| !v.is_string()) {
        ev.insert(
            "messageId".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
    }
    if let Some(defaults) = req.integrations {
        fill_missing(object_at(ev, "integrations"), defaults);
    }
    if let Some(key) = req.write_key {
        ev.insert("writeKey".into(), Value::String(key.to_string()));
    }

    let ctx = object_at(ev, "context");
    if let Some(defaults) = req.context {
        fill_missing(ctx, defaults);
    }
    let ip = ctx
        .get("ip")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<IpAddr>().ok())
        .or(req.client_ip);
    match ip.and_then(|ip| ip::apply(req.ip_mode, ip)) {
        Some(ip) => ctx.insert("ip".into(), Value::String(ip.to_string())),
        None => ctx.remove("ip"),
    };
    if ctx.get("userAgent").is_none_or(|v| !v.is_string()) {
        if let Some(ua) = req.user_agent {
            ctx.insert("userAgent".into(), Value::String(ua.to_string()));
        }
    }
    if let Some(ua) = ctx.get("userAgent").and_then(Value::as_str) {
        let info = useragent::parse(ua);
        if let Some((name, version)) = &info.browser {
            ctx.insert("browser".into(), json!({"name": name, "version": version}));
        }
        if let Some((name, version)) = &info.os {
            if ctx.get("os").is_none_or(Value::is_null) {
                ctx.insert("os".into(), json!({"name": name, "version": version}));
            }
        }
        let device = object_at(ctx, "device");
        if device.get("type").is_none_or(Value::is_null) {
            device.insert("type".into(), Value::String(info.device_type.into()));
        }
        ctx.insert("bot".into(), Value::Bool(info.bot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn req<'a>() -> RequestInfo<'a> {
        RequestInfo {
            received_at: Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 10).unwrap(),
            client_ip: Some("203.0.113.77".parse().unwrap()),
            ip_mode: IpMode::Anonymize,
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"),
            write_key: Some("wk"),
            sent_at: None,
            context: None,
            integrations: None,
        }
    }

    fn ev(v: Value) -> Event {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn corrects_clock_skew() {
        // The client's clock is 1 hour fast: it stamped the event 2 s before sending.
        let mut e = ev(json!({"timestamp":"2026-11-28T13:00:03Z","sentAt":"2026-11-28T13:00:05Z"}));
        enrich(&mut e, &req());
        assert_eq!(e["receivedAt"], "2026-11-28T12:00:10.000Z");
        assert_eq!(e["originalTimestamp"], "2026-11-28T13:00:03Z");
        assert_eq!(e["timestamp"], "2026-11-28T12:00:08.000Z");
        assert_eq!(e["sentAt"], "2026-11-28T13:00:05.000Z");
    }

    #[test]
    fn batch_sent_at_and_missing_timestamp() {
        let mut r = req();
        r.sent_at = parse_timestamp("2026-11-28T12:00:09Z");
        let mut e = ev(json!({"timestamp":"2026-11-28T12:00:04Z"}));
        enrich(&mut e, &r);
        assert_eq!(e["timestamp"], "2026-11-28T12:00:05.000Z");
        let mut e = ev(json!({}));
        enrich(&mut e, &req());
        assert_eq!(e["timestamp"], e["receivedAt"]);
        assert!(e.get("originalTimestamp").is_none());
        assert_eq!(e["messageId"].as_str().unwrap().len(), 36);
    }

    #[test]
    fn context_ip_user_agent_and_batch_defaults() {
        let mut r = req();
        let batch_ctx = json!({"library":{"name":"analytics-python"},"locale":"en"});
        r.context = batch_ctx.as_object();
        let mut e = ev(json!({"messageId":"m1","context":{"locale":"fr"}}));
        enrich(&mut e, &r);
        let c = &e["context"];
        assert_eq!(e["messageId"], "m1");
        assert_eq!(c["ip"], "203.0.113.0");
        assert_eq!(c["locale"], "fr");
        assert_eq!(c["library"]["name"], "analytics-python");
        assert_eq!(c["browser"]["name"], "Chrome");
        assert_eq!(c["os"]["name"], "Linux");
        assert_eq!(c["device"]["type"], "desktop");
        assert_eq!(c["bot"], false);
        assert_eq!(e["writeKey"], "wk");

        let mut e = ev(json!({"context":{"ip":"198.51.100.9","userAgent":"Googlebot/2.1"}}));
        r.ip_mode = IpMode::Keep;
        enrich(&mut e, &r);
        assert_eq!(
            e["context"]["ip"], "198.51.100.9",
            "the message's own ip wins"
        );
        assert_eq!(e["context"]["bot"], true);
        r.ip_mode = IpMode::Drop;
        let mut e = ev(json!({}));
        enrich(&mut e, &r);
        assert!(e["context"].get("ip").is_none());
    }
}
