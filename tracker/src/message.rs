//! Segment messages as JSON text: the common fields every message carries and the
//! `context` object (page, campaign, session, and the per-browser facts).
//!
//! Pure functions over strings, so the exact shape the collector validates is pinned by
//! unit tests.

use crate::json::Obj;
use alloc::string::String;

/// The page a message was captured on (URLs already redacted).
pub struct Page<'a> {
    pub url: &'a str,
    pub path: &'a str,
    pub search: &'a str,
    pub title: &'a str,
    pub referrer: &'a str,
}

/// One message, before serialisation.
pub struct Msg<'a> {
    /// track, page, identify, group or alias.
    pub kind: &'a str,
    pub message_id: &'a str,
    pub timestamp: &'a str,
    pub anonymous_id: &'a str,
    pub user_id: Option<&'a str>,
    /// Type-specific string fields: event, name, groupId, previousId.
    pub fields: &'a [(&'a str, &'a str)],
    /// "properties" or "traits", and its JSON object text.
    pub payload: Option<(&'a str, &'a str)>,
    /// The `context` JSON object text.
    pub context: &'a str,
}

impl Msg<'_> {
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(512 + self.context.len());
        let mut o = Obj::new(&mut s);
        o.str("type", self.kind)
            .str("messageId", self.message_id)
            .str("timestamp", self.timestamp)
            .str("anonymousId", self.anonymous_id)
            .opt("userId", self.user_id);
        for (k, v) in self.fields {
            o.str(k, v);
        }
        if let Some((k, v)) = self.payload {
            o.raw(k, v);
        }
        o.raw("context", self.context).end();
        s
    }
}

/// The library name and version reported in `context.library`.
pub const LIBRARY: &str = concat!(
    "{\"name\":\"clickstream-tracker\",\"version\":\"",
    env!("CARGO_PKG_VERSION"),
    "\"}"
);

/// The `context` object. `statics` is the JSON text of the per-browser fields (locale,
/// timezone, screen, userAgent) without braces, read once at start.
pub fn context_json(page: &Page, campaign: Option<&str>, session_id: u64, statics: &str) -> String {
    let mut s = String::with_capacity(256 + statics.len() + page.url.len() * 2);
    let mut o = Obj::new(&mut s);
    let mut p = String::new();
    Obj::new(&mut p)
        .str("url", page.url)
        .str("path", page.path)
        .str("search", page.search)
        .str("title", page.title)
        .str("referrer", page.referrer)
        .end();
    o.raw("page", &p);
    if let Some(c) = campaign {
        o.raw("campaign", c);
    }
    o.num("sessionId", session_id).raw("library", LIBRARY);
    if !statics.is_empty() {
        s.push(',');
        s.push_str(statics);
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn page() -> Page<'static> {
        Page {
            url: "https://shop.example/p?utm_source=x",
            path: "/p",
            search: "?utm_source=x",
            title: "Shoes",
            referrer: "https://google.example/",
        }
    }

    #[test]
    fn context_has_page_campaign_session_and_statics() {
        let st = r#""locale":"en-US","timezone":"Europe/Paris","screen":{"width":1280,"height":720,"density":1},"userAgent":"UA""#;
        let c = context_json(&page(), Some(r#"{"source":"x"}"#), 1_700_000_000_000, st);
        assert_eq!(
            c,
            concat!(
                r#"{"page":{"url":"https://shop.example/p?utm_source=x","path":"/p","search":"?utm_source=x","title":"Shoes","referrer":"https://google.example/"},"#,
                r#""campaign":{"source":"x"},"sessionId":1700000000000,"library":{"name":"clickstream-tracker","version":""#,
                env!("CARGO_PKG_VERSION"),
                r#""},"locale":"en-US","timezone":"Europe/Paris","#,
                r#""screen":{"width":1280,"height":720,"density":1},"userAgent":"UA"}"#
            )
        );
    }

    #[test]
    fn track_message_shape() {
        let m = Msg {
            kind: "track",
            message_id: "9b2c4a4e-8f1e-4a53-9d3b-0c1f2e3d4c5b",
            timestamp: "2024-05-01T12:00:00.000Z",
            anonymous_id: "a-1",
            user_id: Some("u-1"),
            fields: &[("event", "Signed Up")],
            payload: Some(("properties", r#"{"plan":"pro"}"#)),
            context: "{}",
        };
        assert_eq!(
            m.to_json(),
            r#"{"type":"track","messageId":"9b2c4a4e-8f1e-4a53-9d3b-0c1f2e3d4c5b","timestamp":"2024-05-01T12:00:00.000Z","anonymousId":"a-1","userId":"u-1","event":"Signed Up","properties":{"plan":"pro"},"context":{}}"#
        );
    }

    #[test]
    fn alias_without_user_or_payload() {
        let m = Msg {
            kind: "alias",
            message_id: "m",
            timestamp: "t",
            anonymous_id: "a",
            user_id: None,
            fields: &[("userId", "new"), ("previousId", "a")],
            payload: None,
            context: "{}",
        };
        assert_eq!(
            m.to_json(),
            r#"{"type":"alias","messageId":"m","timestamp":"t","anonymousId":"a","userId":"new","previousId":"a","context":{}}"#
        );
    }
}
