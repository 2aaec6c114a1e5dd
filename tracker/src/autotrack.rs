//! Automatic tracking and the page lifecycle: what the tracker does with the browser
//! events the host's listeners report.
//!
//! SPA navigations (history API, popstate, hashchange) become page views, de-duplicated
//! by URL; link clicks become outbound/download events; input, scroll and visibility
//! feed engagement; and the lifecycle (hidden, left, restored from the back/forward
//! cache) drives delivery. (`data-track` clicks arrive as plain `track` calls: the host
//! reads the element's attributes.)

use crate::engagement::Engagement;
use crate::tracker::State;
use crate::url::{self, DOWNLOADS};
use alloc::string::String;

/// A link was clicked: the event to send for it, if any, and its properties (JSON).
/// `href` is the resolved link URL, `page_host` the page's host name.
pub fn link_event(
    href: &str,
    download_attr: bool,
    page_host: &str,
) -> Option<(&'static str, String)> {
    let host = url::host(href)?;
    let ext = url::extension(href).filter(|x| DOWNLOADS.contains(&x.as_str()));
    let download = download_attr || ext.is_some();
    if !download && host.eq_ignore_ascii_case(page_host) {
        return None;
    }
    let mut p = String::new();
    let mut o = crate::json::Obj::new(&mut p);
    o.str("url", href);
    let event = if download {
        o.opt("extension", ext.as_deref());
        "File Downloaded"
    } else {
        "Outbound Link Clicked"
    };
    o.end();
    Some((event, p))
}

impl State {
    /// A link click reported by the host.
    pub fn on_link(&mut self, href: &str, download_attr: bool) {
        let href = url::redact(href, &self.cfg.redact);
        if let Some((event, props)) = link_event(&href, download_attr, &self.host.hostname()) {
            self.enqueue("track", &[("event", event)], Some(("properties", &props)));
        }
    }

    /// The URL may have changed: a page view if it differs from the last one tracked; the
    /// page being left gets its engagement event first.
    pub fn on_nav(&mut self) {
        let href = url::redact(&self.host.href(), &self.cfg.redact);
        if href == self.page_url {
            return;
        }
        self.report_engagement();
        self.engagement = Engagement::new(self.host.now(), self.host.visible());
        self.engagement.scroll(self.host.depth());
        self.page(None, None);
    }

    /// Input, or a scroll to `depth` percent.
    pub fn on_input(&mut self, depth: Option<u64>) {
        self.engagement.input(self.host.now());
        if let Some(d) = depth {
            self.engagement.scroll(d.min(100) as u32);
        }
    }

    pub fn on_visibility(&mut self, visible: bool) {
        self.engagement.visibility(self.host.now(), visible);
        if !visible {
            self.hide(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn classifies_link_clicks() {
        assert_eq!(
            link_event("https://shop.example/cart", false, "shop.example"),
            None
        );
        assert_eq!(link_event("mailto:a@b.c", false, "shop.example"), None);
        assert_eq!(
            link_event("https://Other.example/x", false, "shop.example"),
            Some((
                "Outbound Link Clicked",
                String::from(r#"{"url":"https://Other.example/x"}"#)
            ))
        );
        assert_eq!(
            link_event(
                "https://shop.example/files/a.PDF?v=2",
                false,
                "shop.example"
            ),
            Some((
                "File Downloaded",
                String::from(r#"{"url":"https://shop.example/files/a.PDF?v=2","extension":"pdf"}"#)
            ))
        );
        assert_eq!(
            link_event("https://shop.example/export", true, "shop.example"),
            Some((
                "File Downloaded",
                String::from(r#"{"url":"https://shop.example/export"}"#)
            ))
        );
    }
}
