//! Link-level behaviour: which attach goes where, how event transfers are judged, recorded and
//! settled, and how a link answers the client's detach (a close is answered with a close, a
//! detach with a detach, or the client's `close()` hangs).

use std::sync::Arc;

use fe2o3_amqp::link::{LinkStateError, RecvError};
use fe2o3_amqp::types::definitions::{self, ErrorCondition};
use fe2o3_amqp::types::messaging::Body;
use fe2o3_amqp::types::primitives::{Symbol, Value};
use fe2o3_amqp::Receiver;

use crate::decode::{decode_transfer, LinkTarget};
use crate::faults::{Faults, Rejection};
use crate::record::Recorder;

/// Ends a receiving link the way the client asked for it.
pub async fn answer_receiver_detach(receiver: Receiver, cause: &RecvError) {
    match cause {
        RecvError::LinkStateError(
            LinkStateError::RemoteClosed | LinkStateError::RemoteClosedWithError(_),
        ) => {
            let _ = receiver.close().await;
        }
        RecvError::LinkStateError(
            LinkStateError::RemoteDetached | LinkStateError::RemoteDetachedWithError(_),
        ) => {
            let _ = receiver.detach().await;
        }
        other => tracing::debug!("receiver link ended: {other}"),
    }
}

/// Serves a client sender link to the hub or one of its partitions.
pub async fn serve_event_link(
    mut receiver: Receiver,
    recorder: Arc<Recorder>,
    faults: Arc<Faults>,
    settle_delay: std::time::Duration,
) {
    let address = receiver
        .target()
        .as_ref()
        .and_then(|t| t.address.clone())
        .unwrap_or_default();
    let target = LinkTarget::new(address);
    loop {
        let delivery = match receiver.recv::<Body<Value>>().await {
            Ok(d) => d,
            Err(e) => {
                answer_receiver_detach(receiver, &e).await;
                return;
            }
        };
        let events = match decode_transfer(delivery.message(), *delivery.message_format(), &target)
        {
            Ok(events) => events,
            Err(e) => {
                let error = to_amqp_error(&Rejection::new("amqp:decode-error", e.to_string()));
                let _ = receiver.reject(&delivery, error).await;
                continue;
            }
        };
        let delay = faults.delay().unwrap_or_default() + settle_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let settled = match faults.judge(events.iter().map(|e| e.body.len())) {
            Some(rejection) => receiver.reject(&delivery, to_amqp_error(&rejection)).await,
            None => {
                recorder.push(events);
                receiver.accept(&delivery).await
            }
        };
        if settled.is_err() {
            return;
        }
    }
}

fn to_amqp_error(r: &Rejection) -> definitions::Error {
    let condition = ErrorCondition::Custom(Symbol::from(r.condition.as_str()));
    definitions::Error::new(condition, Some(r.description.clone()), None)
}
