//! What the tracker reads from the browser: the current page, the per-browser context
//! facts, privacy signals, the clock. Every accessor tolerates a missing API and returns
//! a neutral value instead of throwing.

use crate::json::Obj;
use crate::url;
use alloc::string::String;
use alloc::vec::Vec;
use js_sys::{Date, Reflect};
use wasm_bindgen::JsValue;

pub fn window() -> Option<web_sys::Window> {
    web_sys::window()
}

pub fn document() -> Option<web_sys::Document> {
    window()?.document()
}

pub fn now() -> f64 {
    Date::now()
}

pub fn iso_now() -> String {
    String::from(Date::new_0().to_iso_string())
}

/// A property of a JS object as text, if it is a string.
pub fn prop_str(o: &JsValue, k: &str) -> Option<String> {
    Reflect::get(o, &JsValue::from_str(k)).ok()?.as_string()
}

pub fn href() -> String {
    window()
        .and_then(|w| w.location().href().ok())
        .unwrap_or_default()
}

pub fn origin() -> String {
    window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

pub fn hostname() -> String {
    window()
        .and_then(|w| w.location().hostname().ok())
        .unwrap_or_default()
}

pub fn title() -> String {
    document().map(|d| d.title()).unwrap_or_default()
}

pub fn doc_referrer() -> String {
    document().map(|d| d.referrer()).unwrap_or_default()
}

pub fn visible() -> bool {
    document().is_none_or(|d| prop_str(&d, "visibilityState").as_deref() != Some("hidden"))
}

/// The visitor asked not to be tracked: Do Not Track and/or Global Privacy Control.
pub fn privacy_signal(dnt: bool, gpc: bool) -> bool {
    let Some(w) = window() else { return false };
    let nav: JsValue = w.navigator().into();
    let dnt_on = dnt && prop_str(&nav, "doNotTrack").as_deref() == Some("1");
    let gpc_on = gpc
        && Reflect::get(&nav, &JsValue::from_str("globalPrivacyControl")).ok()
            == Some(JsValue::TRUE);
    dnt_on || gpc_on
}

fn number_text(v: JsValue) -> String {
    js_sys::JSON::stringify(&v)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| String::from("0"))
}

/// The per-browser context fields (see `message::statics_json`).
pub fn statics() -> String {
    let Some(w) = window() else {
        return String::new();
    };
    let nav = w.navigator();
    let tz = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new())
        .resolved_options();
    let (sw, sh) = w.screen().map_or((0, 0), |s| {
        (s.width().unwrap_or(0), s.height().unwrap_or(0))
    });
    let mut screen = String::new();
    Obj::new(&mut screen)
        .num("width", sw.max(0) as u64)
        .num("height", sh.max(0) as u64)
        .raw(
            "density",
            &number_text(JsValue::from_f64(w.device_pixel_ratio())),
        )
        .end();
    crate::message::statics_json(
        &nav.language().unwrap_or_default(),
        &prop_str(&tz, "timeZone").unwrap_or_default(),
        &screen,
        &nav.user_agent().unwrap_or_default(),
    )
}

/// How far down the page the bottom of the viewport is, in percent.
pub fn scroll_depth() -> u32 {
    let (Some(w), Some(d)) = (window(), document()) else {
        return 0;
    };
    let Some(root) = d.document_element() else {
        return 0;
    };
    let total = root.scroll_height() as f64;
    let seen = w.scroll_y().unwrap_or(0.0)
        + w.inner_height()
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
    if total <= 0.0 || seen >= total {
        return 100;
    }
    (seen / total * 100.0) as u32
}

/// JSON text of an object with the `data-track-*` attributes of `el` (prefix removed).
pub fn data_track_props(el: &web_sys::Element) -> String {
    let names: Vec<String> = el
        .get_attribute_names()
        .iter()
        .filter_map(|n| n.as_string())
        .collect();
    let mut s = String::new();
    let mut o = Obj::new(&mut s);
    for n in &names {
        if let Some(key) = n.strip_prefix("data-track-") {
            o.str(key, &el.get_attribute(n).unwrap_or_default());
        }
    }
    o.end();
    s
}

/// The current page, with sensitive query parameters redacted.
pub struct PageInfo {
    pub url: String,
    pub referrer: String,
    pub title: String,
}

impl PageInfo {
    pub fn read(referrer: &str, redact: &[String]) -> PageInfo {
        PageInfo {
            url: url::redact(&href(), redact),
            referrer: url::redact(referrer, redact),
            title: title(),
        }
    }

    pub fn page(&self) -> crate::message::Page<'_> {
        crate::message::Page {
            url: &self.url,
            path: url::path(&self.url),
            search: url::search(&self.url),
            title: &self.title,
            referrer: &self.referrer,
        }
    }
}

/// Text of a timestamp in ms for storage headers.
pub fn ms_text(ms: f64) -> String {
    crate::json::u64_str(ms as u64)
}
