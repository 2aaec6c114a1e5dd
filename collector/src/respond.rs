//! Building responses: the body type, JSON answers and the JSON error shape
//! `{"success":false,"error":"..."}` every failure uses.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};

use crate::ingest::ApiError;

pub type Body = BoxBody<Bytes, Infallible>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

pub fn empty() -> Body {
    Empty::new().boxed()
}

pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(full(
            serde_json::to_vec(value).expect("JSON value serializes"),
        ))
        .unwrap()
}

pub fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    api_error(&ApiError::new(status, message))
}

pub fn api_error(e: &ApiError) -> Response<Body> {
    let mut r = json(
        e.status,
        &serde_json::json!({"success": false, "error": e.message}),
    );
    if let Some(secs) = e.retry_after {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}
