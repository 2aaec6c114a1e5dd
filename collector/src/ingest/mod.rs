//! Ingest: request → decode → screen → message → validate → plan → enrich → spool.
//!
//! Whole-request problems (not JSON, wrong shape, too large) fail the request with an
//! [`ApiError`]. Per-event problems do not: the event is dead-lettered with its reason and
//! reported by index, and the rest of the batch is stored. The call returns only after the
//! accepted events are fsync'd in the spool.

pub mod budget;
pub mod decode;
pub mod dedupe;
pub mod enrich;
pub mod event;
pub mod inflight;
pub mod ip;
pub mod message;
pub mod rejected;
pub mod screen;
pub mod useragent;
pub mod validate;

use std::net::IpAddr;

use base64::Engine;
use bytes::Bytes;
use hyper::header::{HeaderMap, AUTHORIZATION, USER_AGENT};
use hyper::StatusCode;
use serde_json::value::RawValue;

use std::sync::Arc;

use crate::deadletter::DeadLetters;
use crate::inspector::Inspector;
use crate::ratelimit::RateLimits;
use crate::sinks::meta::EventMeta;
use crate::sources::{Policy, Source};
use crate::spool::{AppendError, Spool};
use enrich::{Enricher, RequestInfo};
use event::Event;
use inflight::Reservation;
use message::MessageType;
use rejected::{DeadBatch, Rejection};

use crate::plan::{Applied, Tally, Verdict, Violation};

/// About what ingest adds to an event (the spool header, receivedAt, timestamps, context.ip):
/// room reserved per event in the request's output buffer.
const EXTRA_BYTES_PER_EVENT: usize = 512;

/// Ingest's options.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// How many recent messageIds deduplication remembers.
    pub dedupe_ids: usize,
    pub max_body_bytes: usize,
    /// How long a client may take to send the body.
    pub body_timeout: std::time::Duration,
    pub max_event_bytes: usize,
    pub trust_proxy: ip::TrustProxy,
    pub ip: ip::IpMode,
    /// The bound on request bytes held at once (0: none).
    pub max_body_bytes_in_flight: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            dedupe_ids: 100_000,
            max_body_bytes: 512_000,
            body_timeout: std::time::Duration::from_secs(30),
            max_event_bytes: 32 * 1024,
            trust_proxy: ip::TrustProxy::default(),
            ip: ip::IpMode::Anonymize,
            max_body_bytes_in_flight: inflight::DEFAULT_MAX_BYTES,
        }
    }
}

/// A whole-request failure: an HTTP status and a message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for a Retry-After header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A `400` naming what is wrong with the request body.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

/// Which API endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/batch`
    Batch,
    /// `/v1/track`, `/v1/page`, ... and the pixel.
    Single(MessageType),
}

/// The result of an accepted request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: usize,
    /// (index in the batch, why)
    pub rejected: Vec<(usize, Rejection)>,
}

/// Everything ingest needs, shared by all requests.
pub struct Ingest {
    pub cfg: IngestConfig,
    pub spool: Spool,
    pub dead_letters: DeadLetters,
    /// Set only when the live inspector is on; ingest does no inspector work otherwise.
    pub inspector: Option<Arc<Inspector>>,
    /// Who may send (reloaded on SIGHUP).
    pub policy: Arc<Policy>,
    pub limits: RateLimits,
    pub dedupe: dedupe::Dedupe,
    /// The bound on request bytes held at once.
    pub in_flight: inflight::InFlight,
}

/// The write key from HTTP Basic auth: Segment puts it in the username.
pub fn basic_auth_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| user.to_string())
}

const PAD_ANY: base64::engine::GeneralPurposeConfig = base64::engine::GeneralPurposeConfig::new()
    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
const B64_STANDARD: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, PAD_ANY);
const B64_URL: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, PAD_ANY);

/// The JSON message of a pixel request: `?data=<base64 JSON>` (standard or URL-safe alphabet).
pub fn pixel_data(query: Option<&str>) -> Result<Vec<u8>, ApiError> {
    let data = query
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        .find(|(k, _)| k == "data")
        .map(|(_, v)| v.replace(' ', "+"))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "pixel needs a `data` query parameter holding base64 JSON",
            )
        })?;
    let data = data.trim();
    B64_STANDARD
        .decode(data)
        .or_else(|_| B64_URL.decode(data))
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("pixel `data` is not valid base64: {e}"),
            )
        })
}

/// Parse a batch-level object (`context`, `integrations`) once for all events.
fn shared_object<'a>(name: &str, raw: Option<&'a RawValue>) -> Result<Option<Event<'a>>, ApiError> {
    raw.map(|r| {
        Event::parse(r.get())
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("`{name}`: {e}")))
    })
    .transpose()
}

impl Ingest {
    /// Decode, validate, enrich and durably store one request's events.
    pub async fn process(
        &self,
        body: &[u8],
        endpoint: Endpoint,
        headers: &HeaderMap,
        client_ip: IpAddr,
        held: &mut Reservation,
    ) -> Result<Outcome, ApiError> {
        let env = match endpoint {
            Endpoint::Batch => message::parse_batch(body)?,
            Endpoint::Single(_) => message::parse_single(body)?,
        };
        let sent_at = match &env.sent_at {
            None => None,
            Some(serde_json::Value::String(s)) => {
                Some(validate::read_timestamp(s).map_err(|bad| {
                    ApiError::bad_request(bad.reason("sentAt", &format!("{s:?}")))
                })?)
            }
            Some(other) => {
                return Err(ApiError::bad_request(
                    validate::BadTime::NotADate.reason("sentAt", &other.to_string()),
                ))
            }
        };
        let write_key = basic_auth_user(headers).or(env.write_key.clone());
        let context = shared_object("context", env.context)?;
        let integrations = shared_object("integrations", env.integrations)?;
        let origin = headers
            .get(hyper::header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let sources = self.policy.get();
        let source = sources.authorize(write_key.as_deref(), origin)?;
        // The plan of this request: one version for all its events, whatever a reload does.
        let plan = match &source {
            Some(s) => s.plan.as_deref(),
            None => sources.plan.as_deref(),
        };
        let mut tally = Tally::default();
        if let Some(s) = &source {
            self.limits.check_source(&s.name)?;
        }
        let enricher = Enricher::new(RequestInfo {
            source: source.as_ref().map(|s| s.name.as_str()),
            received_at: chrono::Utc::now(),
            client_ip: Some(client_ip),
            ip_mode: self.cfg.ip,
            user_agent: headers.get(USER_AGENT).and_then(|v| v.to_str().ok()),
            write_key: if source.is_some() {
                None
            } else {
                write_key.as_deref()
            },
            sent_at,
            context: context.as_ref(),
            integrations: integrations.as_ref(),
        });
        let info = &enricher.info;
        let route = match endpoint {
            Endpoint::Batch => None,
            Endpoint::Single(t) => Some(t),
        };
        // Every accepted event of the request is written into one buffer and spooled as a
        // slice of it: one allocation (and one free, on the sink's thread) per request instead
        // of one per event.
        let mut out = Vec::with_capacity(body.len() + env.events.len() * EXTRA_BYTES_PER_EVENT);
        let mut spans = Vec::with_capacity(env.events.len());
        let mut keys = Vec::with_capacity(env.events.len());
        let mut noted: Vec<Vec<Violation>> = Vec::new();
        let mut outcome = Outcome::default();
        let mut dead = DeadBatch::new(body.len());
        let scope = info.source.or(info.write_key).unwrap_or("");
        let mut store = budget::Budget::for_body(body.len());
        for (index, item) in env.events.into_iter().enumerate() {
            let raw = item.raw;
            let start = out.len();
            let prepared = if store.spent() {
                Err(store.refusal().into())
            } else {
                let planned = plan.map(|p| (p, &mut tally));
                self.prepare(
                    item,
                    route,
                    &enricher,
                    source.as_deref(),
                    scope,
                    planned,
                    &mut out,
                )
            };
            let prepared = prepared.and_then(|ok| match store.charge(out.len() - start) {
                true => Ok(ok),
                false => {
                    out.truncate(start);
                    Err(store.refusal().into())
                }
            });
            match prepared {
                Ok((key, violations)) => {
                    keys.push(key);
                    spans.push(start..out.len());
                    if self.inspector.is_some() {
                        noted.push(violations);
                    }
                }
                Err(rejection) => {
                    let rejection = rejection.capped();
                    dead.push(raw, &rejection);
                    outcome.rejected.push((index, rejection));
                }
            }
        }
        let dead = dead.finish();
        if plan.is_some() {
            tally.record(source.as_ref().map_or("", |s| s.name.as_str()));
        }
        // The enriched events are held until the spool has them.
        held.grow_to(held.bytes() + out.len())?;
        if out.capacity() > out.len() + out.len() / 4 {
            // The spool's window of recent records keeps the buffer: no large slack in it.
            out.shrink_to_fit();
        }
        let out = Bytes::from(out);
        let mut payloads: Vec<Bytes> = spans.into_iter().map(|r| out.slice(r)).collect();
        // An event already stored is acknowledged again and stored once.
        let (fresh, claim) = self.dedupe.claim(&keys).await;
        let duplicates = fresh.iter().filter(|f| !**f).count();
        if duplicates > 0 {
            let mut keep = fresh.iter();
            payloads.retain(|_| *keep.next().unwrap());
            if !noted.is_empty() {
                let mut keep = fresh.iter();
                noted.retain(|_| *keep.next().unwrap());
            }
        }
        if let Some(inspector) = &self.inspector {
            for d in &dead {
                inspector.rejected(d.event.get().as_bytes(), &d.reason, &d.violations);
            }
        }
        outcome.accepted = payloads.len() + duplicates;
        let shown = self.inspector.as_ref().map(|_| payloads.clone());
        let bytes: usize = payloads.iter().map(Bytes::len).sum();
        // The dead letters and the spool each wait for their own fsync: side by side.
        let ((), appended) =
            tokio::join!(self.dead_letters.write(dead), self.spool.append(payloads));
        appended.map_err(|e| match e {
            AppendError::Full => ApiError {
                retry_after: Some(5),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the collector's spool is full; retry later",
                )
            },
            AppendError::Closed => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the collector is shutting down; retry",
                )
            },
            AppendError::Io(_) => ApiError {
                retry_after: Some(30),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the collector cannot write to its disk; retry later",
                )
            },
        })?;
        claim.stored();
        if duplicates > 0 {
            metrics::counter!("collector_events_deduplicated_total").increment(duplicates as u64);
        }
        if let (Some(inspector), Some(shown)) = (&self.inspector, shown) {
            inspector.accepted(&shown, &noted);
        }
        metrics::counter!("collector_events_accepted_total").increment(outcome.accepted as u64);
        metrics::counter!("collector_events_rejected_total")
            .increment(outcome.rejected.len() as u64);
        metrics::counter!("collector_event_bytes_total").increment(bytes as u64);
        Ok(outcome)
    }

    /// One event: size cap → parse → validate → plan → enrich → bytes appended to `out`;
    /// returns its dedupe key and what the plan found in a stored event (tag, observe).
    /// Nothing is appended when the event is refused. The size cap holds for the event as
    /// received and again for the event as stored.
    #[allow(clippy::too_many_arguments)]
    fn prepare<'r>(
        &self,
        item: message::Item<'r>,
        route: Option<MessageType>,
        enricher: &'r Enricher<'r>,
        source: Option<&Source>,
        scope: &str,
        plan: Option<(&Applied, &mut Tally)>,
        out: &mut Vec<u8>,
    ) -> Result<(u64, Vec<Violation>), Rejection> {
        let size = item.raw.len();
        if size > self.cfg.max_event_bytes {
            return Err(format!(
                "event is {size} bytes; the limit is {} bytes",
                self.cfg.max_event_bytes
            )
            .into());
        }
        let mut ev = item.into_event()?;
        ev.remove("writeKey");
        let kind = validate::validate(&mut ev, route)?;
        let mut found = Vec::new();
        if let Some((plan, tally)) = plan {
            let verdict = {
                let name = ev.str(if kind == MessageType::Track {
                    "event"
                } else {
                    "name"
                });
                let info = &enricher.info;
                plan.judge(
                    kind,
                    name.as_deref(),
                    || plan_message(&ev, info.context, info.integrations),
                    source.map_or("", |s| s.name.as_str()),
                    tally,
                )?
            };
            match verdict {
                Verdict::Store => {}
                Verdict::Tag(v) => {
                    let text = crate::plan::violation::to_json(&v);
                    ev.object("context")?.set("violations", text.into());
                    found = v;
                }
                Verdict::Observe(v) => found = v,
                Verdict::Reject(reason, violations) => {
                    return Err(Rejection { reason, violations })
                }
            }
        }
        let enriched = enricher.enrich(&mut ev)?;
        if enriched.bot && source.is_some_and(|s| s.drop_bots) {
            return Err(String::from("bot user agent; this source drops bot traffic").into());
        }
        let meta = EventMeta {
            kind: ev.str("type"),
            event: ev.str("event"),
            name: ev.str("name"),
            user_id: ev.str("userId"),
            anonymous_id: ev.str("anonymousId"),
            message_id: ev.str("messageId"),
            received_at: ev.str("receivedAt"),
        };
        let key = self.dedupe.key(scope, &meta);
        let start = out.len();
        meta.write_header(key, out);
        let json_start = out.len();
        ev.write(out);
        let size = out.len() - json_start;
        if size > self.cfg.max_event_bytes {
            out.truncate(start);
            return Err(format!(
                "event is {size} bytes after enrichment; the limit is {} bytes",
                self.cfg.max_event_bytes
            )
            .into());
        }
        Ok((key, found))
    }
}

/// The message a tracking plan checks: the event after validation, with the batch's
/// `context` and `integrations` filling in what it lacks (as enrichment will), before
/// enrichment. Its fields are the event's own, borrowed, unless there are batch defaults.
fn plan_message<'e>(
    ev: &'e Event,
    context: Option<&Event>,
    integrations: Option<&Event>,
) -> Result<crate::plan::Fields<'e>, String> {
    use std::borrow::Cow;
    if context.is_none() && integrations.is_none() {
        return Ok(ev
            .fields()
            .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
            .collect());
    }
    let mut m = ev.clone().into_owned();
    for (key, defaults) in [("context", context), ("integrations", integrations)] {
        if let Some(defaults) = defaults {
            m.object(key)?.fill_missing(&defaults.clone().into_owned());
        }
    }
    Ok(m.fields()
        .map(|(k, v)| {
            let v = match m.child(k) {
                Some(child) => child.to_json(),
                None => v.to_string(),
            };
            (Cow::Owned(k.to_string()), Cow::Owned(v))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_key_from_basic_auth() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Basic d2tfMTIzOg==".parse().unwrap()); // "wk_123:"
        assert_eq!(basic_auth_user(&h).as_deref(), Some("wk_123"));
        h.insert(AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(basic_auth_user(&h), None);
    }

    #[test]
    fn pixel_data_decodes_both_alphabets_and_plus_as_space() {
        let json = br#"{"type":"track","event":"Opened ~~??","userId":"u"}"#;
        let std = base64::engine::general_purpose::STANDARD.encode(json);
        assert!(std.contains('+') || std.contains('/'));
        assert_eq!(
            pixel_data(Some(&format!("data={}", std.replace('+', " ")))).unwrap(),
            json
        );
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        assert_eq!(pixel_data(Some(&format!("x=1&data={url}"))).unwrap(), json);
        assert!(pixel_data(Some("data=!!!"))
            .unwrap_err()
            .message
            .contains("base64"));
        assert!(pixel_data(None).unwrap_err().message.contains("`data`"));
    }
}
