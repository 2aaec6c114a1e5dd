//! The host interface: everything the tracker needs from the browser, as a dozen plain
//! functions implemented in JavaScript (`js/index.js`, object `host`).
//!
//! Why not web-sys everywhere: each DOM call made from Rust compiles to externref-table
//! bookkeeping, error plumbing and a glue shim, several hundred bytes apiece; the same
//! reads written once in JavaScript and returned as strings and numbers cost a fraction
//! of that. The decisions (what to send, when, what to keep, what to retry) stay in
//! Rust; the host only reads state, stores strings and moves bytes.

use alloc::string::String;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The object built by `js/index.js`.
    pub type Host;

    /// A field of the `init` config object as text (`None` when absent).
    #[wasm_bindgen(method)]
    pub fn opt(this: &Host, key: &str) -> Option<String>;
    /// Hands a result (the `stats()` JSON) back to the caller.
    #[wasm_bindgen(method)]
    pub fn put(this: &Host, text: &str);
    /// Settles every pending `flush()` promise with `ok`.
    #[wasm_bindgen(method)]
    pub fn settle(this: &Host, ok: bool);
    /// A text reading; `what` is one of the `T_*` constants.
    #[wasm_bindgen(method)]
    pub fn text(this: &Host, what: u8) -> String;
    /// A numeric reading; `what` is one of the `N_*` constants.
    #[wasm_bindgen(method)]
    pub fn num(this: &Host, what: u8) -> f64;
    /// Do Not Track (if `dnt`) or Global Privacy Control (if `gpc`) is on.
    #[wasm_bindgen(method)]
    pub fn privacy(this: &Host, dnt: bool, gpc: bool) -> bool;
    /// Web Storage; `area` 1 is localStorage, 2 sessionStorage. Errors are swallowed.
    #[wasm_bindgen(method)]
    pub fn get(this: &Host, area: u8, key: &str) -> Option<String>;
    #[wasm_bindgen(method)]
    pub fn set(this: &Host, area: u8, key: &str, value: &str) -> bool;
    #[wasm_bindgen(method)]
    pub fn del(this: &Host, area: u8, key: &str);
    /// Removes the keys starting with `prefix` from both areas.
    #[wasm_bindgen(method)]
    pub fn wipe(this: &Host, prefix: &str);
    /// The keys starting with `prefix`, one per line.
    #[wasm_bindgen(method)]
    pub fn keys(this: &Host, area: u8, prefix: &str) -> String;

    /// `fetch(url, {method: "POST", body, keepalive, credentials: "omit"})`; the outcome
    /// comes back as `call("_done", status, retryAfterHeader)` (status 0: network error).
    #[wasm_bindgen(method)]
    pub fn post(this: &Host, url: &str, body: &str, keepalive: bool);
    /// `navigator.sendBeacon(url, body)`; false when refused.
    #[wasm_bindgen(method)]
    pub fn beacon(this: &Host, url: &str, body: &str) -> bool;
    /// `setTimeout` that ends in `call("_tick")`; returns the timer id.
    #[wasm_bindgen(method)]
    pub fn timer(this: &Host, ms: f64) -> f64;
    #[wasm_bindgen(method)]
    pub fn clear(this: &Host, id: f64);
    #[wasm_bindgen(method)]
    pub fn warn(this: &Host, msg: &str);
    /// `decodeURIComponent` of form-encoded text (`+` is a space); the text itself if
    /// it is malformed.
    #[wasm_bindgen(method)]
    pub fn decode(this: &Host, s: &str) -> String;
    /// `Date.parse(s)` (NaN when invalid).
    #[wasm_bindgen(method, js_name = parseDate)]
    pub fn parse_date(this: &Host, s: &str) -> f64;
    /// Installs the listeners (lifecycle always; the rest per switch). They report back
    /// through `call("_vis" | "_hide" | "_show" | "_nav" | "_input" | "_link" | "track")`.
    /// With `page`, a `_nav` report follows in the next task (the automatic page view).
    #[wasm_bindgen(method)]
    pub fn listen(
        this: &Host,
        page: bool,
        spa: bool,
        clicks: bool,
        declarative: bool,
        engagement: bool,
    );
}

// One import per kind of reading instead of one per reading: each import costs a wrapper
// in the module and in the glue. The numbering is shared with `js/index.js`.
const T_HREF: u8 = 0;
const T_TITLE: u8 = 1;
const T_REFERRER: u8 = 2;
const T_HOSTNAME: u8 = 3;
const T_ISO: u8 = 4;
const T_UUID: u8 = 5;
const T_STATICS: u8 = 6;
const N_NOW: u8 = 0;
const N_RANDOM: u8 = 1;
const N_DEPTH: u8 = 2;
const N_VISIBLE: u8 = 3;

impl Host {
    /// `location.href`.
    pub fn href(&self) -> String {
        self.text(T_HREF)
    }
    /// `document.title`.
    pub fn title(&self) -> String {
        self.text(T_TITLE)
    }
    /// `document.referrer`.
    pub fn referrer(&self) -> String {
        self.text(T_REFERRER)
    }
    /// `location.hostname`.
    pub fn hostname(&self) -> String {
        self.text(T_HOSTNAME)
    }
    /// The current time as ISO-8601 (`Date.prototype.toISOString`).
    pub fn iso(&self) -> String {
        self.text(T_ISO)
    }
    /// A random (v4) UUID from the browser's CSPRNG.
    pub fn uuid(&self) -> String {
        self.text(T_UUID)
    }
    /// The per-browser context fields as JSON object members without braces:
    /// `"locale":..,"timezone":..,"screen":{..},"userAgent":..`.
    pub fn statics(&self) -> String {
        self.text(T_STATICS)
    }
    /// `Date.now()`.
    pub fn now(&self) -> f64 {
        self.num(N_NOW)
    }
    /// `Math.random()`.
    pub fn random(&self) -> f64 {
        self.num(N_RANDOM)
    }
    /// How far down the page the viewport's bottom is, in percent.
    pub fn depth(&self) -> u32 {
        self.num(N_DEPTH) as u32
    }
    /// The page is visible.
    pub fn visible(&self) -> bool {
        self.num(N_VISIBLE) != 0.0
    }
}
