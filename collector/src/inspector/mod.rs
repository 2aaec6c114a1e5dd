//! The live inspector: every accepted and rejected event, streamed to browsers over
//! Server-Sent Events (`/debug/stream`), kept in a small ring for `GET /debug/events`, and
//! shown by the `/inspector` page. Like Segment's debugger or Snowplow Micro.
//!
//! It costs nothing when disabled (ingest holds `None`). When enabled, ingest only pushes a
//! cheap entry into a bounded broadcast channel, which never waits: a slow viewer misses
//! entries and is told how many (`dropped`), and ingest never slows down for it.
//!
//! Memory is bounded: an entry keeps at most [`MAX_EVENT_BYTES`] of its event (a longer one is
//! kept as the start of its text, in a JSON string, with its full size in `truncated`), the ring
//! keeps [`RING_CAPACITY`] entries and the channel [`CHANNEL_CAPACITY`], and a reply of
//! `/debug/events` holds at most [`MAX_REPLY_BYTES`] of events (the rest are counted).

pub mod page;
pub mod stream;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::broadcast;

use crate::sinks::meta::EventMeta;

/// Entries a viewer may fall behind before it starts missing some.
pub const CHANNEL_CAPACITY: usize = 1024;
/// Entries kept for `GET /debug/events`.
pub const RING_CAPACITY: usize = 1000;
/// The most of an event an entry keeps.
pub const MAX_EVENT_BYTES: usize = 8 * 1024;
/// About the most event bytes one `GET /debug/events` returns.
pub const MAX_REPLY_BYTES: usize = 1 << 20;

/// One accepted or rejected event, as viewers see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub status: &'static str,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: Option<String>,
    pub time: String,
    pub anonymous_id: Option<String>,
    pub user_id: Option<String>,
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the tracking plan found: why a rejected event was refused, or what a tagged or
    /// observed one breaks.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub violations: Vec<crate::plan::Violation>,
    /// The enriched event (accepted) or the event as received (rejected); when it was longer
    /// than [`MAX_EVENT_BYTES`], a JSON string holding the start of its text.
    pub event: Box<RawValue>,
    /// The event's size in bytes, when `event` holds only its start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<usize>,
}

/// An event's text for an entry: whole when short, else the start of it in a JSON string.
fn kept(json: &[u8]) -> (Box<RawValue>, Option<usize>) {
    let text = String::from_utf8_lossy(json);
    if json.len() <= MAX_EVENT_BYTES {
        if let Ok(v) = RawValue::from_string(text.into_owned()) {
            return (v, None);
        }
        return (RawValue::from_string("null".into()).unwrap(), None);
    }
    let start = crate::ingest::enrich::cut(&text, MAX_EVENT_BYTES - 16);
    let quoted = serde_json::to_string(&format!("{start}…")).expect("strings serialize");
    (RawValue::from_string(quoted).unwrap(), Some(json.len()))
}

impl Entry {
    fn new(
        status: &'static str,
        json: &[u8],
        reason: Option<String>,
        violations: Vec<crate::plan::Violation>,
    ) -> Entry {
        let (meta, json) = EventMeta::split(json);
        let (event, truncated) = kept(json);
        Entry {
            status,
            name: meta.event_name().map(Into::into),
            kind: meta.kind.map(Into::into),
            time: crate::ingest::enrich::format_time(chrono::Utc::now()),
            anonymous_id: meta.anonymous_id.map(Into::into),
            user_id: meta.user_id.map(Into::into),
            message_id: meta.message_id.map(Into::into),
            reason,
            violations,
            event,
            truncated,
        }
    }

    /// About the bytes this entry takes in a reply.
    fn size(&self) -> usize {
        let field = |f: &Option<String>| f.as_ref().map_or(0, String::len);
        self.event.get().len()
            + field(&self.reason)
            + field(&self.name)
            + field(&self.anonymous_id)
            + field(&self.user_id)
            + self
                .violations
                .iter()
                .map(|v| v.path.len() + v.message.len() + 48)
                .sum::<usize>()
            + 160
    }
}

/// What `GET /debug/events` returns.
#[derive(Debug, Serialize)]
pub struct Recent {
    #[serde(serialize_with = "entries")]
    pub events: Vec<Arc<Entry>>,
    /// Entries that matched and fit the limit but not the reply's byte cap.
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: usize,
}

fn entries<S: serde::Serializer>(v: &[Arc<Entry>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|e| &**e))
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What a viewer wants to see; empty fields match everything.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub kind: Option<String>,
    pub event: Option<String>,
    pub anonymous_id: Option<String>,
}

impl Filter {
    /// From a query string: `type`, `event`, `anonymousId`.
    pub fn from_query(query: Option<&str>) -> Filter {
        let mut f = Filter::default();
        for (k, v) in query
            .into_iter()
            .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        {
            let v = (!v.is_empty()).then(|| v.into_owned());
            match k.as_ref() {
                "type" => f.kind = v,
                "event" | "name" => f.event = v,
                "anonymousId" | "anonymous_id" => f.anonymous_id = v,
                _ => {}
            }
        }
        f
    }

    pub fn matches(&self, e: &Entry) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| have.as_deref() == Some(w.as_str()))
        };
        eq(&self.kind, &e.kind)
            && eq(&self.event, &e.name)
            && eq(&self.anonymous_id, &e.anonymous_id)
    }
}

pub struct Inspector {
    tx: broadcast::Sender<Arc<Entry>>,
    ring: Mutex<VecDeque<Arc<Entry>>>,
}

impl Default for Inspector {
    fn default() -> Self {
        Self::new()
    }
}

impl Inspector {
    pub fn new() -> Inspector {
        Inspector {
            tx: broadcast::channel(CHANNEL_CAPACITY).0,
            ring: Mutex::new(VecDeque::with_capacity(RING_CAPACITY)),
        }
    }

    fn publish(&self, entry: Entry) {
        let entry = Arc::new(entry);
        {
            let mut ring = self.ring.lock().unwrap();
            if ring.len() == RING_CAPACITY {
                ring.pop_front();
            }
            ring.push_back(entry.clone());
        }
        // No receivers is fine; a full channel overwrites the oldest entry for lagging ones.
        let _ = self.tx.send(entry);
    }

    /// Accepted events, each with what the tracking plan found (tag and observe modes).
    pub fn accepted(&self, payloads: &[Bytes], violations: &[Vec<crate::plan::Violation>]) {
        for (i, p) in payloads.iter().enumerate() {
            let v = violations.get(i).cloned().unwrap_or_default();
            self.publish(Entry::new("accepted", p, None, v));
        }
    }

    pub fn rejected(&self, raw: &[u8], reason: &str, violations: &[crate::plan::Violation]) {
        self.publish(Entry::new(
            "rejected",
            raw,
            Some(reason.to_string()),
            violations.to_vec(),
        ));
    }

    /// The newest entries matching `filter`, oldest first: at most `limit` of them and about
    /// [`MAX_REPLY_BYTES`].
    pub fn recent(&self, filter: &Filter, limit: usize) -> Recent {
        let ring = self.ring.lock().unwrap();
        let matching = ring.iter().rev().filter(|e| filter.matches(e)).take(limit);
        let (mut events, mut omitted, mut bytes) = (Vec::new(), 0, 0);
        for e in matching {
            bytes += e.size();
            if bytes > MAX_REPLY_BYTES && !events.is_empty() {
                omitted += 1;
            } else {
                events.push(e.clone());
            }
        }
        events.reverse();
        Recent { events, omitted }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Entry>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_ring() {
        let i = Inspector::new();
        i.accepted(
            &[Bytes::from(
                r#"{"type":"track","event":"Buy","anonymousId":"a1","messageId":"m1"}"#,
            )],
            &[],
        );
        i.accepted(
            &[Bytes::from(
                r#"{"type":"page","name":"Home","anonymousId":"a2"}"#,
            )],
            &[],
        );
        i.rejected(
            br#"{"type":"track"}"#,
            "track needs a non-empty string `event`",
            &[],
        );
        let all = i.recent(&Filter::default(), 10).events;
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].status, "rejected");
        assert_eq!(
            all[2].reason.as_deref(),
            Some("track needs a non-empty string `event`")
        );
        let f = Filter::from_query(Some("type=track&event=Buy"));
        let hits = i.recent(&f, 10).events;
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].message_id.as_deref(), Some("m1"));
        assert_eq!(
            i.recent(&Filter::from_query(Some("anonymousId=a2")), 10)
                .events[0]
                .name
                .as_deref(),
            Some("Home")
        );
        assert_eq!(
            i.recent(&Filter::default(), 1).events[0].status,
            "rejected",
            "limit keeps the newest"
        );
    }

    #[test]
    fn long_events_are_cut_and_replies_capped() {
        let i = Inspector::new();
        let big = format!(r#"{{"type":"track","p":"{}"}}"#, "é".repeat(100_000));
        for _ in 0..300 {
            i.rejected(big.as_bytes(), "too big", &[]);
        }
        let r = i.recent(&Filter::default(), 1000);
        assert!(r.events.len() < 300 && r.events.len() + r.omitted == 300);
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.len() <= MAX_REPLY_BYTES + MAX_EVENT_BYTES,
            "{}",
            text.len()
        );
        let e = &r.events[0];
        assert_eq!(e.truncated, Some(big.len()));
        let shown: String = serde_json::from_str(e.event.get()).unwrap();
        assert!(shown.len() <= MAX_EVENT_BYTES && shown.ends_with('…'));
        assert!(shown.starts_with(r#"{"type":"track","p":"éé"#));
    }

    #[tokio::test]
    async fn a_slow_viewer_is_told_what_it_missed() {
        let i = Inspector::new();
        let mut rx = i.subscribe();
        for n in 0..(CHANNEL_CAPACITY + 10) {
            i.accepted(
                &[Bytes::from(format!(
                    r#"{{"type":"track","event":"E{n}","anonymousId":"a"}}"#
                ))],
                &[],
            );
        }
        match rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("expected a lag notice, got {other:?}"),
        }
        assert_eq!(rx.recv().await.unwrap().name.as_deref(), Some("E10"));
        assert_eq!(
            i.ring.lock().unwrap().len(),
            RING_CAPACITY,
            "the ring stays bounded"
        );
    }
}
