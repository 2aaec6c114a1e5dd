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
//! - `source`: the configured source the write key belongs to; without sources (open mode),
//!   `writeKey`: the key the request was sent with.
//! - batch-level `context` and `integrations` fill keys the message lacks.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};

use super::event::{kind, raw_string, Event, Kind};
use super::ip;
use super::useragent;
use super::validate::parse_timestamp;
use crate::config::IpMode;

/// Request-wide facts applied to each event.
#[derive(Debug)]
pub struct RequestInfo<'a> {
    pub received_at: DateTime<Utc>,
    pub client_ip: Option<IpAddr>,
    pub ip_mode: IpMode,
    pub user_agent: Option<&'a str>,
    /// Recorded only in open mode; with sources configured the key is never stored.
    pub write_key: Option<&'a str>,
    /// The configured source the request was authorized for.
    pub source: Option<&'a str>,
    pub sent_at: Option<DateTime<Utc>>,
    pub context: Option<&'a Event<'a>>,
    pub integrations: Option<&'a Event<'a>>,
}

pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An IP address as JSON text; the events of a request share it, so the last one is kept
/// per thread.
fn ip_json(ip: IpAddr) -> String {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, String)>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((at, text)) if *at == ip => text.clone(),
        _ => {
            let text = raw_string(&ip.to_string());
            *last = Some((ip, text.clone()));
            text
        }
    })
}

/// [`format_time`] as JSON text. The events of a request share their receive and send times,
/// so the last few results are kept per thread.
fn time_json(t: DateTime<Utc>) -> String {
    use std::cell::RefCell;
    thread_local! {
        static RECENT: RefCell<[(DateTime<Utc>, String); 2]> = RefCell::default();
    }
    RECENT.with_borrow_mut(|recent| {
        if let Some((_, text)) = recent
            .iter()
            .find(|(at, text)| *at == t && !text.is_empty())
        {
            return text.clone();
        }
        let text = raw_string(&format_time(t));
        recent.swap(0, 1);
        recent[0] = (t, text.clone());
        text
    })
}

/// Parse an object-valued field (or start an empty one), let `f` change it, store it back.
fn edit_object(
    ev: &mut Event,
    key: &'static str,
    f: impl FnOnce(&mut Event) -> Result<(), String>,
) -> Result<(), String> {
    let raw = ev.remove(key).filter(|v| kind(v) == Kind::Object);
    let mut obj = match &raw {
        Some(r) => Event::parse(r).map_err(|e| format!("`{key}`: {e}"))?,
        None => Event::default(),
    };
    f(&mut obj)?;
    let out = obj.to_json();
    drop(obj);
    ev.set(key, out.into());
    Ok(())
}

fn fill_missing(target: &mut Event, defaults: &Event) {
    for (k, v) in defaults.fields() {
        target.set_default(k, v);
    }
}

/// What enrichment learned that the caller may act on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Enriched {
    /// The user agent is a bot's.
    pub bot: bool,
}

/// Enrich one validated event in place.
pub fn enrich(ev: &mut Event, req: &RequestInfo) -> Result<Enriched, String> {
    let received_at = req.received_at;
    ev.set("receivedAt", time_json(received_at).into());

    let sent_at = ev
        .str("sentAt")
        .and_then(|s| parse_timestamp(&s))
        .or(req.sent_at);
    if let Some(s) = sent_at {
        ev.set("sentAt", time_json(s).into());
    }
    let client_ts = ev.str("timestamp").and_then(|s| parse_timestamp(&s));
    let timestamp = match (client_ts, sent_at) {
        (Some(ts), Some(sent)) => received_at - (sent - ts),
        (Some(ts), None) => ts,
        (None, _) => received_at,
    };
    if client_ts.is_some() && ev.present("originalTimestamp").is_none() {
        let original = ev.get("timestamp").unwrap().to_owned();
        ev.set("originalTimestamp", original.into());
    }
    ev.set_str("timestamp", &format_time(timestamp));

    if ev.str("messageId").is_none() {
        ev.set_str("messageId", &uuid::Uuid::new_v4().to_string());
    }
    if let Some(defaults) = req.integrations {
        edit_object(ev, "integrations", |i| {
            fill_missing(i, defaults);
            Ok(())
        })?;
    }
    if let Some(key) = req.write_key {
        ev.set_str("writeKey", key);
    }
    if let Some(source) = req.source {
        ev.set_str("source", source);
    }
    let mut enriched = Enriched::default();
    edit_object(ev, "context", |ctx| enrich_context(ctx, req, &mut enriched))?;
    Ok(enriched)
}

fn enrich_context(ctx: &mut Event, req: &RequestInfo, out: &mut Enriched) -> Result<(), String> {
    if let Some(defaults) = req.context {
        fill_missing(ctx, defaults);
    }
    let ip = ctx
        .str("ip")
        .and_then(|s| s.parse::<IpAddr>().ok())
        .or(req.client_ip);
    match ip.and_then(|ip| ip::apply(req.ip_mode, ip)) {
        Some(ip) => ctx.set("ip", ip_json(ip).into()),
        None => {
            ctx.remove("ip");
        }
    }
    if ctx.str("userAgent").is_none() {
        if let Some(ua) = req.user_agent {
            ctx.set_str("userAgent", ua);
        }
    }
    let info = match ctx.str("userAgent") {
        Some(ua) => useragent::parse(&ua),
        None => return Ok(()),
    };
    if let Some(browser) = &info.browser_json {
        ctx.set("browser", browser.as_str().to_owned().into());
    }
    if let Some(os) = &info.os_json {
        if ctx.present("os").is_none() {
            ctx.set("os", os.as_str().to_owned().into());
        }
    }
    edit_object(ctx, "device", |device| {
        if device.present("type").is_none() {
            device.set_str("type", info.device_type);
        }
        Ok(())
    })?;
    ctx.set(
        "bot",
        Cow::Borrowed(if info.bot { "true" } else { "false" }),
    );
    out.bot = info.bot;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::{json, Value};

    fn req<'a>() -> RequestInfo<'a> {
        RequestInfo {
            received_at: Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 10).unwrap(),
            client_ip: Some("203.0.113.77".parse().unwrap()),
            ip_mode: IpMode::Anonymize,
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"),
            write_key: Some("wk"),
            source: None,
            sent_at: None,
            context: None,
            integrations: None,
        }
    }

    /// Enrich a JSON event and return it as a Value.
    fn run(v: Value, r: &RequestInfo) -> Value {
        let text = v.to_string();
        let mut e = Event::parse(&text).unwrap();
        enrich(&mut e, r).unwrap();
        serde_json::from_str(&e.to_json()).unwrap()
    }

    #[test]
    fn corrects_clock_skew() {
        // The client's clock is 1 hour fast: it stamped the event 2 s before sending.
        let e = run(
            json!({"timestamp":"2026-11-28T13:00:03Z","sentAt":"2026-11-28T13:00:05Z"}),
            &req(),
        );
        assert_eq!(e["receivedAt"], "2026-11-28T12:00:10.000Z");
        assert_eq!(e["originalTimestamp"], "2026-11-28T13:00:03Z");
        assert_eq!(e["timestamp"], "2026-11-28T12:00:08.000Z");
        assert_eq!(e["sentAt"], "2026-11-28T13:00:05.000Z");
    }

    #[test]
    fn batch_sent_at_and_missing_timestamp() {
        let mut r = req();
        r.sent_at = parse_timestamp("2026-11-28T12:00:09Z");
        let e = run(json!({"timestamp":"2026-11-28T12:00:04Z"}), &r);
        assert_eq!(e["timestamp"], "2026-11-28T12:00:05.000Z");
        let e = run(json!({}), &req());
        assert_eq!(e["timestamp"], e["receivedAt"]);
        assert!(e.get("originalTimestamp").is_none());
        assert_eq!(e["messageId"].as_str().unwrap().len(), 36);
    }

    #[test]
    fn context_ip_user_agent_and_batch_defaults() {
        let mut r = req();
        let batch_text = json!({"library":{"name":"analytics-python"},"locale":"en"}).to_string();
        let batch_ctx = Event::parse(&batch_text).unwrap();
        r.context = Some(&batch_ctx);
        let e = run(json!({"messageId":"m1","context":{"locale":"fr"}}), &r);
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

        r.ip_mode = IpMode::Keep;
        let e = run(
            json!({"context":{"ip":"198.51.100.9","userAgent":"Googlebot/2.1"}}),
            &r,
        );
        assert_eq!(
            e["context"]["ip"], "198.51.100.9",
            "the message's own ip wins"
        );
        assert_eq!(e["context"]["bot"], true);
        r.ip_mode = IpMode::Drop;
        let e = run(json!({}), &r);
        assert!(e["context"].get("ip").is_none());
    }
}
