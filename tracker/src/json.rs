//! JSON text writing without serde.
//!
//! Messages are assembled as JSON text directly: serde_json (or serde-wasm-bindgen plus
//! `JSON.stringify`) costs tens of KB of wasm, mostly `core::fmt` and float formatting.
//! Everything the tracker itself produces is strings and integers, so a string escaper,
//! an integer writer and an object builder are all that is needed. User-supplied
//! properties are serialised by the browser's own `JSON.stringify`.

use alloc::string::String;

/// Appends `s` as a JSON string literal (quoted and escaped).
pub fn push_str(out: &mut String, s: &str) {
    // Work on bytes: only ASCII bytes are inserted and whole UTF-8 sequences are copied
    // unchanged, so the text stays valid UTF-8 (and no char decoding code is linked).
    // SAFETY: see above; every byte pushed is ASCII or copied verbatim from `s`.
    let v = unsafe { out.as_mut_vec() };
    v.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => v.extend_from_slice(b"\\\""),
            b'\\' => v.extend_from_slice(b"\\\\"),
            b'\n' => v.extend_from_slice(b"\\n"),
            b'\r' => v.extend_from_slice(b"\\r"),
            b'\t' => v.extend_from_slice(b"\\t"),
            0..=0x1f => {
                v.extend_from_slice(b"\\u00");
                v.push(b'0' + (b >> 4));
                v.push(b"0123456789abcdef"[(b & 15) as usize]);
            }
            b => v.push(b),
        }
    }
    v.push(b'"');
}

/// Appends the decimal digits of `n`.
pub fn push_u64(out: &mut String, n: u64) {
    if n >= 10 {
        push_u64(out, n / 10);
    }
    // SAFETY: an ASCII digit keeps the text valid UTF-8.
    unsafe { out.as_mut_vec() }.push(b'0' + (n % 10) as u8);
}

/// The decimal text of `n`.
pub fn u64_str(n: u64) -> String {
    let mut s = String::new();
    push_u64(&mut s, n);
    s
}

/// Writes one JSON object field by field; `end` closes it.
pub struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_str(self.out, k);
        self.out.push(':');
    }

    /// A string field.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        push_str(self.out, v);
        self
    }

    /// A string field, left out when `v` is `None`.
    pub fn opt(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        if let Some(v) = v {
            self.str(k, v);
        }
        self
    }

    /// An integer field.
    pub fn num(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k);
        push_u64(self.out, v);
        self
    }

    /// A field whose value is already JSON text.
    pub fn raw(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        self.out.push_str(v);
        self
    }

    pub fn end(&mut self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn escapes_strings() {
        let mut s = String::new();
        push_str(&mut s, "a\"b\\c\nd\u{1}é✓");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é✓\"");
    }

    #[test]
    fn writes_integers() {
        assert_eq!(u64_str(0), "0");
        assert_eq!(u64_str(1_700_000_000_123), "1700000000123");
        assert_eq!(u64_str(u64::MAX), "18446744073709551615");
    }

    #[test]
    fn builds_objects() {
        let mut s = String::new();
        Obj::new(&mut s)
            .str("a", "x")
            .opt("skip", None)
            .num("n", 7)
            .raw("o", "{}")
            .end();
        assert_eq!(s, r#"{"a":"x","n":7,"o":{}}"#);
    }
}
