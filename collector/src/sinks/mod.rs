//! Sinks drain the spool. Each sink runs in its own task with its own cursor, so a slow or
//! broken sink never blocks ingest or the other sinks; it only lets the spool grow up to its
//! disk budget.
//!
//! A sink implements [`Sink`]; [`drain`] owns everything generic: recovering the sink (retried
//! with backoff until it succeeds), reading the spool from the sink's cursor, retrying with
//! backoff, committing the cursor after durable delivery, metrics, health, and a clean close
//! on shutdown. Spool records that fail their checksum are quarantined: written to the dead
//! letters (as far as they can be read), counted, logged once, and passed; the sink goes on.

use std::future::Future;
use std::time::Duration;

use crate::spool::Record;

/// A destination for spooled events.
///
/// The contract: `deliver` is called with consecutive records in spool order. `Ok(())` means
/// every record is durably delivered (or was dead-lettered by the sink with a reason); the
/// drain loop then persists the cursor past them. On `Err`, `records[..delivered]` are
/// committed and the rest are offered again after a backoff, so delivery is at-least-once.
pub trait Sink: Send + 'static {
    /// Short stable name: used for the cursor file, metrics labels and logs.
    fn name(&self) -> &'static str;

    /// Called once before the first delivery. A sink that records spool positions in its own
    /// output (the capture sink does) returns the sequence number to resume from; `None`
    /// means "trust the spool cursor".
    fn recover(&mut self) -> impl Future<Output = anyhow::Result<Option<u64>>> + Send {
        async { Ok(None) }
    }

    /// Deliver `records` (non-empty, in order).
    fn deliver<'a>(
        &'a mut self,
        records: &'a [Record],
    ) -> impl Future<Output = Result<(), SinkError>> + Send + 'a;

    /// For a sink whose deliveries become durable later (files uploaded when they roll): the
    /// first sequence number it has taken but not yet made durable, or the one after all it
    /// has taken. The cursor never moves past it, so the spool keeps those records. `None`:
    /// every delivery is durable when `deliver` returns.
    fn durable_until(&self) -> Option<u64> {
        None
    }

    /// How records are grouped into deliveries.
    fn batching(&self) -> Batching {
        Batching::default()
    }

    /// Called about once a second, busy or idle: time-based work such as rolling files.
    fn tick(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }

    /// Called once on shutdown after the last delivery: finish files, close connections.
    fn close(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }
}

/// How many records one `deliver` call gets, and how long to wait for them.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub max_records: usize,
    /// About the most payload bytes.
    pub max_bytes: usize,
    /// How long to let records gather before a delivery smaller than `max_records`. Every
    /// delivery costs fixed work (an fsync, a block header, a network round trip, and the
    /// drain loop's cursor fsync), so a sink whose output is not read live trades this much
    /// latency for fewer, larger deliveries. Zero delivers at once.
    pub linger: Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            max_records: 2000,
            max_bytes: 4 << 20,
            linger: Duration::ZERO,
        }
    }
}

/// A failed (or partly failed) delivery.
#[derive(Debug)]
pub struct SinkError {
    /// How many records from the front of the slice were durably delivered anyway.
    pub delivered: usize,
    pub error: anyhow::Error,
    /// The destination asked us to wait at least this long (throttling).
    pub retry_after: Option<Duration>,
}

impl SinkError {
    pub fn transient(error: impl Into<anyhow::Error>) -> Self {
        SinkError {
            delivered: 0,
            error: error.into(),
            retry_after: None,
        }
    }
}

pub mod capture;
pub mod eventhubs;
pub mod meta;
pub mod stdout;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::deadletter::{DeadLetter, DeadLetters};
use crate::shutdown::Shutdown;
use crate::spool::{Corrupt, SpoolReader};

/// Is a sink currently delivering? Readiness reads it.
#[derive(Clone, Debug)]
pub struct SinkHealth {
    pub name: &'static str,
    healthy: Arc<AtomicBool>,
    /// Its task ended before shutdown (a panic): nothing delivers any more.
    stopped: Arc<AtomicBool>,
    /// See [`SinkHealth::outage_tolerant`].
    tolerant: bool,
}

impl SinkHealth {
    pub fn new(name: &'static str) -> Self {
        SinkHealth {
            name,
            healthy: Arc::new(AtomicBool::new(true)),
            stopped: Arc::new(AtomicBool::new(false)),
            tolerant: false,
        }
    }
    /// For a remote sink shared by every collector (Event Hubs): the spool exists to absorb
    /// its outages, so while it fails the collector stays ready until the spool passes its
    /// high-water mark, instead of every collector leaving the load balancer at once.
    pub fn outage_tolerant(name: &'static str) -> Self {
        SinkHealth {
            tolerant: true,
            ..Self::new(name)
        }
    }
    /// Does this sink's state alone make the collector unready?
    pub fn blocks_readiness(&self) -> bool {
        self.stopped.load(Ordering::Relaxed) || (!self.tolerant && !self.is_healthy())
    }
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.stopped.load(Ordering::Relaxed)
    }
    fn set(&self, ok: bool) {
        self.healthy.store(ok, Ordering::Relaxed);
    }
}

/// What every sink's task shares: the spool, the shutdown signal, the grace period and the
/// dead letters.
pub struct Running<'a> {
    pub spool: &'a crate::spool::Spool,
    pub shutdown: &'a Shutdown,
    pub grace: Duration,
    pub dead_letters: &'a DeadLetters,
}

impl Running<'_> {
    /// Start `sink`'s [`drain`] from its cursor. A panic in it (a bug here or in a library)
    /// is logged and marks the sink stopped, which makes the collector unready, instead of
    /// delivery ending unseen.
    pub fn spawn<S: Sink>(
        &self,
        sink: S,
        health: SinkHealth,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let name = sink.name();
        let inner = tokio::spawn(drain(
            sink,
            self.spool.reader(name)?,
            health.clone(),
            self.shutdown.clone(),
            self.grace,
            self.dead_letters.clone(),
        ));
        Ok(tokio::spawn(async move {
            if let Err(e) = inner.await {
                health.stopped.store(true, Ordering::Relaxed);
                tracing::error!(sink = name, error = %e, "sink task ended unexpectedly; nothing delivers from this sink until a restart");
            }
        }))
    }
}

/// Exponential backoff with full jitter.
struct Backoff {
    attempt: u32,
}

impl Backoff {
    const BASE: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(30);

    fn next(&mut self) -> Duration {
        let cap = Self::BASE
            .saturating_mul(1 << self.attempt.min(16))
            .min(Self::MAX);
        self.attempt += 1;
        let nanos = cap.as_nanos() as u64;
        Duration::from_nanos(nanos / 2 + rand_below(nanos / 2 + 1))
    }
}

fn rand_below(n: u64) -> u64 {
    let r = uuid::Uuid::new_v4().as_u64_pair().0;
    r % n.max(1)
}

/// Run one sink until shutdown: read from its cursor, deliver, commit, retry on failure.
/// After shutdown is signalled (the server has stopped and the spool is closed), keep
/// delivering until caught up or `grace` runs out, then close the sink.
pub async fn drain<S: Sink>(
    mut sink: S,
    mut reader: SpoolReader,
    health: SinkHealth,
    shutdown: Shutdown,
    grace: Duration,
    dead_letters: DeadLetters,
) {
    let name = sink.name();
    let mut backoff = Backoff { attempt: 0 };
    loop {
        match sink.recover().await {
            Ok(Some(seq)) if seq > reader.position() => {
                tracing::info!(
                    sink = name,
                    from = reader.position(),
                    to = seq,
                    "sink output is ahead of its cursor; skipping records it already holds"
                );
                reader.seek(seq);
                if let Err(e) = reader.commit(reader.position()) {
                    tracing::error!(sink = name, error = %e, "cursor commit failed");
                }
                break;
            }
            Ok(_) => break,
            Err(e) => {
                health.set(false);
                let wait = backoff.next();
                tracing::error!(sink = name, error = %format!("{e:#}"), retry_in_ms = wait.as_millis() as u64, "sink recovery failed; will retry");
                let mut stopping = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopping.wait() => return,
                }
            }
        }
    }
    health.set(true);
    let ctx = Context {
        health: &health,
        shutdown: &shutdown,
        dead_letters: &dead_letters,
    };
    tracing::info!(
        sink = name,
        position = reader.position(),
        head = reader.head(),
        "sink started"
    );
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = shutdown.clone();
    loop {
        tokio::select! {
            _ = stopping.wait() => break,
            _ = tick.tick() => tick_sink(&mut sink, &mut reader).await,
            _ = reader.wait() => {
                let batching = sink.batching();
                if !batching.linger.is_zero() {
                    let full = batching.max_records as u64;
                    tokio::select! {
                        _ = stopping.wait() => {}
                        _ = tokio::time::timeout(batching.linger, reader.wait_for(full)) => {}
                    }
                }
                deliver_available(&mut sink, &mut reader, &ctx, &mut tick, None).await;
            }
        }
    }
    let now = Instant::now();
    let deadline = now.checked_add(grace).unwrap_or(now);
    while reader.position() < reader.head() && Instant::now() < deadline {
        deliver_available(&mut sink, &mut reader, &ctx, &mut tick, Some(deadline)).await;
    }
    if reader.lag() > 0 {
        tracing::warn!(
            sink = name,
            pending = reader.lag(),
            "shutting down with undelivered events; they stay in the spool"
        );
    }
    if let Err(e) = sink.close().await {
        tracing::error!(sink = name, error = %format!("{e:#}"), "sink close failed");
    }
    commit_durable(&sink, &mut reader);
    tracing::info!(sink = name, position = reader.position(), "sink stopped");
}

async fn tick_sink<S: Sink>(sink: &mut S, reader: &mut SpoolReader) {
    if let Err(e) = sink.tick().await {
        tracing::warn!(sink = sink.name(), error = %format!("{e:#}"), "sink tick failed");
    }
    commit_durable(sink, reader);
    metrics::gauge!("collector_sink_lag_events", "sink" => sink.name()).set(reader.lag() as f64);
}

/// Move the cursor to where a sink with delayed durability has made its output durable.
fn commit_durable<S: Sink>(sink: &S, reader: &mut SpoolReader) {
    if let Some(upto) = sink.durable_until() {
        if let Err(e) = reader.commit(upto) {
            tracing::error!(sink = sink.name(), error = %e, "cursor commit failed");
        }
    }
}

/// What a drain loop's steps share.
struct Context<'a> {
    health: &'a SinkHealth,
    shutdown: &'a Shutdown,
    dead_letters: &'a DeadLetters,
}

/// Dead-letter damaged spool records (their bytes as far as they can be read), count them and
/// log each stretch once.
async fn quarantine(sink: &'static str, corrupt: Vec<Corrupt>, dead_letters: &DeadLetters) {
    let mut letters = Vec::with_capacity(corrupt.len());
    for c in corrupt {
        let n = c.seqs.end - c.seqs.start;
        metrics::counter!("collector_spool_records_quarantined_total", "sink" => sink).increment(n);
        tracing::warn!(
            sink,
            segment = c.segment,
            from = c.seqs.start,
            to = c.seqs.end,
            "spool records quarantined: they fail their checksum; what can be read of them goes to the dead letters"
        );
        // Past the record header, and the event header when it is whole, is the event.
        let payload = c
            .bytes
            .get(crate::spool::RECORD_HEADER_LEN..)
            .unwrap_or(&c.bytes);
        let event = match meta::EventMeta::split(payload) {
            (_, json) if !json.is_empty() => json,
            _ => payload,
        };
        let reason = format!(
            "spool records {}..{} of segment {} are damaged (checksum or framing); sink {sink} skipped them",
            c.seqs.start, c.seqs.end, c.segment
        );
        letters.push(DeadLetter::from_bytes("spool", reason, event));
    }
    dead_letters.write(letters).await;
}

/// Read one batch and deliver it, retrying until it is delivered. Before shutdown, retries
/// stop when shutdown fires; after it (`deadline` set), when the deadline passes.
async fn deliver_available<S: Sink>(
    sink: &mut S,
    reader: &mut SpoolReader,
    ctx: &Context<'_>,
    tick: &mut tokio::time::Interval,
    deadline: Option<Instant>,
) {
    let (health, shutdown) = (ctx.health, ctx.shutdown);
    let name = sink.name();
    let batching = sink.batching();
    let records = match reader.read(batching.max_records, batching.max_bytes) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(sink = name, error = %e, "spool read failed");
            health.set(false);
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
    };
    let corrupt = reader.take_corrupt();
    if !corrupt.is_empty() {
        quarantine(name, corrupt, ctx.dead_letters).await;
        if records.is_empty() {
            if let Err(e) = reader.commit(reader.position()) {
                tracing::error!(sink = name, error = %e, "cursor commit failed");
            }
        }
    }
    if records.is_empty() {
        return;
    }
    let mut done = 0;
    let mut backoff = Backoff { attempt: 0 };
    while done < records.len() {
        let started = Instant::now();
        let result = sink.deliver(&records[done..]).await;
        metrics::histogram!("collector_sink_delivery_seconds", "sink" => name)
            .record(started.elapsed().as_secs_f64());
        let (delivered, failure) = match result {
            Ok(()) => (records.len() - done, None),
            Err(e) => (e.delivered.min(records.len() - done), Some(e)),
        };
        if delivered > 0 {
            done += delivered;
            metrics::counter!("collector_sink_events_total", "sink" => name)
                .increment(delivered as u64);
            let mut upto = records[done - 1].seq + 1;
            if let Some(durable) = sink.durable_until() {
                upto = upto.min(durable);
            }
            if let Err(e) = reader.commit(upto) {
                tracing::error!(sink = name, error = %e, "cursor commit failed; records may be delivered again");
            }
        }
        let Some(failure) = failure else {
            health.set(true);
            backoff.attempt = 0;
            continue;
        };
        metrics::counter!("collector_sink_errors_total", "sink" => name).increment(1);
        health.set(false);
        let wait = failure.retry_after.unwrap_or_else(|| backoff.next());
        tracing::warn!(sink = name, error = %format!("{:#}", failure.error), retry_in_ms = wait.as_millis() as u64, "delivery failed; will retry");
        let out_of_time = match deadline {
            Some(d) => Instant::now() + wait > d,
            None => shutdown.is_fired(),
        };
        if out_of_time {
            // The rest stays in the spool: re-read it later or on the next start.
            reader.seek(records[done].seq);
            return;
        }
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        let mut stopping = shutdown.clone();
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                _ = stopping.wait(), if deadline.is_none() => {
                    reader.seek(records[done].seq);
                    return;
                }
                _ = tick.tick() => tick_sink(sink, reader).await,
            }
        }
    }
    metrics::gauge!("collector_sink_lag_events", "sink" => name).set(reader.lag() as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Panics;

    impl Sink for Panics {
        fn name(&self) -> &'static str {
            "panics"
        }
        async fn deliver<'a>(&'a mut self, _: &'a [Record]) -> Result<(), SinkError> {
            panic!("a bug in a sink");
        }
    }

    #[tokio::test]
    async fn a_sink_task_that_panics_makes_the_collector_unready() {
        let dir = tempfile::tempdir().unwrap();
        let spool = crate::spool::Spool::open(&crate::spool::SpoolConfig {
            dir: dir.path().join("spool"),
            max_bytes: 1 << 20,
            segment_bytes: 1 << 16,
            keep_window: true,
        })
        .unwrap();
        let dead = DeadLetters::open(dir.path().join("dead"), 1 << 20).unwrap();
        let (_trigger, shutdown) = crate::shutdown::channel();
        let health = SinkHealth::outage_tolerant("panics");
        let running = Running {
            spool: &spool,
            shutdown: &shutdown,
            grace: Duration::from_secs(1),
            dead_letters: &dead,
        };
        let task = running.spawn(Panics, health.clone()).unwrap();
        assert!(!health.blocks_readiness());
        spool.append(vec![bytes::Bytes::from("{}")]).await.unwrap();
        task.await.unwrap();
        assert!(health.blocks_readiness() && !health.is_healthy());
        spool.close().await;
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff { attempt: 0 };
        let first = b.next();
        assert!(
            first >= Duration::from_millis(50) && first <= Duration::from_millis(100),
            "{first:?}"
        );
        for _ in 0..20 {
            let d = b.next();
            assert!(d <= Backoff::MAX);
        }
        assert!(b.next() >= Backoff::MAX / 2);
    }
}
