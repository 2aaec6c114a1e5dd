//! What the double received. Tests read these records to check what the client put on the wire;
//! the binary prints them as NDJSON. Recording outlives restarts, so a test can kill the double,
//! start it again and still see every event it accepted before.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value as Json};
use tokio::sync::Notify;

/// One event as the double accepted it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    /// The bytes of the event's Data body (several Data sections are concatenated).
    pub body: Vec<u8>,
    /// `properties.message-id`, rendered as a string (UUIDs hyphenated, binary as hex).
    pub message_id: Option<String>,
    /// The `x-opt-partition-key` message annotation.
    pub partition_key: Option<String>,
    /// `properties.content-type`.
    pub content_type: Option<String>,
    /// Application properties, converted to JSON values.
    pub properties: BTreeMap<String, Json>,
    /// The address the client's sender link attached to, e.g. `amqps://ns/hub/Partitions/1`.
    pub target: String,
    /// The partition id when the link targeted `.../Partitions/N`; `None` for the hub itself.
    pub partition: Option<String>,
    /// Whether the event arrived inside a batched transfer (message format 0x80013700).
    pub batched: bool,
    /// When the double accepted it.
    pub received_at: SystemTime,
}

impl ReceivedEvent {
    /// The body as UTF-8 (lossy), for assertions on JSON bodies.
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// One NDJSON line: the body as a string when it is UTF-8, else base64.
    pub fn to_json(&self) -> Json {
        use base64::Engine as _;
        let ts = self
            .received_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut line = json!({
            "received_at_ms": ts.as_millis() as u64,
            "target": self.target,
            "partition": self.partition,
            "batched": self.batched,
            "message_id": self.message_id,
            "partition_key": self.partition_key,
            "content_type": self.content_type,
            "properties": self.properties,
        });
        match std::str::from_utf8(&self.body) {
            Ok(s) => line["body"] = Json::String(s.to_owned()),
            Err(_) => {
                line["body_base64"] =
                    Json::String(base64::engine::general_purpose::STANDARD.encode(&self.body))
            }
        }
        line
    }
}

/// A `$cbs` put-token the double granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// `servicebus.windows.net:sastoken` (SAS from a connection string) or `jwt` (Entra ID).
    pub token_type: String,
    /// The entity the token is for, e.g. `amqps://ns.servicebus.windows.net/hub`.
    pub audience: String,
}

/// The shared log of accepted events, with a way to wait for more.
#[derive(Debug, Default)]
pub struct Recorder {
    /// When set, events only go to the tap and are counted, not kept (long benchmark runs).
    forget: std::sync::atomic::AtomicBool,
    count: std::sync::atomic::AtomicUsize,
    events: Mutex<Vec<ReceivedEvent>>,
    transfers: Mutex<u64>,
    tokens: Mutex<Vec<TokenGrant>>,
    notify: Notify,
    tap: Mutex<Option<tokio::sync::mpsc::UnboundedSender<ReceivedEvent>>>,
}

impl Recorder {
    pub(crate) fn push(&self, batch: Vec<ReceivedEvent>) {
        if let Some(tap) = self.tap.lock().unwrap().as_ref() {
            for event in &batch {
                let _ = tap.send(event.clone());
            }
        }
        *self.transfers.lock().unwrap() += 1;
        self.count
            .fetch_add(batch.len(), std::sync::atomic::Ordering::SeqCst);
        if !self.forget.load(std::sync::atomic::Ordering::Relaxed) {
            self.events.lock().unwrap().extend(batch);
        }
        self.notify.notify_waiters();
    }

    /// A copy of everything accepted so far, in arrival order.
    pub fn events(&self) -> Vec<ReceivedEvent> {
        self.events.lock().unwrap().clone()
    }

    /// How many events were accepted (kept or not).
    pub fn len(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stop keeping events in memory; they still reach the tap and are counted.
    pub fn forget_events(&self) {
        self.forget
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many transfers (single events or batches) were accepted.
    pub fn accepted_transfers(&self) -> u64 {
        *self.transfers.lock().unwrap()
    }

    /// Every accepted event is also sent to this channel (the binary prints from it).
    pub fn set_tap(&self, tap: tokio::sync::mpsc::UnboundedSender<ReceivedEvent>) {
        *self.tap.lock().unwrap() = Some(tap);
    }

    pub(crate) fn push_token(&self, grant: TokenGrant) {
        self.tokens.lock().unwrap().push(grant);
    }

    /// Every put-token the double granted, in order.
    pub fn tokens(&self) -> Vec<TokenGrant> {
        self.tokens.lock().unwrap().clone()
    }

    /// Stops sending to the tap, so its receiver sees the end.
    pub fn close_tap(&self) {
        self.tap.lock().unwrap().take();
    }

    /// Waits until at least `n` events were accepted, or fails after `timeout`.
    pub async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let events = self.events.lock().unwrap();
                if events.len() >= n {
                    return Ok(events.clone());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                anyhow::bail!(
                    "the double received {} events, expected at least {n} within {timeout:?}",
                    self.len()
                );
            }
        }
    }
}
