//! The relay: turns one `deliver` call into Event Hubs batches and reports exactly which
//! records are safe to commit. Records are routed to partitions by key; each partition's
//! events go out in order in batches filled to the hub's maximum message size, and the
//! partitions' batches are in flight at the same time. An event that can never be accepted
//! (too big for one message, or refused for its content) is dead-lettered with the reason;
//! any other failure stops that partition and the uncommitted rest is retried by the drain
//! loop. Records already delivered past the first failure are remembered, so the retry does
//! not send them twice while this process lives.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use azure_messaging_eventhubs::{EventDataBatchOptions, ProducerClient};
use futures::future::join_all;

use super::client::{connect, Connected};
use super::config::EventHubsConfig;
use super::encode::{encode, Encoded};
use super::outcome::Failure;
use crate::deadletter::{DeadLetter, DeadLetters};
use crate::sinks::meta::EventMeta;
use crate::sinks::SinkError;
use crate::spool::Record;

const STAGE: &str = "sink:eventhubs";

/// What became of one record in this call.
#[derive(Debug, Clone, PartialEq)]
enum Settled {
    Delivered,
    DeadLetter(String),
}

/// One partition's share of a delivery: record indexes in spool order.
struct Lane<'a> {
    partition_id: &'a str,
    items: Vec<(usize, &'a Encoded)>,
}

#[derive(Default)]
struct LaneOutcome {
    settled: Vec<(usize, Settled)>,
    /// Set when the lane stopped early; the rest of its records are not settled.
    failure: Option<Failure>,
    batches: u64,
}

pub struct Relay {
    config: EventHubsConfig,
    connected: Option<Connected>,
    dead_letters: DeadLetters,
    /// Sequence numbers beyond the committed prefix that are already settled.
    settled_ahead: BTreeSet<u64>,
    next_unkeyed: usize,
}

impl Relay {
    pub fn new(config: EventHubsConfig, dead_letters: DeadLetters) -> Self {
        Relay {
            config,
            connected: None,
            dead_letters,
            settled_ahead: BTreeSet::new(),
            next_unkeyed: 0,
        }
    }

    pub async fn deliver(&mut self, records: &[Record]) -> Result<(), SinkError> {
        let first = records[0].seq;
        self.settled_ahead = self.settled_ahead.split_off(&first);
        if self.connected.is_none() {
            let timeout = self.config.timeout;
            match tokio::time::timeout(timeout, connect(&self.config)).await {
                Ok(Ok(c)) => self.connected = Some(c),
                Ok(Err(e)) => return Err(self.transient(format!("{e:#}"))),
                Err(_) => {
                    return Err(self.transient(
                        Failure::timeout("connecting to Event Hubs", timeout).describe(),
                    ))
                }
            }
        }
        let connected = self.connected.as_ref().expect("connected above");

        let encoded: Vec<Option<Encoded>> = records
            .iter()
            .map(|r| (!self.settled_ahead.contains(&r.seq)).then(|| encode(r)))
            .collect();
        let mut lanes: Vec<Lane> = (0..connected.partitions.len())
            .map(|p| Lane {
                partition_id: connected.partitions.id(p),
                items: Vec::new(),
            })
            .collect();
        for (i, e) in encoded.iter().enumerate() {
            if let Some(e) = e {
                let p = connected
                    .partitions
                    .index_for(e.partition_key.as_deref(), self.next_unkeyed);
                if e.partition_key.is_none() {
                    self.next_unkeyed = self.next_unkeyed.wrapping_add(1);
                }
                lanes[p].items.push((i, e));
            }
        }
        let timeout = self.config.timeout;
        let producer = &connected.producer;
        let outcomes = join_all(
            lanes
                .into_iter()
                .filter(|l| !l.items.is_empty())
                .map(|lane| send_lane(producer, lane, timeout)),
        )
        .await;

        let mut status: Vec<Option<Settled>> = records
            .iter()
            .map(|r| {
                self.settled_ahead
                    .contains(&r.seq)
                    .then_some(Settled::Delivered)
            })
            .collect();
        let mut failure: Option<Failure> = None;
        let mut letters = Vec::new();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut relayed = 0u64;
        for outcome in outcomes {
            metrics::counter!("collector_eventhubs_batches_total").increment(outcome.batches);
            for (i, settled) in outcome.settled {
                match &settled {
                    Settled::Delivered => {
                        relayed += 1;
                        if let Some(at) = encoded[i].as_ref().and_then(|e| e.received_at_ms) {
                            let lag_ms = now_ms - at;
                            metrics::histogram!("collector_eventhubs_relay_latency_seconds")
                                .record(lag_ms.max(0) as f64 / 1000.0);
                        }
                    }
                    Settled::DeadLetter(reason) => {
                        letters.push(DeadLetter::from_bytes(
                            STAGE,
                            reason.clone(),
                            EventMeta::split(&records[i].payload).1,
                        ));
                    }
                }
                status[i] = Some(settled);
            }
            if let Some(f) = outcome.failure {
                failure.get_or_insert(f);
            }
        }
        metrics::counter!("collector_eventhubs_events_total").increment(relayed);
        if !letters.is_empty() {
            tracing::warn!(
                count = letters.len(),
                "events Event Hubs can never accept were dead-lettered"
            );
            self.dead_letters.write(letters).await;
        }

        let prefix = status.iter().take_while(|s| s.is_some()).count();
        if prefix == records.len() {
            self.settled_ahead.clear();
            return Ok(());
        }
        for (r, s) in records.iter().zip(&status).skip(prefix) {
            if s.is_some() {
                self.settled_ahead.insert(r.seq);
            }
        }
        let failure = failure.unwrap_or_else(|| Failure::Transient {
            message: "a partition stopped without an error".into(),
            reconnect: false,
        });
        let mut err = self.transient(failure.describe());
        if let Failure::Transient {
            reconnect: true, ..
        } = failure
        {
            self.reconnect();
        }
        err.delivered = prefix;
        Err(err)
    }

    fn transient(&mut self, message: String) -> SinkError {
        metrics::counter!("collector_eventhubs_retries_total").increment(1);
        SinkError::transient(anyhow::anyhow!(message))
    }

    /// Drops the current client; the next delivery opens a fresh connection.
    fn reconnect(&mut self) {
        if let Some(old) = self.connected.take() {
            metrics::counter!("collector_eventhubs_reconnects_total").increment(1);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), old.producer.close()).await;
            });
        }
    }

    pub async fn close(&mut self) {
        if let Some(c) = self.connected.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.producer.close()).await;
        }
    }
}

/// Sends one partition's events in order: fill a batch, send it, repeat.
async fn send_lane(producer: &ProducerClient, lane: Lane<'_>, timeout: Duration) -> LaneOutcome {
    let mut out = LaneOutcome::default();
    let items = &lane.items;
    let mut next = 0;
    while next < items.len() {
        let (in_batch, batch_result) = match fill_and_send(
            producer,
            lane.partition_id,
            &items[next..],
            timeout,
            &mut out,
        )
        .await
        {
            Ok(r) => r,
            Err(f) => {
                out.failure = Some(f);
                return out;
            }
        };
        if in_batch == 0 {
            // The next event does not fit into an empty batch: it can never be sent.
            let (i, e) = items[next];
            let size = azure_core_amqp::AmqpMessage::serialize(&e.message)
                .map(|b| b.len())
                .unwrap_or(0);
            out.settled.push((
                i,
                Settled::DeadLetter(format!(
                    "the event is {size} bytes encoded, more than the event hub's maximum message size"
                )),
            ));
            next += 1;
            continue;
        }
        let sent = &items[next..next + in_batch];
        next += in_batch;
        match batch_result {
            None => out
                .settled
                .extend(sent.iter().map(|(i, _)| (*i, Settled::Delivered))),
            Some(Failure::Rejected { .. }) => {
                // The service refused the batch for its content: find the culprits one by one.
                for &(i, e) in sent {
                    match send_one(producer, lane.partition_id, e, timeout, &mut out).await {
                        None => out.settled.push((i, Settled::Delivered)),
                        Some(f @ Failure::Rejected { .. }) => {
                            out.settled.push((i, Settled::DeadLetter(f.describe())))
                        }
                        Some(f) => {
                            out.failure = Some(f);
                            return out;
                        }
                    }
                }
            }
            Some(f) => {
                out.failure = Some(f);
                return out;
            }
        }
    }
    out
}

/// Fills one batch from the front of `items` and sends it. Returns how many events went in
/// and the send's failure, if any; `Err` when no batch could even be created.
async fn fill_and_send(
    producer: &ProducerClient,
    partition_id: &str,
    items: &[(usize, &Encoded)],
    timeout: Duration,
    out: &mut LaneOutcome,
) -> Result<(usize, Option<Failure>), Failure> {
    let options = EventDataBatchOptions {
        partition_id: Some(partition_id.to_owned()),
        ..Default::default()
    };
    let batch = match tokio::time::timeout(timeout, producer.create_batch(Some(options))).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(Failure::classify(&e)),
        Err(_) => return Err(Failure::timeout("creating a batch", timeout)),
    };
    let mut count = 0;
    for (_, e) in items {
        match batch.try_add_amqp_message(e.message.clone(), None) {
            Ok(true) => count += 1,
            Ok(false) => break,
            Err(err) => {
                return Err(Failure::Transient {
                    message: format!("adding to a batch: {err}"),
                    reconnect: false,
                })
            }
        }
    }
    if count == 0 {
        return Ok((0, None));
    }
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, producer.send_batch(batch, None)).await;
    out.batches += 1;
    metrics::histogram!("collector_eventhubs_send_seconds").record(started.elapsed().as_secs_f64());
    Ok((
        count,
        match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(note(Failure::classify(&e))),
            Err(_) => Some(Failure::timeout("sending a batch", timeout)),
        },
    ))
}

/// Sends a single event as a batch of one.
async fn send_one(
    producer: &ProducerClient,
    partition_id: &str,
    e: &Encoded,
    timeout: Duration,
    out: &mut LaneOutcome,
) -> Option<Failure> {
    match fill_and_send(
        producer,
        partition_id,
        std::slice::from_ref(&(0, e)),
        timeout,
        out,
    )
    .await
    {
        Ok((1, failure)) => failure,
        Ok(_) => Some(Failure::Rejected {
            condition: "client:too-large".into(),
            description: too_large(e),
        }),
        Err(f) => Some(f),
    }
}

fn too_large(e: &Encoded) -> String {
    let size = azure_core_amqp::AmqpMessage::serialize(&e.message)
        .map(|b| b.len())
        .unwrap_or(0);
    format!("the event is {size} bytes encoded, too big for one message under the event hub's maximum message size")
}

fn note(f: Failure) -> Failure {
    if let Failure::Rejected { condition, .. } = &f {
        metrics::counter!("collector_eventhubs_rejected_total", "condition" => condition.clone())
            .increment(1);
    }
    f
}
