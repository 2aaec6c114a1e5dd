//! Getting a batch body to the collector: `fetch` while the page lives, `sendBeacon`
//! when it is being hidden or left.
//!
//! Bodies go as `text/plain` (a string body's default type), so no CORS preflight is
//! needed; the writeKey travels inside the body. Fetches of at most 32 KB use
//! `keepalive`, so they survive the page being closed mid-request.

use crate::backoff::retry_after_secs_ms;
use crate::config::KEEPALIVE_MAX;
use alloc::string::String;
use js_sys::Reflect;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{RequestCredentials, RequestInit, Response};

#[wasm_bindgen]
extern "C" {
    /// A promise seen untyped: js-sys only offers `then` with typed closures.
    type Thenable;
    #[wasm_bindgen(method, js_name = then)]
    fn then_fn(this: &Thenable, ok: &js_sys::Function, err: &js_sys::Function) -> JsValue;
}

/// What came back: the HTTP status (0 for a network error) and the Retry-After in ms.
pub struct Outcome {
    pub status: u16,
    pub retry_after_ms: Option<f64>,
}

fn retry_after(r: &Response) -> Option<f64> {
    let v = r.headers().get("retry-after").ok()??;
    retry_after_secs_ms(&v).or_else(|| {
        let at = js_sys::Date::parse(&v);
        (!at.is_nan())
            .then(|| (at - js_sys::Date::now()).clamp(0.0, crate::backoff::RETRY_AFTER_MAX_MS))
    })
}

/// The outcome of a fetch that got an answer.
pub fn outcome(r: &Response) -> Outcome {
    Outcome {
        status: r.status(),
        retry_after_ms: retry_after(r),
    }
}

/// POSTs `body` to `url`; `cb` is called with the `Response`, or with the error if the
/// request failed. Returns whether the request went out with `keepalive`.
pub fn post(url: &str, body: String, cb: &js_sys::Function) -> bool {
    let keepalive = body.len() <= KEEPALIVE_MAX;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from(body));
    init.set_credentials(RequestCredentials::Omit);
    if keepalive {
        let _ = Reflect::set(&init, &JsValue::from_str("keepalive"), &JsValue::TRUE);
    }
    if let Some(w) = crate::env::window() {
        let _ = w
            .fetch_with_str_and_init(url, &init)
            .unchecked_ref::<Thenable>()
            .then_fn(cb, cb);
    }
    keepalive
}

/// Hands `body` to the browser to deliver after the page is gone. False when the browser
/// refused it (over the keepalive quota, or no beacon API).
pub fn beacon(url: &str, body: &str) -> bool {
    crate::env::window()
        .and_then(|w| w.navigator().send_beacon_with_opt_str(url, Some(body)).ok())
        .unwrap_or(false)
}

/// The single warning the tracker prints for a refused batch.
pub fn warn(msg: &str) {
    web_sys::console::warn_1(&JsValue::from_str(msg));
}
