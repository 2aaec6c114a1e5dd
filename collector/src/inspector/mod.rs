//! The live inspector: every accepted and rejected event, streamed to browsers over
//! Server-Sent Events (`/debug/stream`), kept in a small ring for `GET /debug/events`, and
//! shown by the `/inspector` page. Like Segment's debugger or Snowplow Micro.
//!
//! It costs nothing when disabled (ingest holds `None`). When enabled, ingest only pushes a
//! cheap entry into a bounded broadcast channel, which never waits: a slow viewer misses
//! entries and is told how many (`dropped`), and ingest never slows down for it.

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
const CHANNEL_CAPACITY: usize = 1024;
/// Entries kept for `GET /debug/events`.
const RING_CAPACITY: usize = 1000;

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
    /// The enriched event (accepted) or the event as received (rejected).
    pub event: Box<RawValue>,
}

impl Entry {
    fn new(status: &'static str, json: &[u8], reason: Option<String>) -> Entry {
        let (meta, json) = EventMeta::split(json);
        let event = std::str::from_utf8(json)
            .ok()
            .and_then(|s| RawValue::from_string(s.to_string()).ok())
            .unwrap_or_else(|| RawValue::from_string("null".into()).unwrap());
        Entry {
            status,
            name: meta.event_name().map(Into::into),
            kind: meta.kind.map(Into::into),
            time: crate::ingest::enrich::format_time(chrono::Utc::now()),
            anonymous_id: meta.anonymous_id.map(Into::into),
            user_id: meta.user_id.map(Into::into),
            message_id: meta.message_id.map(Into::into),
            reason,
            event,
        }
    }
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

    pub fn accepted(&self, payloads: &[Bytes]) {
        for p in payloads {
            self.publish(Entry::new("accepted", p, None));
        }
    }

    pub fn rejected(&self, raw: &[u8], reason: &str) {
        self.publish(Entry::new("rejected", raw, Some(reason.to_string())));
    }

    /// Recent entries matching `filter`, oldest first, at most `limit`.
    pub fn recent(&self, filter: &Filter, limit: usize) -> Vec<Arc<Entry>> {
        let ring = self.ring.lock().unwrap();
        let mut out: Vec<_> = ring
            .iter()
            .rev()
            .filter(|e| filter.matches(e))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
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
        i.accepted(&[Bytes::from(
            r#"{"type":"track","event":"Buy","anonymousId":"a1","messageId":"m1"}"#,
        )]);
        i.accepted(&[Bytes::from(
            r#"{"type":"page","name":"Home","anonymousId":"a2"}"#,
        )]);
        i.rejected(
            br#"{"type":"track"}"#,
            "track needs a non-empty string `event`",
        );
        let all = i.recent(&Filter::default(), 10);
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].status, "rejected");
        assert_eq!(
            all[2].reason.as_deref(),
            Some("track needs a non-empty string `event`")
        );
        let f = Filter::from_query(Some("type=track&event=Buy"));
        let hits = i.recent(&f, 10);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].message_id.as_deref(), Some("m1"));
        assert_eq!(
            i.recent(&Filter::from_query(Some("anonymousId=a2")), 10)[0]
                .name
                .as_deref(),
            Some("Home")
        );
        assert_eq!(
            i.recent(&Filter::default(), 1)[0].status,
            "rejected",
            "limit keeps the newest"
        );
    }

    #[tokio::test]
    async fn a_slow_viewer_is_told_what_it_missed() {
        let i = Inspector::new();
        let mut rx = i.subscribe();
        for n in 0..(CHANNEL_CAPACITY + 10) {
            i.accepted(&[Bytes::from(format!(
                r#"{{"type":"track","event":"E{n}","anonymousId":"a"}}"#
            ))]);
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
