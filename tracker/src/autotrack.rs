//! Automatic tracking and the page lifecycle: the browser events that drive the tracker.
//!
//! SPA navigations (history API, popstate, hashchange) become page views, de-duplicated
//! by URL; link clicks become outbound/download events; `data-track` elements become
//! custom events; input, scroll and visibility feed engagement; and the lifecycle
//! (hidden, left, restored from the back/forward cache) drives delivery.
//!
//! Every listener, timer and fetch completion goes through ONE callback, [`dispatch`],
//! which tells them apart by their argument. Each distinct Rust closure type costs
//! several hundred bytes of wasm and glue, so one shared closure keeps the module small.

use crate::engagement::Engagement;
use crate::env::{self, prop_str};
use crate::tracker::with;
use crate::transport::Outcome;
use crate::url::{self, DOWNLOADS};
use alloc::string::String;
use js_sys::{Function, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{AddEventListenerOptions, Element, Response};

/// Timer tag: the flush timer fired.
pub const TICK: &str = "tick";
/// Timer tag: the URL may have changed (history API call, popstate, hashchange).
const NAV: &str = "nav";

/// Makes the shared callback (once, at start).
pub fn callback() -> Function {
    Closure::<dyn FnMut(JsValue)>::new(dispatch)
        .into_js_value()
        .unchecked_into()
}

/// Calls the shared callback with `tag` after `ms`.
pub fn later(cb: &Function, ms: f64, tag: &str) -> Option<i32> {
    env::window()?
        .set_timeout_with_callback_and_timeout_and_arguments_1(
            cb,
            ms as i32,
            &JsValue::from_str(tag),
        )
        .ok()
}

fn dispatch(v: JsValue) {
    if let Some(tag) = v.as_string() {
        if tag == TICK {
            with(|s| s.tick());
        } else if tag == NAV {
            navigated();
        }
        return;
    }
    if let Some(r) = v.dyn_ref::<Response>() {
        let o = crate::transport::outcome(r);
        with(|s| s.on_outcome(o));
        return;
    }
    let now = env::now();
    match prop_str(&v, "type").as_deref() {
        Some("visibilitychange") => {
            let visible = env::visible();
            with(|s| {
                s.engagement.visibility(now, visible);
                if !visible {
                    s.hide(false);
                }
            });
        }
        Some("pagehide") => {
            with(|s| s.hide(true));
        }
        Some("pageshow") => {
            if Reflect::get(&v, &JsValue::from_str("persisted")).ok() == Some(JsValue::TRUE) {
                with(|s| s.restored());
            }
        }
        Some("popstate" | "hashchange") => {
            with(|s| later(&s.cb, 0.0, NAV));
        }
        Some("click" | "auxclick") => on_click(&v),
        Some("pointerdown" | "keydown") => {
            with(|s| s.engagement.input(now));
        }
        Some("scroll") => {
            let depth = env::scroll_depth();
            with(|s| {
                s.engagement.input(now);
                s.engagement.scroll(depth);
            });
        }
        Some(_) => {}
        // Not an event: the rejection of the batch fetch (a network error).
        None => {
            with(|s| {
                s.on_outcome(Outcome {
                    status: 0,
                    retry_after_ms: None,
                })
            });
        }
    }
}

/// Which automatic tracking is switched on.
pub struct Switches {
    pub spa: bool,
    pub clicks: bool,
    pub declarative: bool,
    pub engagement: bool,
}

pub fn install(sw: Switches, cb: &Function) {
    let (Some(w), Some(d)) = (env::window(), env::document()) else {
        return;
    };
    let opts = AddEventListenerOptions::new();
    opts.set_capture(true);
    opts.set_passive(true);
    let on = |target: &web_sys::EventTarget, ty: &str| {
        let _ =
            target.add_event_listener_with_callback_and_add_event_listener_options(ty, cb, &opts);
    };
    // Delivery needs the lifecycle whatever the switches say.
    on(&d, "visibilitychange");
    on(&w, "pagehide");
    on(&w, "pageshow");
    if sw.spa {
        if let Ok(h) = w.history() {
            patch(&h, "pushState", cb);
            patch(&h, "replaceState", cb);
        }
        on(&w, "popstate");
        on(&w, "hashchange");
    }
    if sw.clicks || sw.declarative {
        on(&d, "click");
        on(&d, "auxclick");
    }
    if sw.engagement {
        on(&w, "pointerdown");
        on(&w, "keydown");
        on(&w, "scroll");
        let depth = env::scroll_depth();
        with(|s| s.engagement.scroll(depth));
    }
}

/// A page view for the current URL if it differs from the last one tracked; the page
/// being left gets its engagement event first.
fn navigated() {
    let now = env::now();
    let depth = env::scroll_depth();
    with(|s| {
        let href = url::redact(&env::href(), &s.cfg.redact);
        if href == s.page_url {
            return;
        }
        s.report_engagement();
        s.engagement = Engagement::new(now, env::visible());
        s.engagement.scroll(depth);
        s.page(None, None);
    });
}

/// Wraps `history[name]` so that a call schedules the navigation check (after the app
/// had a chance to update the title). Errors of the original still reach the caller.
fn patch(history: &web_sys::History, name: &str, cb: &Function) {
    let key = JsValue::from_str(name);
    let Ok(orig) = Reflect::get(history, &key).and_then(|f| f.dyn_into::<Function>()) else {
        return;
    };
    let (h, cb) = (history.clone(), cb.clone());
    let wrapper = Closure::<dyn FnMut(JsValue, JsValue, JsValue)>::new(
        move |a: JsValue, b: JsValue, c: JsValue| {
            let r = orig.call3(&h, &a, &b, &c);
            later(&cb, 0.0, NAV);
            if let Err(e) = r {
                wasm_bindgen::throw_val(e);
            }
        },
    );
    let _ = Reflect::set(history, &key, &wrapper.into_js_value());
}

fn on_click(e: &JsValue) {
    let Some(el) = Reflect::get(e, &JsValue::from_str("target"))
        .ok()
        .and_then(|t| t.dyn_into::<Element>().ok())
    else {
        return;
    };
    let Some((clicks, declarative)) = with(|s| (s.cfg.auto_clicks, s.cfg.auto_declarative)) else {
        return;
    };
    if declarative {
        if let Ok(Some(d)) = el.closest("[data-track]") {
            let name = d.get_attribute("data-track").unwrap_or_default();
            if !name.is_empty() {
                let props = env::data_track_props(&d);
                with(|s| s.enqueue("track", &[("event", &name)], Some(("properties", &props))));
                return;
            }
        }
    }
    if !clicks {
        return;
    }
    let Ok(Some(a)) = el.closest("a[href]") else {
        return;
    };
    let Some(href) = prop_str(&a, "href") else {
        return;
    };
    let Some(host) = url::host(&href) else { return };
    let ext = url::extension(&href).filter(|x| DOWNLOADS.contains(&x.as_str()));
    let download = a.has_attribute("download") || ext.is_some();
    if !download && host == env::hostname().to_ascii_lowercase() {
        return;
    }
    with(|s| {
        let href = url::redact(&href, &s.cfg.redact);
        let mut p = String::new();
        let mut o = crate::json::Obj::new(&mut p);
        o.str("url", &href);
        let event = if download {
            o.opt("extension", ext.as_deref());
            "File Downloaded"
        } else {
            "Outbound Link Clicked"
        };
        o.end();
        s.enqueue("track", &[("event", event)], Some(("properties", &p)));
    });
}
