//! The clickstream browser tracker, compiled to WebAssembly.
//!
//! This file is the wasm-bindgen boundary: `start` and the tracker's methods. Nothing
//! here throws into the host page: bad arguments are ignored, and every entry point
//! degrades to doing nothing. The JavaScript wrapper (`js/index.js`) turns these free
//! functions into the `init(config)` → tracker API and queues calls until the module has
//! loaded.
//!
//! The shipped wasm build (feature `slim`) is `no_std` with a tiny allocator: that keeps `core::fmt` and the std
//! panic machinery out of the module (see the README's Size section).

#![cfg_attr(all(target_arch = "wasm32", feature = "slim"), no_std)]

extern crate alloc;

mod autotrack;
mod backoff;
mod config;
mod engagement;
mod env;
mod ids;
mod json;
mod message;
mod queue;
mod session;
mod storage;
mod text;
mod tracker;
mod transport;
mod url;

use alloc::string::String;
use config::{Config, Consent};
use js_sys::Promise;
use tracker::{with, State};
use wasm_bindgen::prelude::*;

#[cfg(all(target_arch = "wasm32", feature = "slim"))]
#[global_allocator]
// SAFETY: wasm32-unknown-unknown without atomics runs on one thread.
static ALLOC: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

#[cfg(all(target_arch = "wasm32", feature = "slim"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// A string argument, or the JSON text of a number (ids are sometimes numbers).
fn text(v: &JsValue) -> Option<String> {
    if let Some(s) = v.as_string() {
        return Some(s).filter(|s| !s.is_empty());
    }
    v.as_f64()?;
    js_sys::JSON::stringify(v).ok()?.as_string()
}

/// The JSON text of a properties/traits object: `Ok(None)` when absent or not an object,
/// `Err` when it cannot be serialised (cycles, BigInt): the event is then dropped.
fn object(v: &JsValue) -> Result<Option<String>, ()> {
    if !v.is_object() || js_sys::Array::is_array(v) {
        return Ok(None);
    }
    match js_sys::JSON::stringify(v) {
        Ok(s) => Ok(s.as_string()),
        Err(_) => {
            transport::warn("clickstream: properties that JSON.stringify rejects; event dropped");
            Err(())
        }
    }
}

/// Starts the tracker with the given config (see the README). Later calls do nothing.
#[wasm_bindgen]
pub fn start(config: JsValue) {
    if tracker::started() {
        return;
    }
    let cfg = Config::read(&config, env::origin());
    let sw = autotrack::Switches {
        spa: cfg.auto_spa,
        clicks: cfg.auto_clicks,
        declarative: cfg.auto_declarative,
        engagement: cfg.auto_engagement,
    };
    let page = cfg.auto_page;
    tracker::install(State::new(cfg));
    if let Some(cb) = with(|s| s.cb.clone()) {
        autotrack::install(sw, &cb);
    }
    if page {
        with(|s| s.page(None, None));
    } else {
        with(|s| s.page_url = url::redact(&env::href(), &s.cfg.redact));
    }
}

/// A custom event.
#[wasm_bindgen]
pub fn track(event: JsValue, properties: JsValue) {
    let (Some(e), Ok(p)) = (text(&event), object(&properties)) else {
        return;
    };
    with(|s| {
        s.enqueue(
            "track",
            &[("event", &e)],
            Some(("properties", p.as_deref().unwrap_or("{}"))),
        )
    });
}

/// A page view; `name` may be left out (`page(properties)`).
#[wasm_bindgen]
pub fn page(name: JsValue, properties: JsValue) {
    let (name, props) = if name.is_object() {
        (None, &name)
    } else {
        (text(&name), &properties)
    };
    let Ok(p) = object(props) else { return };
    with(|s| s.page(name.as_deref(), p.as_deref()));
}

/// Who the visitor is; `userId` may be left out (`identify(traits)`).
#[wasm_bindgen]
pub fn identify(user_id: JsValue, traits: JsValue) {
    let (user, traits) = if user_id.is_object() {
        (None, &user_id)
    } else {
        (text(&user_id), &traits)
    };
    let Ok(t) = object(traits) else { return };
    with(|s| s.identify(user, t.as_deref()));
}

/// The account or organisation the visitor belongs to.
#[wasm_bindgen]
pub fn group(group_id: JsValue, traits: JsValue) {
    let (Some(g), Ok(t)) = (text(&group_id), object(&traits)) else {
        return;
    };
    with(|s| {
        s.enqueue(
            "group",
            &[("groupId", &g)],
            Some(("traits", t.as_deref().unwrap_or("{}"))),
        )
    });
}

/// Links the current identity (userId, else anonymousId) to `newId`.
#[wasm_bindgen]
pub fn alias(new_id: JsValue) {
    let Some(n) = text(&new_id) else { return };
    with(|s| s.alias(n));
}

/// Forgets the visitor (logout): new anonymousId, no userId, new session.
#[wasm_bindgen]
pub fn reset() {
    with(|s| s.reset());
}

/// Sends everything queued now. Resolves to true once the queue is empty, or to false if
/// it could not be delivered now (it stays queued and is retried).
#[wasm_bindgen]
pub fn flush() -> Promise {
    Promise::new(&mut |resolve, _| {
        let queued = with(|s| {
            s.add_waiter(resolve.clone());
            s.flush();
        });
        if queued.is_none() {
            let _ = resolve.call1(&JsValue::NULL, &JsValue::FALSE);
        }
    })
}

/// "granted", "pending" or "denied" (anything else is ignored).
#[wasm_bindgen]
pub fn consent(state: JsValue) {
    if let Some(c) = state.as_string().and_then(|s| Consent::parse(&s)) {
        with(|s| s.set_consent(c));
    }
}

/// `{queued, inflight, dropped, anonymousId, userId, consent}`.
#[wasm_bindgen]
pub fn stats() -> JsValue {
    with(|s| s.stats())
        .and_then(|t| js_sys::JSON::parse(&t).ok())
        .unwrap_or(JsValue::NULL)
}

#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
