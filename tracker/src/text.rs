//! Small string helpers that cannot panic.
//!
//! Slicing a `str` by index or matching `char` patterns pulls in core's panic messages,
//! `Debug` formatting and Unicode tables (several KB of wasm). These helpers split at
//! ASCII bytes with `str::get`, which never panics, so none of that is linked.

/// Position of the first `b` in `s`.
pub fn find(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|x| x == b)
}

/// `s[a..b]`, or "" if that is not a valid range.
pub fn sub(s: &str, a: usize, b: usize) -> &str {
    s.get(a..b).unwrap_or("")
}

/// `s[a..]`, or "".
pub fn from(s: &str, a: usize) -> &str {
    s.get(a..).unwrap_or("")
}

/// Splits at the first `b` (which is dropped).
pub fn split_once(s: &str, b: u8) -> Option<(&str, &str)> {
    let i = find(s, b)?;
    Some((sub(s, 0, i), from(s, i + 1)))
}

/// Splits at the last `b` (which is dropped).
pub fn rsplit_once(s: &str, b: u8) -> Option<(&str, &str)> {
    let i = s.bytes().rposition(|x| x == b)?;
    Some((sub(s, 0, i), from(s, i + 1)))
}

/// The pieces of `s` between the `b` separators.
pub fn split(s: &str, b: u8) -> Split<'_> {
    Split { rest: Some(s), b }
}

pub struct Split<'a> {
    rest: Option<&'a str>,
    b: u8,
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        match split_once(s, self.b) {
            Some((head, tail)) => {
                self.rest = Some(tail);
                Some(head)
            }
            None => {
                self.rest = None;
                Some(s)
            }
        }
    }
}

/// `s` without leading and trailing ASCII spaces.
pub fn trim(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|&c| c != b' ').unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c != b' ').map_or(start, |i| i + 1);
    sub(s, start, end)
}

/// Parses decimal digits (no sign, no spaces).
pub fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (b - b'0') as u64;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn splits_without_panicking() {
        assert_eq!(split_once("a=b=c", b'='), Some(("a", "b=c")));
        assert_eq!(rsplit_once("a/b/c", b'/'), Some(("a/b", "c")));
        assert_eq!(split_once("abc", b'='), None);
        assert_eq!(split("a&&b&", b'&').collect::<Vec<_>>(), ["a", "", "b", ""]);
        assert_eq!(sub("é", 0, 1), "");
        assert_eq!(from("ab", 5), "");
    }

    #[test]
    fn parses_integers() {
        assert_eq!(parse_u64("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_u64("1a"), None);
        assert_eq!(parse_u64("-1"), None);
    }
}
