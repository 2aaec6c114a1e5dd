//! User-agent parsing: browser, OS and device type from woothee, and a bot flag from woothee's
//! crawler category or isbot's pattern list. Results are cached per user-agent string because
//! one visitor sends many events with the same header.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// What we learn from a user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgentInfo {
    pub browser: Option<(String, String)>,
    pub os: Option<(String, String)>,
    /// `context.browser`, `context.os` and `context.device.type` as JSON text, rendered once
    /// per user agent.
    pub browser_json: Option<String>,
    pub os_json: Option<String>,
    pub device_type_json: String,
    /// desktop, mobile, tablet, bot, appliance or unknown.
    pub device_type: &'static str,
    pub bot: bool,
}

static BOTS: LazyLock<isbot::Bots> = LazyLock::new(isbot::Bots::default);
static CACHE: LazyLock<Mutex<HashMap<String, Arc<UserAgentInfo>>>> =
    LazyLock::new(Default::default);
/// The cache is cleared when it reaches this many entries, which bounds its memory.
const CACHE_MAX: usize = 4096;
/// Longer user agents are parsed but not cached: real ones are a few hundred bytes, and an
/// event's `context.userAgent` may be up to the event cap (32 KB), which would let the cache hold
/// 4096 × 32 KB.
const CACHE_MAX_KEY: usize = 512;

fn known(s: &str) -> Option<String> {
    (!s.is_empty() && s != "UNKNOWN").then(|| s.to_string())
}

pub fn parse_uncached(ua: &str) -> UserAgentInfo {
    let parsed = woothee::parser::Parser::new().parse(ua);
    let (browser, os, category) = match &parsed {
        Some(r) => (
            known(r.name).map(|n| (n, r.version.to_string())),
            known(r.os).map(|n| (n, r.os_version.to_string())),
            r.category,
        ),
        None => (None, None, ""),
    };
    let bot = category == "crawler" || BOTS.is_bot(ua);
    let tablet = ua.contains("iPad")
        || ua.contains("Tablet")
        || (ua.contains("Android") && !ua.contains("Mobile"));
    let device_type = match category {
        _ if bot => "bot",
        "smartphone" | "mobilephone" if tablet => "tablet",
        "smartphone" | "mobilephone" => "mobile",
        "pc" => "desktop",
        "appliance" => "appliance",
        _ => "unknown",
    };
    let render = |p: &Option<(String, String)>| {
        p.as_ref().map(|(name, version)| {
            serde_json::json!({"name": name, "version": version}).to_string()
        })
    };
    UserAgentInfo {
        browser_json: render(&browser),
        os_json: render(&os),
        browser,
        os,
        device_type_json: super::event::raw_string(device_type),
        device_type,
        bot,
    }
}

pub fn parse(ua: &str) -> Arc<UserAgentInfo> {
    if ua.len() > CACHE_MAX_KEY {
        return Arc::new(parse_uncached(ua));
    }
    if let Some(hit) = CACHE.lock().unwrap().get(ua) {
        return hit.clone();
    }
    let info = Arc::new(parse_uncached(ua));
    let mut cache = CACHE.lock().unwrap();
    if cache.len() >= CACHE_MAX {
        cache.clear();
    }
    cache.insert(ua.to_string(), info.clone());
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktop_mobile_tablet_bot() {
        let chrome = parse("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36");
        assert_eq!(chrome.browser.as_ref().unwrap().0, "Chrome");
        assert_eq!(chrome.os.as_ref().unwrap().0, "Windows 10");
        assert_eq!((chrome.device_type, chrome.bot), ("desktop", false));
        let iphone = parse("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1");
        assert_eq!(iphone.device_type, "mobile");
        let ipad = parse("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1");
        assert_eq!(ipad.device_type, "tablet");
        let google =
            parse("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        assert!(google.bot);
        assert_eq!(google.device_type, "bot");
        assert!(parse("curl/8.4.0").bot);
        assert!(parse("python-requests/2.31").bot);
    }

    #[test]
    fn long_user_agents_are_parsed_but_not_cached() {
        let long = format!(
            "Mozilla/5.0 (compatible; Googlebot/2.1) {}",
            "x".repeat(CACHE_MAX_KEY)
        );
        assert!(parse(&long).bot);
        assert!(!CACHE.lock().unwrap().contains_key(&long));
    }
}
