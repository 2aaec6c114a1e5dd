//! The two request/response nodes the Event Hubs client talks to before it sends anything:
//! `$cbs` (claims-based security: every link path gets a `put-token`, answered 202) and
//! `$management` (READ of `com.microsoft:eventhub`, answered with the hub's properties).
//! Requests arrive on a link to the node; replies go out on the link whose target is the
//! request's `reply-to` address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fe2o3_amqp::link::DetachError;
use fe2o3_amqp::types::messaging::{AmqpValue, ApplicationProperties, Body, Message, Properties};
use fe2o3_amqp::types::primitives::{Array, OrderedMap, SimpleValue, Timestamp, Value};
use fe2o3_amqp::{Receiver, Sender};
use tokio::sync::mpsc;

use crate::record::{Recorder, TokenGrant};

/// What the management node reports about the hub.
#[derive(Debug, Clone)]
pub struct HubInfo {
    pub name: String,
    pub partition_count: u32,
    pub created_at: SystemTime,
}

type Reply = Message<Body<Value>>;

/// Reply routes of one connection: client node address → the link that reaches it.
#[derive(Debug, Default, Clone)]
pub struct ReplyRoutes(Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Reply>>>>);

impl ReplyRoutes {
    async fn route(&self, address: &str) -> Option<mpsc::UnboundedSender<Reply>> {
        // The client attaches its reply link right after the request link; allow for the race.
        for _ in 0..200 {
            if let Some(tx) = self.0.lock().unwrap().get(address) {
                return Some(tx.clone());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
}

/// Serves one outgoing link (the client's receiver): sends the replies routed to its target
/// and answers the client's detach with a matching detach or close.
pub async fn serve_reply_link(mut sender: Sender, routes: ReplyRoutes) {
    let address = sender
        .target()
        .as_ref()
        .and_then(|t| t.address.clone())
        .unwrap_or_default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    routes.0.lock().unwrap().insert(address.clone(), tx);
    let remote = loop {
        tokio::select! {
            reply = rx.recv() => match reply {
                Some(reply) => {
                    if sender.send(reply).await.is_err() {
                        break None;
                    }
                }
                None => break None,
            },
            err = sender.on_detach() => break Some(err),
        }
    };
    routes.0.lock().unwrap().remove(&address);
    match remote {
        Some(DetachError::ClosedByRemote) => {
            let _ = sender.close().await;
        }
        Some(DetachError::DetachedByRemote) => {
            let _ = sender.detach().await;
        }
        _ => {}
    }
}

/// Serves the client's request link to `$cbs` or `$management`.
pub async fn serve_request_link(
    mut receiver: Receiver,
    node: String,
    routes: ReplyRoutes,
    hub: HubInfo,
    settle_delay: Duration,
    recorder: Arc<Recorder>,
) {
    loop {
        let delivery = match receiver.recv::<Body<Value>>().await {
            Ok(d) => d,
            Err(e) => {
                crate::links::answer_receiver_detach(receiver, &e).await;
                return;
            }
        };
        // See `DoubleConfig::settle_delay`: the request's sender waits for this disposition.
        tokio::time::sleep(settle_delay).await;
        if receiver.accept(&delivery).await.is_err() {
            return;
        }
        let request = delivery.into_message();
        let reply = if node == "$cbs" {
            if let Some(grant) = token_grant(&request) {
                recorder.push_token(grant);
            }
            put_token_reply(&request)
        } else {
            management_reply(&request, &hub)
        };
        let reply_to = request
            .properties
            .as_ref()
            .and_then(|p| p.reply_to.clone())
            .unwrap_or_default();
        match routes.route(&reply_to).await {
            Some(tx) => {
                let _ = tx.send(reply);
            }
            None => tracing::warn!(%reply_to, "no reply link for a request to {node}"),
        }
    }
}

fn app_prop<'a>(message: &'a Reply, key: &str) -> Option<&'a SimpleValue> {
    message
        .application_properties
        .as_ref()
        .and_then(|ap| ap.0.get(key))
}

fn reply(request: &Reply, status: i32, description: &str, body: Value) -> Reply {
    let correlation_id = request
        .properties
        .as_ref()
        .and_then(|p| p.message_id.clone());
    Message::builder()
        .properties(Properties {
            correlation_id,
            ..Default::default()
        })
        .application_properties(
            ApplicationProperties::builder()
                .insert("status-code", SimpleValue::Int(status))
                .insert(
                    "status-description",
                    SimpleValue::String(description.to_owned()),
                )
                .build(),
        )
        .body(Body::Value(AmqpValue(body)))
        .build()
}

/// What a put-token request asked for: token type (`servicebus.windows.net:sastoken` for a
/// connection string, `jwt` for Entra ID) and audience.
fn token_grant(request: &Reply) -> Option<TokenGrant> {
    let text = |key| match app_prop(request, key) {
        Some(SimpleValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    Some(TokenGrant {
        token_type: text("type")?,
        audience: text("name")?,
    })
}

/// `$cbs` accepts every token: the double checks wiring, not credentials.
fn put_token_reply(request: &Reply) -> Reply {
    match app_prop(request, "operation") {
        Some(SimpleValue::String(op)) if op == "put-token" => {
            reply(request, 202, "Accepted", Value::Null)
        }
        other => reply(
            request,
            400,
            &format!("unsupported $cbs operation {other:?}"),
            Value::Null,
        ),
    }
}

fn management_reply(request: &Reply, hub: &HubInfo) -> Reply {
    let op = app_prop(request, "operation");
    let ty = app_prop(request, "type");
    let is = |v: Option<&SimpleValue>, s: &str| matches!(v, Some(SimpleValue::String(x)) if x == s);
    if !is(op, "READ") || !is(ty, "com.microsoft:eventhub") {
        return reply(
            request,
            404,
            &format!("the double does not serve {op:?} {ty:?}"),
            Value::Null,
        );
    }
    let created_ms = hub
        .created_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let ids: Vec<Value> = (0..hub.partition_count)
        .map(|p| Value::String(p.to_string()))
        .collect();
    let mut map = OrderedMap::new();
    map.insert(
        Value::String("name".into()),
        Value::String(hub.name.clone()),
    );
    map.insert(
        Value::String("created_at".into()),
        Value::Timestamp(Timestamp::from_milliseconds(created_ms)),
    );
    map.insert(
        Value::String("partition_count".into()),
        Value::Int(hub.partition_count as i32),
    );
    map.insert(
        Value::String("partition_ids".into()),
        Value::Array(Array::from(ids)),
    );
    reply(request, 200, "OK", Value::Map(map))
}
