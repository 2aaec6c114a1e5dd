//! What a failed send means for the events in it. Event Hubs tells us with an AMQP error
//! condition: some are about the events themselves (too big, undecodable, invalid) and will
//! fail again however often we retry, so those events are isolated and dead-lettered; every
//! other failure (throttling, timeouts, a dropped connection, an outage, auth) is transient
//! and the whole remainder is retried by the drain loop, which keeps it in the spool.

use azure_core_amqp::{AmqpError, AmqpErrorKind};
use azure_messaging_eventhubs::error::ErrorKind;
use azure_messaging_eventhubs::EventHubsError;

/// A send failure, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The service refused the content: retrying the same bytes cannot succeed.
    Rejected {
        condition: String,
        description: String,
    },
    /// Anything else: try again later. `reconnect` when the connection itself is suspect.
    Transient { message: String, reconnect: bool },
}

/// Conditions that condemn the events rather than the moment.
const EVENT_CONDITIONS: &[&str] = &[
    "amqp:link:message-size-exceeded",
    "amqp:decode-error",
    "amqp:invalid-field",
    "com.microsoft:argument-error",
    "com.microsoft:argument-out-of-range",
];

impl Failure {
    pub fn classify(error: &EventHubsError) -> Failure {
        match described(error) {
            Some((condition, description)) if EVENT_CONDITIONS.contains(&condition.as_str()) => {
                Failure::Rejected {
                    condition,
                    description,
                }
            }
            // The service answered: the connection works, only this send failed.
            Some((condition, description)) => Failure::Transient {
                message: format!("{condition}: {description}"),
                reconnect: false,
            },
            None => Failure::Transient {
                message: error.to_string(),
                reconnect: true,
            },
        }
    }

    pub fn timeout(what: &str, after: std::time::Duration) -> Failure {
        Failure::Transient {
            message: format!("{what} timed out after {after:?}"),
            reconnect: true,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Failure::Rejected {
                condition,
                description,
            } => format!("rejected by Event Hubs ({condition}): {description}"),
            Failure::Transient { message, .. } => message.clone(),
        }
    }
}

/// The AMQP error condition and description carried by an error, wherever it is wrapped.
fn described(error: &EventHubsError) -> Option<(String, String)> {
    fn from_amqp(e: &AmqpError) -> Option<(String, String)> {
        match e.kind() {
            AmqpErrorKind::AmqpDescribedError(d) => {
                let condition: &str = d.condition.as_ref();
                Some((
                    condition.to_owned(),
                    d.description.clone().unwrap_or_default(),
                ))
            }
            _ => None,
        }
    }
    if let ErrorKind::SendRejected(Some(d)) = &error.kind {
        let condition: &str = d.condition.as_ref();
        return Some((
            condition.to_owned(),
            d.description.clone().unwrap_or_default(),
        ));
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = match &error.kind {
        ErrorKind::AmqpError(e) => Some(e),
        ErrorKind::AzureCore(e) => Some(e),
        _ => None,
    };
    for _ in 0..16 {
        let c = cause?;
        if let Some(found) = c.downcast_ref::<AmqpError>().and_then(from_amqp) {
            return Some(found);
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core_amqp::error::AmqpErrorCondition;
    use azure_core_amqp::AmqpDescribedError;

    fn rejected(condition: AmqpErrorCondition) -> EventHubsError {
        let d = AmqpDescribedError::new(condition, Some("why".into()), Default::default());
        EventHubsError::from(AmqpError::from(AmqpErrorKind::AmqpDescribedError(d)))
    }

    #[test]
    fn size_and_decode_errors_condemn_the_events() {
        let f = Failure::classify(&rejected(AmqpErrorCondition::LinkPayloadSizeExceeded));
        assert_eq!(
            f,
            Failure::Rejected {
                condition: "amqp:link:message-size-exceeded".into(),
                description: "why".into()
            }
        );
        assert!(matches!(
            Failure::classify(&rejected(AmqpErrorCondition::DecodeError)),
            Failure::Rejected { .. }
        ));
    }

    #[test]
    fn throttling_and_auth_are_transient_without_reconnect() {
        for c in [
            AmqpErrorCondition::ServerBusyError,
            AmqpErrorCondition::UnauthorizedAccess,
            AmqpErrorCondition::NotAllowed,
        ] {
            assert!(matches!(
                Failure::classify(&rejected(c)),
                Failure::Transient {
                    reconnect: false,
                    ..
                }
            ));
        }
    }

    #[test]
    fn connection_trouble_is_transient_with_reconnect() {
        let e = EventHubsError::from(AmqpError::from(AmqpErrorKind::ConnectionDropped(Box::new(
            std::io::Error::other("reset"),
        ))));
        assert!(matches!(
            Failure::classify(&e),
            Failure::Transient {
                reconnect: true,
                ..
            }
        ));
    }
}
