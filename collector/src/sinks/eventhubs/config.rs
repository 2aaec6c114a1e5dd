//! How the relay reaches Event Hubs: a connection string (SAS) or Microsoft Entra ID, the hub
//! name, an optional custom endpoint, and the send timeout. Resolved and checked once at start
//! so a typo fails the collector's start-up, not the first delivery.

use std::time::Duration;

use anyhow::{bail, Context};

/// Which Entra ID credential to use when there is no connection string.
#[derive(clap::ValueEnum, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Credential {
    /// The managed identity of the VM, App Service, Container App or AKS pod.
    #[default]
    ManagedIdentity,
    /// Whoever is signed in to the Azure CLI (`az login`) or Azure Developer CLI.
    DeveloperTools,
}

/// How to authenticate.
#[derive(Clone)]
pub enum Auth {
    /// A SAS connection string: `Endpoint=sb://NS.servicebus.windows.net/;SharedAccessKeyName=..;SharedAccessKey=..[;EntityPath=HUB]`.
    ConnectionString(String),
    /// Microsoft Entra ID against the fully qualified namespace (`NS.servicebus.windows.net`).
    Entra {
        namespace: String,
        credential: Credential,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never print the key.
            Auth::ConnectionString(_) => f.write_str("ConnectionString(<redacted>)"),
            Auth::Entra {
                namespace,
                credential,
            } => {
                write!(
                    f,
                    "Entra {{ namespace: {namespace:?}, credential: {credential:?} }}"
                )
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct EventHubsConfig {
    pub auth: Auth,
    /// The event hub; `None` only when the connection string carries `EntityPath`.
    pub hub: Option<String>,
    /// `amqp://host:port` (plain TCP) or `amqps://host:port` to connect somewhere other than
    /// the namespace host: tests, private endpoints, proxies.
    pub endpoint: Option<String>,
    /// Longest wait for one connect or one batch send before the connection is dropped and
    /// rebuilt (a send whose connection dies mid-flight can otherwise wait forever).
    pub timeout: Duration,
}

/// The raw options as they come from flags, env vars and the config file.
#[derive(Debug, Default, Clone)]
pub struct EventHubsOptions {
    pub connection_string: Option<String>,
    pub name: Option<String>,
    pub endpoint: Option<String>,
    pub namespace: Option<String>,
    pub credential: Option<Credential>,
    pub timeout_secs: Option<u64>,
}

impl EventHubsOptions {
    pub fn resolve(self) -> anyhow::Result<EventHubsConfig> {
        let connection_string = self.connection_string.filter(|s| !s.trim().is_empty());
        let auth = match (connection_string, self.namespace) {
            (Some(cs), None) => {
                let parsed: azure_messaging_eventhubs::ConnectionString = cs
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .context("--eventhubs-connection-string is not an Event Hubs connection string")?;
                if parsed.entity_path.is_none() && self.name.is_none() {
                    bail!("the connection string has no EntityPath: set --eventhubs-name");
                }
                Auth::ConnectionString(cs)
            }
            (None, Some(namespace)) => {
                if self.name.is_none() {
                    bail!("--eventhubs-namespace needs --eventhubs-name");
                }
                let namespace = namespace.trim_start_matches("sb://").trim_end_matches('/').to_owned();
                if namespace.is_empty() || namespace.contains('/') {
                    bail!("--eventhubs-namespace wants a host such as myns.servicebus.windows.net");
                }
                Auth::Entra { namespace, credential: self.credential.unwrap_or_default() }
            }
            (Some(_), Some(_)) => {
                bail!("set either --eventhubs-connection-string or --eventhubs-namespace (Entra ID), not both")
            }
            (None, None) => bail!(
                "--sink eventhubs needs EVENTHUBS_CONNECTION_STRING (or --eventhubs-connection-string), \
                 or --eventhubs-namespace and --eventhubs-name for Microsoft Entra ID"
            ),
        };
        if let Some(ep) = &self.endpoint {
            let ok = ep
                .strip_prefix("amqp://")
                .or_else(|| ep.strip_prefix("amqps://"));
            if ok.is_none_or(str::is_empty) {
                bail!("--eventhubs-endpoint {ep:?} must look like amqp://host:port or amqps://host:port");
            }
        }
        Ok(EventHubsConfig {
            auth,
            hub: self.name,
            endpoint: self.endpoint,
            timeout: Duration::from_secs(self.timeout_secs.unwrap_or(10).max(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CS: &str =
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=a2V5";

    #[test]
    fn connection_string_with_or_without_entity_path() {
        let err = EventHubsOptions {
            connection_string: Some(CS.into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("EntityPath"), "{err}");
        let c = EventHubsOptions {
            connection_string: Some(format!("{CS};EntityPath=clicks")),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert!(matches!(c.auth, Auth::ConnectionString(_)));
        assert!(
            !format!("{c:?}").contains("a2V5"),
            "the key never reaches logs"
        );
        assert_eq!(c.timeout, Duration::from_secs(10));
    }

    #[test]
    fn entra_needs_a_namespace_and_a_hub() {
        let c = EventHubsOptions {
            namespace: Some("sb://ns.servicebus.windows.net/".into()),
            name: Some("clicks".into()),
            credential: Some(Credential::DeveloperTools),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        match c.auth {
            Auth::Entra {
                namespace,
                credential,
            } => {
                assert_eq!(namespace, "ns.servicebus.windows.net");
                assert_eq!(credential, Credential::DeveloperTools);
            }
            other => panic!("{other:?}"),
        }
        assert!(EventHubsOptions {
            namespace: Some("ns".into()),
            ..Default::default()
        }
        .resolve()
        .is_err());
        assert!(EventHubsOptions::default().resolve().is_err());
    }

    #[test]
    fn endpoint_must_be_amqp() {
        let base = EventHubsOptions {
            connection_string: Some(format!("{CS};EntityPath=h")),
            ..Default::default()
        };
        let ok = EventHubsOptions {
            endpoint: Some("amqp://127.0.0.1:5672".into()),
            ..base.clone()
        };
        assert!(ok.resolve().is_ok());
        let bad = EventHubsOptions {
            endpoint: Some("http://x".into()),
            ..base
        };
        assert!(bad.resolve().is_err());
    }

    #[test]
    fn garbage_connection_string_is_refused() {
        let e = EventHubsOptions {
            connection_string: Some("nonsense".into()),
            ..Default::default()
        }
        .resolve();
        assert!(e.is_err());
    }
}
