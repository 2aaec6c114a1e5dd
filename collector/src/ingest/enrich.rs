//! Adds what the collector knows and the client does not, the way Segment does:
//!
//! - `receivedAt`: when the collector received the request.
//! - `sentAt`: the client's send time (batch-level, or the message's own).
//! - `originalTimestamp`: the client's `timestamp`: its text when that is RFC 3339, else the same
//!   time written in RFC 3339 at the client's offset (ISO-8601 forms SDKs send without a colon
//!   in the offset, or without an offset, are taken too).
//! - `timestamp`: corrected for client clock skew: `receivedAt - (sentAt - originalTimestamp)`;
//!   `receivedAt` when the client sent no timestamp.
//!   When that lands outside years 0001-9999 (a client clock far off), `receivedAt`.
//! - `messageId`: a UUID v4 when the client sent none, or an empty one.
//! - `context.ip`: the client IP (the message's own, else the connection's), anonymized by default.
//! - `context.userAgent`: the User-Agent header when the message has none, cut to
//!   [`MAX_USER_AGENT_BYTES`] (it is copied into every event of the request).
//! - `context.browser`, `context.os`, `context.device.type`, `context.bot`: parsed from it.
//! - `source`: the configured source the write key belongs to; without sources (open mode),
//!   `writeKey`: the key the request was sent with.
//! - batch-level `context` and `integrations` fill keys the message lacks.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

use super::event::{raw_string, Event};
use super::ip;
use super::ip::IpMode;
use super::useragent::{self, UserAgentInfo};
use super::validate::{in_calendar, parse_timestamp, read_time, rfc3339};

/// The most of the User-Agent header copied into each event (and parsed): real ones are 100 to
/// 300 bytes; a 16 KB one would be copied into every event of a batch.
pub const MAX_USER_AGENT_BYTES: usize = 512;

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The client's timestamp corrected for its clock's skew, or `received_at` when the
/// correction leaves the calendar (a client clock thousands of years off).
fn skew_corrected(
    received_at: DateTime<Utc>,
    sent_at: DateTime<Utc>,
    client_ts: DateTime<Utc>,
) -> DateTime<Utc> {
    received_at
        .checked_sub_signed(sent_at.signed_duration_since(client_ts))
        .filter(|t| in_calendar(*t))
        .unwrap_or(received_at)
}

/// Request-wide facts applied to each event.
#[derive(Debug, Clone)]
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

/// [`format_time`] as JSON text.
fn time_json(t: DateTime<Utc>) -> String {
    raw_string(&format_time(t))
}

/// What enrichment learned that the caller may act on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Enriched {
    /// The user agent is a bot's.
    pub bot: bool,
}

/// A request's facts, with what every event of it gets already rendered as JSON text once:
/// events borrow it instead of each formatting and allocating its own copy.
#[derive(Debug)]
pub struct Enricher<'a> {
    pub info: RequestInfo<'a>,
    received_at: String,
    sent_at: Option<String>,
    write_key: Option<String>,
    source: Option<String>,
    /// The connection's IP after the IP mode.
    ip: Option<String>,
    /// The User-Agent header, and what it says.
    user_agent: Option<(String, Arc<UserAgentInfo>)>,
    /// The first corrected `timestamp` rendered: the events of a batch often share it.
    timestamp: OnceCell<(DateTime<Utc>, String)>,
}

/// `context.browser`, `context.os` and the device type and bot flag of a user agent.
struct AgentFields<'r> {
    browser: Option<Cow<'r, str>>,
    os: Option<Cow<'r, str>>,
    device_type: Cow<'r, str>,
    bot: bool,
}

impl<'r> AgentFields<'r> {
    fn borrowed(a: &'r UserAgentInfo) -> AgentFields<'r> {
        AgentFields {
            browser: a.browser_json.as_deref().map(Cow::Borrowed),
            os: a.os_json.as_deref().map(Cow::Borrowed),
            device_type: Cow::Borrowed(&a.device_type_json),
            bot: a.bot,
        }
    }

    fn owned(a: &UserAgentInfo) -> AgentFields<'r> {
        AgentFields {
            browser: a.browser_json.clone().map(Cow::Owned),
            os: a.os_json.clone().map(Cow::Owned),
            device_type: Cow::Owned(a.device_type_json.clone()),
            bot: a.bot,
        }
    }
}

impl<'a> Enricher<'a> {
    pub fn new(info: RequestInfo<'a>) -> Enricher<'a> {
        Enricher {
            received_at: time_json(info.received_at),
            sent_at: info.sent_at.map(time_json),
            write_key: info.write_key.map(raw_string),
            source: info.source.map(raw_string),
            ip: info
                .client_ip
                .and_then(|ip| ip::apply(info.ip_mode, ip))
                .map(|ip| raw_string(&ip.to_string())),
            user_agent: info.user_agent.map(|ua| {
                let ua = cut(ua, MAX_USER_AGENT_BYTES);
                (raw_string(ua), useragent::parse(ua))
            }),
            timestamp: OnceCell::new(),
            info,
        }
    }

    /// Enrich one validated event in place.
    pub fn enrich<'r>(&'r self, ev: &mut Event<'r>) -> Result<Enriched, String> {
        let info = &self.info;
        let received_at = info.received_at;
        ev.set("receivedAt", Cow::Borrowed(&self.received_at));

        let own_sent_at = ev.str("sentAt").and_then(|s| parse_timestamp(&s));
        match (own_sent_at, &self.sent_at) {
            (Some(s), _) => ev.set("sentAt", time_json(s).into()),
            (None, Some(text)) => ev.set("sentAt", Cow::Borrowed(text)),
            (None, None) => {}
        }
        let sent_at = own_sent_at.or(info.sent_at);
        let client = ev.str("timestamp").and_then(|s| read_time(&s).ok());
        let client_ts = client.map(|(t, _)| t.with_timezone(&Utc));
        let timestamp = match (client_ts, sent_at) {
            (Some(ts), Some(sent)) => skew_corrected(received_at, sent, ts),
            (Some(ts), None) => ts,
            (None, _) => received_at,
        };
        match (client, ev.present("originalTimestamp").is_some()) {
            (Some((_, true)), false) => {
                let original = ev.get_cow("timestamp").expect("timestamp was read");
                ev.set("originalTimestamp", original);
            }
            (Some((t, false)), false) => ev.set_str("originalTimestamp", &rfc3339(t)),
            (_, true) => {
                // The client's own: stored as RFC 3339 too (validation checked it is a time).
                let own = ev.str("originalTimestamp").and_then(|s| read_time(&s).ok());
                if let Some((t, false)) = own {
                    ev.set_str("originalTimestamp", &rfc3339(t));
                }
            }
            (None, false) => {}
        }
        ev.set("timestamp", self.timestamp_json(timestamp));

        if ev.str("messageId").is_none_or(|id| id.trim().is_empty()) {
            ev.set_str("messageId", &uuid::Uuid::new_v4().to_string());
        }
        if let Some(defaults) = info.integrations {
            ev.object("integrations")?.fill_missing(defaults);
        }
        if let Some(key) = &self.write_key {
            ev.set("writeKey", Cow::Borrowed(key));
        }
        if let Some(source) = &self.source {
            ev.set("source", Cow::Borrowed(source));
        }
        let mut enriched = Enriched::default();
        self.enrich_context(ev.object("context")?, &mut enriched)?;
        Ok(enriched)
    }

    /// A corrected timestamp as JSON text, borrowed when it is the request's first one.
    fn timestamp_json(&self, t: DateTime<Utc>) -> Cow<'_, str> {
        let (first, text) = self.timestamp.get_or_init(|| (t, time_json(t)));
        if *first == t {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(time_json(t))
        }
    }

    fn enrich_context<'r>(&'r self, ctx: &mut Event<'r>, out: &mut Enriched) -> Result<(), String> {
        if let Some(defaults) = self.info.context {
            ctx.fill_missing(defaults);
        }
        match ctx.str("ip").and_then(|s| s.parse::<IpAddr>().ok()) {
            Some(own) => match ip::apply(self.info.ip_mode, own) {
                Some(ip) => ctx.set("ip", raw_string(&ip.to_string()).into()),
                None => {
                    ctx.remove("ip");
                }
            },
            None => match &self.ip {
                Some(text) => ctx.set("ip", Cow::Borrowed(text)),
                None => {
                    ctx.remove("ip");
                }
            },
        }
        let header = self.user_agent.as_ref();
        let agent = match ctx.str("userAgent") {
            None => match header {
                Some((text, agent)) => {
                    ctx.set("userAgent", Cow::Borrowed(text));
                    AgentFields::borrowed(agent)
                }
                None => return Ok(()),
            },
            Some(ua) if self.info.user_agent == Some(&*ua) => match header {
                Some((_, agent)) => AgentFields::borrowed(agent),
                None => return Ok(()),
            },
            Some(ua) => AgentFields::owned(&useragent::parse(cut(&ua, MAX_USER_AGENT_BYTES))),
        };
        if let Some(browser) = agent.browser {
            ctx.set("browser", browser);
        }
        if let Some(os) = agent.os {
            if ctx.present("os").is_none() {
                ctx.set("os", os);
            }
        }
        let device = ctx.object("device")?;
        if device.present("type").is_none() {
            device.set("type", agent.device_type);
        }
        ctx.set(
            "bot",
            Cow::Borrowed(if agent.bot { "true" } else { "false" }),
        );
        out.bot = agent.bot;
        Ok(())
    }
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
        let enricher = Enricher::new(r.clone());
        let mut e = Event::parse(&text).unwrap();
        enricher.enrich(&mut e).unwrap();
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
    fn events_of_one_request_keep_their_own_timestamps() {
        let mut r = req();
        r.sent_at = parse_timestamp("2026-11-28T12:00:09Z");
        let enricher = Enricher::new(r);
        let texts = [
            r#"{"timestamp":"2026-11-28T12:00:04Z"}"#,
            r#"{"timestamp":"2026-11-28T12:00:06Z"}"#,
            r#"{"timestamp":"2026-11-28T12:00:04Z"}"#,
        ];
        let mut out = Vec::new();
        for text in texts {
            let mut e = Event::parse(text).unwrap();
            enricher.enrich(&mut e).unwrap();
            let v: Value = serde_json::from_str(&e.to_json()).unwrap();
            out.push(v["timestamp"].as_str().unwrap().to_string());
        }
        assert_eq!(
            out,
            [
                "2026-11-28T12:00:05.000Z",
                "2026-11-28T12:00:07.000Z",
                "2026-11-28T12:00:05.000Z"
            ]
        );
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
