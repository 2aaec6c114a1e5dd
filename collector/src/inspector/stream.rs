//! `/debug/stream`: the inspector's entries as Server-Sent Events. Each viewer has its own
//! bounded receiver; when it falls behind it gets one `dropped` message with the count and
//! carries on from the newest entries. A comment line every 15 s keeps proxies from closing it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;
use tokio::sync::broadcast::error::RecvError;

use super::{Filter, Inspector};
use crate::respond::Body;

fn message(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

pub fn response(inspector: &Arc<Inspector>, filter: Filter) -> Response<Body> {
    let rx = inspector.subscribe();
    let state = (rx, filter, true);
    let stream = futures::stream::unfold(state, |(mut rx, filter, first)| async move {
        if first {
            let hello = Bytes::from_static(b"retry: 2000\n: connected\n\n");
            return Some((Ok::<_, Infallible>(Frame::data(hello)), (rx, filter, false)));
        }
        loop {
            let next = tokio::time::timeout(Duration::from_secs(15), rx.recv()).await;
            let bytes = match next {
                Err(_) => Bytes::from_static(b": keep-alive\n\n"),
                Ok(Ok(entry)) if filter.matches(&entry) => message(
                    entry.status,
                    &serde_json::to_string(&*entry).expect("entry serializes"),
                ),
                Ok(Ok(_)) => continue,
                Ok(Err(RecvError::Lagged(n))) => {
                    message("dropped", &format!("{{\"dropped\":{n}}}"))
                }
                Ok(Err(RecvError::Closed)) => return None,
            };
            return Some((Ok(Frame::data(bytes)), (rx, filter, false)));
        }
    });
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}
