//! A wire-level Azure Event Hubs double for tests and benchmarks.
//!
//! Azure is out of reach in CI, and a mock of the client would prove nothing about the wire.
//! This crate is an AMQP 1.0 server (on `fe2o3-amqp`'s acceptor) that implements what the real
//! `azure_messaging_eventhubs` ProducerClient uses: SASL ANONYMOUS, `$cbs` put-token (202),
//! `$management` READ of the hub, sender links that report max-message-size, and single or
//! batched transfers (format 0x80013700). It records every accepted event, can reject
//! transfers on demand, and can be killed and restarted on the same port.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let double = eventhubs_double::Double::start().await?;
//! // ProducerClient::builder().with_custom_endpoint(double.endpoint())
//! //     .open_with_connection_string(&double.connection_string(), None)
//! let events = double.wait_for_events(1, std::time::Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

mod decode;
mod faults;
mod links;
mod nodes;
mod record;
mod server;

pub use decode::BATCH_MESSAGE_FORMAT;
pub use faults::{Faults, Rejection, MESSAGE_SIZE_EXCEEDED};
pub use record::{ReceivedEvent, Recorder, TokenGrant};
pub use server::{Double, DoubleConfig};
