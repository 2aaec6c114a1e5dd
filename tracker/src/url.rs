//! URL text handling: query parsing, redaction of sensitive parameters, UTM campaign
//! extraction, and the host/extension checks autotracking needs.
//!
//! Done on the string in Rust instead of through `URL`/`URLSearchParams`: the logic is
//! tiny, runs in unit tests on any target, and keeps the untouched parts of a URL
//! byte-for-byte as the page had them.

use crate::json::Obj;
use crate::text::{self, find, from, sub};
use alloc::string::String;
use alloc::vec::Vec;

/// Splits `url` into (before the query, the query without its `?` if there is one,
/// the fragment with its `#`).
fn split(url: &str) -> (&str, Option<&str>, &str) {
    let hash = find(url, b'#').unwrap_or(url.len());
    let (rest, frag) = (sub(url, 0, hash), from(url, hash));
    match text::split_once(rest, b'?') {
        Some((base, query)) => (base, Some(query), frag),
        None => (rest, None, frag),
    }
}

/// The (name, value) pairs of a query string (with or without a leading `?`), still
/// percent-encoded.
pub fn query_pairs(search: &str) -> Vec<(&str, &str)> {
    let search = if search.starts_with('?') {
        from(search, 1)
    } else {
        search
    };
    text::split(search, b'&')
        .filter(|p| !p.is_empty())
        .map(|p| text::split_once(p, b'=').unwrap_or((p, "")))
        .collect()
}

/// The value written in place of a redacted parameter.
pub const REDACTED: &str = "REDACTED";

/// `url` with the value of every query parameter named in `names` (compared
/// case-insensitively, as written in the URL) replaced by [`REDACTED`].
pub fn redact(url: &str, names: &[String]) -> String {
    let (base, query, frag) = split(url);
    let mut out = String::with_capacity(url.len());
    out.push_str(base);
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in text::split(query, b'&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            let name = text::split_once(pair, b'=').map_or(pair, |(k, _)| k);
            if !name.is_empty() && names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            } else {
                out.push_str(pair);
            }
        }
    }
    out.push_str(frag);
    out
}

/// The query part of `url` including its `?`, or "" when it has none.
pub fn search(url: &str) -> &str {
    match split(url) {
        (base, Some(query), _) => sub(url, base.len(), base.len() + 1 + query.len()),
        _ => "",
    }
}

/// Where the authority (host) of an absolute URL starts: after `scheme://`.
fn authority_start(url: &str) -> Option<usize> {
    let colon = find(url, b':')?;
    from(url, colon).starts_with("://").then_some(colon + 3)
}

/// The path of an absolute URL (`/` when empty).
pub fn path(url: &str) -> &str {
    let (base, _, _) = split(url);
    let after = authority_start(base).unwrap_or(0);
    match find(from(base, after), b'/') {
        Some(i) => from(base, after + i),
        None => "/",
    }
}

/// The lower-cased host name (no user info, no port) of an absolute http(s) URL.
pub fn host(url: &str) -> Option<String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return None;
    }
    let rest = from(url, authority_start(url)?);
    let end = rest
        .bytes()
        .position(|b| b == b'/' || b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    let auth = sub(rest, 0, end);
    let hostport = text::rsplit_once(auth, b'@').map_or(auth, |(_, h)| h);
    let host = if hostport.starts_with('[') {
        find(hostport, b']').map_or(hostport, |i| sub(hostport, 0, i + 1))
    } else {
        text::split_once(hostport, b':').map_or(hostport, |(h, _)| h)
    };
    Some(host.to_ascii_lowercase())
}

/// The lower-cased file extension of the URL's last path segment, if it has one.
pub fn extension(url: &str) -> Option<String> {
    let p = path(url);
    let seg = text::rsplit_once(p, b'/').map_or(p, |(_, s)| s);
    let (_, ext) = text::rsplit_once(seg, b'.')?;
    if ext.is_empty() || ext.len() > 5 || !ext.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(ext.to_ascii_lowercase())
}

/// Extensions whose links count as file downloads.
pub const DOWNLOADS: &[&str] = &[
    "pdf", "zip", "gz", "tgz", "rar", "7z", "dmg", "exe", "msi", "pkg", "deb", "rpm", "apk", "iso",
    "csv", "xls", "xlsx", "doc", "docx", "ppt", "pptx", "txt", "mp3", "mp4", "mov", "avi", "wav",
];

/// The Segment `context.campaign` object parsed from the `utm_*` parameters of `search`,
/// or `None` when there are none. `decode` undoes the form encoding of a value (the
/// browser's `decodeURIComponent`: percent-decoding in Rust costs 0.6 KB of wasm).
pub fn campaign_json(search: &str, decode: impl Fn(&str) -> String) -> Option<String> {
    let mut out = String::new();
    let mut obj = Obj::new(&mut out);
    let mut any = false;
    for (k, v) in query_pairs(search) {
        let key = match k {
            "utm_source" => "source",
            "utm_medium" => "medium",
            "utm_campaign" => "name",
            "utm_term" => "term",
            "utm_content" => "content",
            "utm_id" => "id",
            _ => continue,
        };
        obj.str(key, &decode(v));
        any = true;
    }
    obj.end();
    any.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A stand-in for decodeURIComponent (after `+` → space) good for ASCII escapes.
    fn dec(v: &str) -> String {
        let b = v.as_bytes();
        let mut out = String::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(' '),
                b'%' if i + 2 < b.len() => {
                    out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap() as char);
                    i += 2;
                }
                c => out.push(c as char),
            }
            i += 1;
        }
        out
    }

    #[test]
    fn parses_utm_campaign() {
        let c = campaign_json(
            "?utm_source=news&utm_medium=email&utm_campaign=spring+sale&utm_term=shoes&utm_content=hero%20b&x=1",
            dec,
        );
        assert_eq!(
            c.as_deref(),
            Some(
                r#"{"source":"news","medium":"email","name":"spring sale","term":"shoes","content":"hero b"}"#
            )
        );
        assert_eq!(campaign_json("?a=1&b", dec), None);
        assert_eq!(campaign_json("", dec), None);
        assert_eq!(
            query_pairs("?a=1&b&&c=%20"),
            [("a", "1"), ("b", ""), ("c", "%20")]
        );
    }

    #[test]
    fn redacts_named_params_only() {
        let names = vec!["token".to_string(), "Email".to_string()];
        assert_eq!(
            redact(
                "https://x.io/p?a=1&token=s3cret&EMAIL=a%40b.c&b=2#h?token=x",
                &names
            ),
            "https://x.io/p?a=1&token=REDACTED&EMAIL=REDACTED&b=2#h?token=x"
        );
        assert_eq!(redact("https://x.io/p#f", &names), "https://x.io/p#f");
        assert_eq!(redact("https://x.io/p?", &names), "https://x.io/p?");
        assert_eq!(
            redact("https://x.io/?TOKEN=1&tokens=2", &names),
            "https://x.io/?TOKEN=REDACTED&tokens=2"
        );
    }

    #[test]
    fn splits_paths_and_search() {
        assert_eq!(path("https://x.io/a/b?c=1#d"), "/a/b");
        assert_eq!(path("https://x.io"), "/");
        assert_eq!(search("https://x.io/a?c=1#d"), "?c=1");
        assert_eq!(search("https://x.io/a#d?x"), "");
    }

    #[test]
    fn finds_hosts_and_extensions() {
        assert_eq!(host("https://u:p@Ex.COM:8080/a").as_deref(), Some("ex.com"));
        assert_eq!(host("http://[::1]:80/").as_deref(), Some("[::1]"));
        assert_eq!(host("mailto:a@b.c"), None);
        assert_eq!(
            extension("https://x.io/files/Report.PDF?v=1").as_deref(),
            Some("pdf")
        );
        assert_eq!(extension("https://x.io/a.b/page"), None);
        assert_eq!(extension("https://x.io/"), None);
    }
}
