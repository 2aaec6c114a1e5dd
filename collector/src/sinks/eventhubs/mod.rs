//! The Event Hubs sink: relays spooled events to Azure Event Hubs with the official
//! `azure_messaging_eventhubs` client, so collectors can run anywhere behind a load balancer
//! with Event Hubs as the shared, partitioned backbone (and Event Hubs Capture writing the
//! same Avro layout as the local capture sink).
//!
//! - [`config`]: connection string or Entra ID, hub name, custom endpoint, timeouts.
//! - [`encode`]: one spooled event → one Event Hubs event (body, id, properties, key).
//! - [`partition`]: partition key → partition, as the gateway hashes it.
//! - [`client`]: opening the producer and reading the hub's partitions.
//! - [`outcome`]: which failures condemn events (dead letter) and which are transient.
//! - [`service`]: batching, concurrent sends per partition, exact commit accounting.
//!
//! The spool cursor moves only after Event Hubs accepted a batch (or the sink dead-lettered an
//! event with its reason), so a hub outage or a crash loses nothing: at-least-once, with
//! duplicates carrying the same `messageId`.

pub mod client;
pub mod config;
pub mod encode;
pub mod outcome;
pub mod partition;
pub mod service;

pub use config::{Credential, EventHubsConfig, EventHubsOptions};

use crate::deadletter::DeadLetters;
use crate::sinks::{Sink, SinkError};
use crate::spool::Record;

pub struct EventHubsSink {
    relay: service::Relay,
}

impl EventHubsSink {
    pub fn new(config: EventHubsConfig, dead_letters: DeadLetters) -> Self {
        describe_metrics();
        EventHubsSink {
            relay: service::Relay::new(config, dead_letters),
        }
    }
}

impl Sink for EventHubsSink {
    fn name(&self) -> &'static str {
        "eventhubs"
    }

    async fn deliver<'a>(&'a mut self, records: &'a [Record]) -> Result<(), SinkError> {
        self.relay.deliver(records).await
    }

    async fn close(&mut self) -> anyhow::Result<()> {
        self.relay.close().await;
        Ok(())
    }
}

fn describe_metrics() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        "collector_eventhubs_events_total",
        "Events Event Hubs accepted"
    );
    describe_counter!(
        "collector_eventhubs_batches_total",
        "Batches sent to Event Hubs (accepted or not)"
    );
    describe_histogram!(
        "collector_eventhubs_send_seconds",
        "Time to send one batch and get its outcome"
    );
    describe_histogram!(
        "collector_eventhubs_relay_latency_seconds",
        "From the collector accepting an event (receivedAt) to Event Hubs accepting it"
    );
    describe_counter!(
        "collector_eventhubs_retries_total",
        "Deliveries that failed transiently and will be retried"
    );
    describe_counter!(
        "collector_eventhubs_rejected_total",
        "Sends Event Hubs refused for their content, by condition"
    );
    describe_counter!(
        "collector_eventhubs_reconnects_total",
        "Times the relay dropped its connection to start afresh"
    );
}
