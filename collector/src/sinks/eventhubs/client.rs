//! Opens the official `azure_messaging_eventhubs` ProducerClient from the resolved config and
//! reads the hub's partitions. The client's own retries are kept short: the drain loop owns
//! retrying with backoff, and a client whose connection went bad is replaced, not nursed.

use std::sync::Arc;

use anyhow::Context;
use azure_messaging_eventhubs::{ProducerClient, RetryOptions};

use super::config::{Auth, Credential, EventHubsConfig};
use super::partition::Partitions;

/// An open producer and what the relay needs to know about its hub.
pub struct Connected {
    pub producer: ProducerClient,
    pub partitions: Partitions,
}

fn retry_options() -> RetryOptions {
    use azure_core::time::Duration;
    RetryOptions {
        initial_delay: Duration::milliseconds(100),
        max_delay: Duration::seconds(2),
        max_retries: 3,
        max_total_elapsed: Duration::seconds(10),
    }
}

/// Connects, authenticates and reads the partition ids (`$management` READ).
pub async fn connect(config: &EventHubsConfig) -> anyhow::Result<Connected> {
    let mut builder = ProducerClient::builder()
        .with_application_id(format!(
            "clickstream-collector/{}",
            env!("CARGO_PKG_VERSION")
        ))
        .with_retry_options(retry_options());
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_custom_endpoint(endpoint.clone());
    }
    let producer = match &config.auth {
        Auth::ConnectionString(cs) => builder
            .open_with_connection_string(cs, config.hub.as_deref())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("opening the Event Hubs producer")?,
        Auth::Entra {
            namespace,
            credential,
        } => {
            let hub = config
                .hub
                .as_deref()
                .context("an event hub name is required")?;
            let credential: Arc<dyn azure_core::credentials::TokenCredential> = match credential {
                Credential::ManagedIdentity => {
                    azure_identity::ManagedIdentityCredential::new(None)?
                }
                Credential::DeveloperTools => azure_identity::DeveloperToolsCredential::new(None)?,
            };
            builder
                .open(namespace, hub, credential)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("opening the Event Hubs producer with Microsoft Entra ID")?
        }
    };
    let properties = producer
        .get_eventhub_properties()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("reading the event hub's partitions")?;
    let partitions = Partitions::new(properties.partition_ids)?;
    tracing::info!(hub = %properties.name, partitions = partitions.len(), "connected to Event Hubs");
    Ok(Connected {
        producer,
        partitions,
    })
}
