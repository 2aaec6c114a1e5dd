//! The clickstream browser tracker, compiled to WebAssembly.
//!
//! This file is the wasm-bindgen boundary: one exported `call(method, a, b)`. Nothing
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
mod host;
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
use tracker::{with, State};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

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

/// Starts the tracker with the given config (see the README) and host (`js/index.js`).
/// Later calls do nothing.
fn start(host: JsValue) {
    if tracker::started() {
        return;
    }
    let host: host::Host = host.unchecked_into();
    let cfg = Config::read(|k| host.opt(k));
    // The automatic page view comes in a task of its own, right after init (as a "_nav"
    // report from the host), so init itself stays short.
    host.listen(
        cfg.auto_page,
        cfg.auto_spa,
        cfg.auto_clicks,
        cfg.auto_declarative,
        cfg.auto_engagement,
    );
    let page = cfg.auto_page;
    tracker::install(State::new(host, cfg));
    with(|s| {
        if !page {
            s.page_url = url::redact(&s.host.href(), &s.cfg.redact);
        }
        if s.cfg.auto_engagement {
            let d = s.host.depth();
            s.engagement.scroll(d);
        }
    });
}

/// The single entry point: `call(method, host, a, b)` runs one tracker method, named by
/// its number (0 start, 1 track, 2 page, 3 identify, 4 group, 5 alias, 6 reset,
/// 7 consent, 8 flush, 9 stats; host reports: 10 done, 11 tick, 12 nav, 13 visibility,
/// 14 hide, 15 show, 16 input, 17 link). The numbering is shared with `js/index.js`.
///
/// One export, and only strings across it: every export and every JS value handled in
/// Rust costs shims and bookkeeping in the module and the glue. The ES wrapper
/// (`js/index.js`) gives it the usual `tracker.track(...)` shape and turns objects into
/// JSON text (`JSON.stringify`) before they get here.
///
/// - `start` (with `host`, the JS host object; null otherwise); `track(event, props)`;
///   `page(name?, props?)`; `identify(userId?, traits?)`; `group(groupId, traits?)`;
///   `alias(newId)`; `reset()`; `consent("granted"|"pending"|"denied")`; `flush()`
///   (settled through `host.settle`); `stats()` (handed to `host.put` as JSON text
///   `{queued, inflight, dropped, anonymousId, userId, consent}`);
///   plus the host's reports, whose names start with `_`.
///
/// Unknown methods and missing arguments are ignored.
#[wasm_bindgen]
pub fn call(method: u8, host: JsValue, a: Option<String>, b: Option<String>) {
    let a = a.filter(|s| !s.is_empty());
    match method {
        0 => start(host),
        1 => {
            if let Some(e) = a {
                with(|s| {
                    s.enqueue(
                        "track",
                        &[("event", &e)],
                        Some(("properties", b.as_deref().unwrap_or("{}"))),
                    )
                });
            }
        }
        2 => {
            with(|s| s.page(a.as_deref(), b.as_deref()));
        }
        3 => {
            with(|s| s.identify(a, b.as_deref()));
        }
        4 => {
            if let Some(g) = a {
                with(|s| {
                    s.enqueue(
                        "group",
                        &[("groupId", &g)],
                        Some(("traits", b.as_deref().unwrap_or("{}"))),
                    )
                });
            }
        }
        5 => {
            if let Some(n) = a {
                with(|s| s.alias(n));
            }
        }
        6 => {
            with(|s| s.reset());
        }
        7 => {
            if let Some(c) = a.as_deref().and_then(Consent::parse) {
                with(|s| s.set_consent(c));
            }
        }
        8 => {
            with(|s| s.flush_now());
        }
        9 => {
            with(|s| s.host.put(&s.stats()));
        }
        // Reports from the host (see host.rs).
        10 => {
            with(|s| {
                let status = a.as_deref().and_then(text::parse_u64).unwrap_or(0);
                let o = transport::Outcome::read(&s.host, status, b.as_deref());
                s.on_outcome(o)
            });
        }
        11 => {
            with(|s| s.tick());
        }
        12 => {
            with(|s| s.on_nav());
        }
        13 => {
            with(|s| s.on_visibility(a.is_some()));
        }
        14 => {
            with(|s| s.hide(true));
        }
        15 => {
            with(|s| s.restored());
        }
        16 => {
            with(|s| s.on_input(a.as_deref().and_then(text::parse_u64)));
        }
        17 => {
            if let Some(href) = a {
                with(|s| s.on_link(&href, b.is_some()));
            }
        }
        _ => {}
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
