//! Opens the official `azure_messaging_eventhubs` ProducerClient from the resolved config and
//! reads the hub's partitions. The client's own retries are kept short: the drain loop owns
//! retrying with backoff, and a client whose connection went bad is replaced, not nursed.

use std::sync::Arc;

use anyhow::Context;
use azure_messaging_eventhubs::{ProducerClient, RetryOptions};

use azure_core::credentials::TokenCredential;

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
    connect_using(config, None).await
}

/// The Entra ID credential for a configured kind.
fn credential_for(kind: Credential) -> anyhow::Result<Arc<dyn TokenCredential>> {
    Ok(match kind {
        Credential::ManagedIdentity => azure_identity::ManagedIdentityCredential::new(None)?,
        Credential::DeveloperTools => azure_identity::DeveloperToolsCredential::new(None)?,
    })
}

/// `connect`, with the Entra ID credential replaceable (tests use a fixed token).
async fn connect_using(
    config: &EventHubsConfig,
    entra_credential: Option<Arc<dyn TokenCredential>>,
) -> anyhow::Result<Connected> {
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
            let credential = match entra_credential {
                Some(c) => c,
                None => credential_for(*credential)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::eventhubs::config::EventHubsOptions;
    use azure_core::credentials::{AccessToken, Secret, TokenRequestOptions};
    use eventhubs_double::Double;

    /// Stands in for a managed identity: always the same bearer token.
    #[derive(Debug)]
    struct FixedToken;

    #[async_trait::async_trait]
    impl TokenCredential for FixedToken {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            assert_eq!(scopes, ["https://eventhubs.azure.net/.default"]);
            let expires =
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1);
            Ok(AccessToken::new(Secret::new("entra-token"), expires))
        }
    }

    #[tokio::test]
    async fn entra_id_puts_a_jwt_for_the_namespace_and_reads_the_partitions() {
        let double = Double::start().await.unwrap();
        let config = EventHubsOptions {
            namespace: Some(double.namespace().to_owned()),
            name: Some(double.hub().to_owned()),
            endpoint: Some(double.endpoint()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let c = connect_using(&config, Some(Arc::new(FixedToken)))
            .await
            .unwrap();
        assert_eq!(c.partitions.len(), 4);
        let tokens = double.recorder().tokens();
        assert!(
            !tokens.is_empty() && tokens.iter().all(|t| t.token_type == "jwt"),
            "{tokens:?}"
        );
        assert!(
            tokens[0].audience.contains(double.namespace()),
            "{tokens:?}"
        );
        c.producer.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_connection_string_puts_a_sas_token() {
        let double = Double::start().await.unwrap();
        let config = EventHubsOptions {
            connection_string: Some(double.connection_string()),
            endpoint: Some(double.endpoint()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let c = connect(&config).await.unwrap();
        let tokens = double.recorder().tokens();
        assert!(
            !tokens.is_empty()
                && tokens
                    .iter()
                    .all(|t| t.token_type == "servicebus.windows.net:sastoken"),
            "{tokens:?}"
        );
        c.producer.close().await.unwrap();
    }
}
