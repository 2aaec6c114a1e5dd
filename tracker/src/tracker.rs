//! The tracker's state and what happens to a message from the API call to the
//! collector's answer: build → queue (mirrored to storage) → batch → send → retry or
//! forget. Consent and the page lifecycle (hidden, left, restored) steer it.
//!
//! The state is a single global (a page has one tracker). Every entry point borrows it
//! with `try_borrow_mut` and silently does nothing on re-entry, so a host callback that
//! calls the tracker from inside the tracker can never panic.

use crate::backoff::{self, Verdict};
use crate::config::{Config, Consent, KEEPALIVE_MAX};
use crate::engagement::Engagement;
use crate::host::Host;
use crate::message::{context_json, Msg, Page};
use crate::queue::{self, Queue};
use crate::session::Session;
use crate::storage::{Store, LOCAL, SESSION};
use crate::{text, transport, url};
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

/// The collector's per-event limit is 32 KB; leave room for the batch envelope.
pub const MAX_EVENT_BYTES: usize = 32_000;

const K_ANON: &str = "_cs.aid";
const K_USER: &str = "_cs.uid";
const K_SESSION: &str = "_cs.session";
const K_QUEUE: &str = "_cs.q.";

pub struct State {
    pub host: Host,
    pub cfg: Config,
    consent: Consent,
    /// Where identifiers and the queue persist; `Store::none()` unless consent is granted.
    store: Store,
    anon: String,
    user: Option<String>,
    session: Session,
    /// The per-browser context fields, read on first use (`Intl` costs 20+ ms the first
    /// time a page touches it, so it stays off the init path).
    statics: String,
    queue: Queue,
    /// The batch being fetched.
    inflight: Vec<String>,
    sending: bool,
    /// Consecutive failed attempts and the time before which no retry is made.
    attempt: u32,
    retry_at: f64,
    timer: Option<f64>,
    /// Whether `flush()` promises wait for the queue to drain.
    waiting: bool,
    warned: bool,
    /// `pagehide` was seen: the page is being left (until a bfcache `pageshow`).
    left: bool,
    /// How many messages at the front of the queue a beacon has already carried since the
    /// last fetch: they stay queued (a beacon is never acknowledged) but are not beaconed
    /// twice.
    beaconed: usize,
    /// This page's storage key for its queue.
    queue_key: String,
    /// The last page view's URL (for SPA de-duplication) and its referrer.
    pub page_url: String,
    referrer: String,
    pub engagement: Engagement,
}

struct Global(RefCell<Option<State>>);
// SAFETY: wasm32-unknown-unknown without atomics is single-threaded; on other targets the
// global is never touched (only pure modules run there).
unsafe impl Sync for Global {}
static STATE: Global = Global(RefCell::new(None));

/// Runs `f` on the tracker state; `None` before `start` or on re-entry.
pub fn with<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    let mut g = STATE.0.try_borrow_mut().ok()?;
    g.as_mut().map(f)
}

pub fn started() -> bool {
    STATE.0.try_borrow().map(|g| g.is_some()).unwrap_or(true)
}

pub fn install(s: State) {
    if let Ok(mut g) = STATE.0.try_borrow_mut() {
        // The previous value is None (start runs once); forgetting it spares the module
        // the State destructor.
        core::mem::forget(g.replace(s));
    }
}

impl State {
    pub fn new(host: Host, cfg: Config) -> State {
        let now = host.now();
        let mut consent = cfg.consent;
        if host.privacy(cfg.respect_dnt, cfg.respect_gpc) {
            consent = Consent::Denied;
        }
        // Reading what an earlier, consented visit stored is not storing anything new.
        let area = if consent == Consent::Denied {
            Store::none()
        } else {
            Store::open(&host, area(&cfg))
        };
        let anon = area
            .get(&host, K_ANON)
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| host.uuid());
        let user = area.get(&host, K_USER).filter(|u| !u.is_empty());
        let session = area
            .get(&host, K_SESSION)
            .and_then(|s| Session::decode(&s))
            .unwrap_or(Session { id: now, last: 0.0 });
        let mut queue_key = String::from(K_QUEUE);
        queue_key.push_str(text::sub(&host.uuid(), 0, 8));
        let mut s = State {
            queue: Queue::new(cfg.max_queue_events, cfg.max_queue_bytes),
            consent: Consent::Pending,
            store: Store::none(),
            anon,
            user,
            session,
            statics: String::new(),
            inflight: Vec::new(),
            sending: false,
            attempt: 0,
            retry_at: 0.0,
            timer: None,
            waiting: false,
            warned: false,
            left: false,
            beaconed: 0,
            queue_key,
            page_url: String::new(),
            referrer: host.referrer(),
            engagement: Engagement::new(now, host.visible()),
            cfg,
            host,
        };
        s.set_consent(consent);
        s
    }

    fn granted(&self) -> bool {
        self.consent == Consent::Granted
    }

    /// Applies a consent decision: granting persists and starts sending; denying erases
    /// the queue and every stored tracker key.
    pub fn set_consent(&mut self, c: Consent) {
        if self.consent == Consent::Denied && c != Consent::Denied {
            // Identifiers from before the denial are gone; start fresh.
            self.anon = self.host.uuid();
            self.user = None;
        }
        self.consent = c;
        match c {
            Consent::Granted => {
                self.store = Store::open(&self.host, area(&self.cfg));
                self.store.set(&self.host, K_ANON, &self.anon);
                if let Some(u) = &self.user {
                    self.store.set(&self.host, K_USER, u);
                }
                self.adopt_orphans();
                self.persist(false);
                self.flush_soon();
            }
            Consent::Pending => self.store = Store::none(),
            Consent::Denied => {
                self.queue.clear();
                self.store = Store::none();
                Store::wipe(&self.host);
                self.resolve_waiters(false);
            }
        }
    }

    // ----- building messages -----

    /// Builds one message and queues it. `fields` are the type-specific string fields,
    /// `payload` the properties/traits object (JSON text).
    pub fn enqueue(&mut self, kind: &str, fields: &[(&str, &str)], payload: Option<(&str, &str)>) {
        self.enqueue_with(kind, fields, payload, true);
    }

    fn enqueue_with(
        &mut self,
        kind: &str,
        fields: &[(&str, &str)],
        payload: Option<(&str, &str)>,
        may_flush: bool,
    ) {
        if self.consent == Consent::Denied {
            return;
        }
        let h = &self.host;
        if self.statics.is_empty() {
            self.statics = h.statics();
        }
        self.session.touch(h.now());
        self.store.set(h, K_SESSION, &self.session.encode());
        let page_url = url::redact(&h.href(), &self.cfg.redact);
        let referrer = url::redact(&self.referrer, &self.cfg.redact);
        let title = h.title();
        let page = Page {
            url: &page_url,
            path: url::path(&page_url),
            search: url::search(&page_url),
            title: &title,
            referrer: &referrer,
        };
        let campaign = url::campaign_json(page.search, |v| h.decode(v));
        let context = context_json(
            &page,
            campaign.as_deref(),
            self.session.id as u64,
            &self.statics,
        );
        let id = h.uuid();
        let ts = h.iso();
        let json = Msg {
            kind,
            message_id: &id,
            timestamp: &ts,
            anonymous_id: &self.anon,
            user_id: self.user.as_deref(),
            fields,
            payload,
            context: &context,
        }
        .to_json();
        if json.len() > MAX_EVENT_BYTES {
            h.warn("clickstream: event over 32 KB dropped");
            return;
        }
        self.queue.push(json);
        self.persist(false);
        if !may_flush {
            return;
        }
        if self.queue.len() >= self.cfg.flush_at || self.queue.bytes() >= self.cfg.max_batch_bytes {
            self.flush();
        } else {
            self.flush_soon();
        }
    }

    /// A page view. The URL it was taken on becomes the referrer of the next one (SPA).
    pub fn page(&mut self, name: Option<&str>, props: Option<&str>) {
        let href = url::redact(&self.host.href(), &self.cfg.redact);
        if !self.page_url.is_empty() && self.page_url != href {
            self.referrer = core::mem::take(&mut self.page_url);
        }
        self.page_url = href;
        let fields: &[(&str, &str)] = match name {
            Some(n) => &[("name", n)],
            None => &[],
        };
        self.enqueue("page", fields, Some(("properties", props.unwrap_or("{}"))));
    }

    pub fn identify(&mut self, user: Option<String>, traits: Option<&str>) {
        if let Some(u) = user {
            self.store.set(&self.host, K_USER, &u);
            self.user = Some(u);
        }
        self.enqueue("identify", &[], traits.map(|t| ("traits", t)));
    }

    pub fn alias(&mut self, new_id: String) {
        let previous = self.user.clone().unwrap_or_else(|| self.anon.clone());
        self.store.set(&self.host, K_USER, &new_id);
        self.user = Some(new_id);
        self.enqueue("alias", &[("previousId", &previous)], None);
    }

    /// Forgets the visitor: new anonymousId, no userId, new session.
    pub fn reset(&mut self) {
        self.user = None;
        self.anon = self.host.uuid();
        self.session = Session {
            id: self.host.now(),
            last: 0.0,
        };
        self.store.remove(&self.host, K_USER);
        self.store.remove(&self.host, K_SESSION);
        self.store.set(&self.host, K_ANON, &self.anon);
    }

    /// Queues the engagement event for the page view being left or hidden, if any. Once the
    /// page is left, the report on `pagehide` is the last: Chrome's `visibilitychange` that
    /// may follow carries only the milliseconds between the two events.
    pub fn report_engagement(&mut self) {
        if !self.cfg.auto_engagement || self.left || self.page_url.is_empty() {
            return;
        }
        if let Some((ms, depth)) = self.engagement.report(self.host.now()) {
            let mut p = String::new();
            crate::json::Obj::new(&mut p)
                .num("engagedMs", ms)
                .num("scrollDepth", depth as u64)
                .str("url", &self.page_url)
                .end();
            self.enqueue_with(
                "track",
                &[("event", "Page Engagement")],
                Some(("properties", &p)),
                false,
            );
        }
    }

    // ----- persistence -----

    /// Mirrors everything not yet acknowledged by a 2xx to storage: the batch in flight (a
    /// keepalive fetch can still be cancelled with the page) and what beacons carried (they
    /// are never acknowledged). The next page load adopts and resends it; the collector
    /// drops the copies that did arrive by messageId. (The `o` mark written when the page is
    /// left tells trackers before 0.2.0, still open in other tabs, to adopt it at once.)
    fn persist(&mut self, leaving: bool) {
        if !self.granted() {
            return;
        }
        // Chrome may fire visibilitychange after pagehide: stay "leaving" once left.
        self.left |= leaving;
        let leaving = self.left;
        let inflight: &[String] = &self.inflight;
        if self.queue.is_empty() && inflight.is_empty() {
            self.store.remove(&self.host, &self.queue_key);
            return;
        }
        let mut text = crate::json::u64_str(self.host.now() as u64);
        text.push_str(if leaving { " o\n" } else { " l\n" });
        text.push_str(&queue::encode(inflight.iter().chain(self.queue.iter())));
        self.store.set(&self.host, &self.queue_key, &text);
    }

    /// Takes over every queue other pages left in storage. Not only those marked on
    /// `pagehide`: Chromium sometimes ends a closed page without running it (one visit in
    /// 30-40 of `tests/browser/delivery.test.js`), and its events must still go out on the
    /// next page load. A queue of a page still open elsewhere is sent twice (that page
    /// keeps its own copy); the collector stores each event once. The same event held in
    /// two queues is taken once.
    fn adopt_orphans(&mut self) {
        let mut adopted: Vec<String> = Vec::new();
        let keys = self.store.keys(&self.host, K_QUEUE);
        for key in text::split(&keys, b'\n') {
            if key.is_empty() || key == self.queue_key {
                continue;
            }
            let Some(t) = self.store.get(&self.host, key) else {
                continue;
            };
            self.store.remove(&self.host, key);
            let body = text::split_once(&t, b'\n').map_or("", |(_, body)| body);
            for m in queue::decode(body) {
                if !adopted.contains(&m) && !self.queue.iter().any(|q| *q == m) {
                    adopted.push(m);
                }
            }
        }
        if !adopted.is_empty() {
            self.queue.unshift(adopted);
        }
    }

    /// Back from the back/forward cache: if another page adopted what this one left,
    /// forget it here; otherwise take it back.
    pub fn restored(&mut self) {
        self.left = false;
        if self.granted() && self.store.get(&self.host, &self.queue_key).is_none() {
            self.queue.clear();
        }
        self.persist(false);
        self.flush_soon();
    }

    // ----- sending -----

    fn url(&self) -> String {
        let mut u = self.cfg.endpoint.clone();
        u.push_str("/v1/batch");
        u
    }

    fn body_for(&mut self, max: usize) -> (Vec<String>, String) {
        let sent_at = self.host.iso();
        let envelope = queue::body([].iter(), &sent_at, &self.cfg.write_key).len();
        let batch = self.queue.take(max, envelope);
        let body = queue::body(batch.iter(), &sent_at, &self.cfg.write_key);
        (batch, body)
    }

    fn schedule(&mut self, ms: f64) {
        if let Some(t) = self.timer.take() {
            self.host.clear(t);
        }
        self.timer = Some(self.host.timer(ms));
    }

    /// Makes sure a flush happens within the flush interval.
    fn flush_soon(&mut self) {
        if self.timer.is_none() && !self.queue.is_empty() && self.granted() {
            self.schedule(self.cfg.flush_interval_ms);
        }
    }

    /// The flush timer fired.
    pub fn tick(&mut self) {
        self.timer = None;
        self.flush();
    }

    /// Sends the oldest batch with fetch, unless a send is in flight, consent is
    /// missing, or a retry is pending.
    pub fn flush(&mut self) {
        if !self.granted() {
            self.resolve_waiters(false);
            return;
        }
        if self.sending {
            return;
        }
        let now = self.host.now();
        if now < self.retry_at {
            if self.timer.is_none() {
                self.schedule(self.retry_at - now);
            }
            self.resolve_waiters(false);
            return;
        }
        if self.queue.is_empty() {
            self.resolve_waiters(true);
            return;
        }
        let (batch, body) = self.body_for(self.cfg.max_batch_bytes);
        self.beaconed = 0;
        self.inflight = batch;
        self.sending = true;
        self.persist(false);
        // Retries go without keepalive: while the collector is failing, a request need not
        // outlive the page (the batch is in storage for the next load either way).
        transport::post(&self.host, &self.url(), &body, self.attempt == 0);
    }

    /// The batch fetch got an answer (status 0: a network error).
    pub fn on_outcome(&mut self, o: transport::Outcome) {
        if !self.sending {
            return;
        }
        self.sending = false;
        let batch = core::mem::take(&mut self.inflight);
        let verdict = backoff::verdict(o.status);
        match verdict {
            Verdict::Done => {
                self.attempt = 0;
                self.retry_at = 0.0;
            }
            Verdict::Retry => {
                self.attempt += 1;
                let mut delay = backoff::delay_ms(self.attempt, self.host.random());
                if let Some(ra) = o.retry_after_ms {
                    delay = delay.max(ra);
                }
                self.retry_at = self.host.now() + delay;
                self.queue.unshift(batch);
                self.schedule(delay);
            }
            Verdict::Drop => {
                self.attempt = 0;
                self.retry_at = 0.0;
                if !self.warned {
                    self.warned = true;
                    let mut m =
                        String::from("clickstream: the collector refused a batch with HTTP ");
                    crate::json::push_u64(&mut m, o.status as u64);
                    m.push_str("; its events were dropped and will not be retried");
                    self.host.warn(&m);
                }
            }
        }
        self.persist(false);
        if verdict == Verdict::Retry {
            self.resolve_waiters(false);
        } else if self.waiting
            || self.queue.len() >= self.cfg.flush_at
            || self.queue.bytes() >= self.cfg.max_batch_bytes
        {
            self.flush();
        } else {
            self.flush_soon();
        }
    }

    /// `flush()` from the API: send now, and settle its promise when done.
    pub fn flush_now(&mut self) {
        self.waiting = true;
        self.flush();
    }

    fn resolve_waiters(&mut self, ok: bool) {
        if core::mem::take(&mut self.waiting) {
            self.host.settle(ok);
        }
    }

    /// The page is being hidden (`leaving == false`) or left: queue the engagement event
    /// and hand what no beacon has carried yet to `sendBeacon`, unless the collector is
    /// failing. A beacon the browser accepts may still never arrive (the page's process
    /// ends first), and nothing says whether it did: so everything stays queued and
    /// stored until a fetch's 2xx, and goes out again with the next flush or page load.
    pub fn hide(&mut self, leaving: bool) {
        self.report_engagement();
        if !self.granted() {
            return;
        }
        if self.attempt == 0 {
            let url = self.url();
            let sent_at = self.host.iso();
            let key = &self.cfg.write_key;
            let envelope = queue::body([].iter(), &sent_at, key).len();
            while self.beaconed < self.queue.len() {
                let n = self.queue.fitting(self.beaconed, KEEPALIVE_MAX, envelope);
                let body = queue::body(self.queue.slice(self.beaconed, n), &sent_at, key);
                if !self.host.beacon(&url, &body) {
                    break;
                }
                self.beaconed += n;
            }
        }
        self.persist(leaving);
    }

    /// `{queued, inflight, dropped, anonymousId, userId, consent}` as JSON text.
    pub fn stats(&self) -> String {
        let mut s = String::new();
        crate::json::Obj::new(&mut s)
            .num("queued", self.queue.len() as u64)
            .num("inflight", self.inflight.len() as u64)
            .num("dropped", self.queue.dropped as u64)
            .str("anonymousId", &self.anon)
            .opt("userId", self.user.as_deref())
            .str(
                "consent",
                match self.consent {
                    Consent::Granted => "granted",
                    Consent::Pending => "pending",
                    Consent::Denied => "denied",
                },
            )
            .end();
        s
    }
}

/// The storage area the config asks for.
fn area(cfg: &Config) -> u8 {
    if cfg.cookieless {
        SESSION
    } else {
        LOCAL
    }
}
