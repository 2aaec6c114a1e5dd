//! The screen: one pass over a request body, before the parser, that refuses what JSON parsing
//! would let through into raw event text but readers downstream choke on: nesting deeper than
//! [`MAX_DEPTH`], numbers outside a 64-bit float's range (`1e400`, 400-digit integers), and `\u`
//! escapes of unpaired UTF-16 surrogates. Problems of plain syntax are left to the parser.
//!
//! Most of a body is short strings. On x86_64 the screen classifies 16 bytes at a time with
//! SSE2 (part of every x86_64 CPU): which bytes are quotes, brackets or number starts, and which
//! of them lie inside strings, so it stops only at numbers, and at brackets only near the depth
//! limit. A block that holds a backslash, and every block on other CPUs, is walked byte by byte;
//! both walks give the same answer (`blocks_agree_with_the_byte_walk`).

use super::ApiError;

/// How deep a request body may nest objects and arrays. A batch body uses two levels (the body
/// and `batch`), so an event's own object may hold 62 more. serde_json's own limit is 128, and
/// only for the parts it builds trees of; raw event text has none.
pub const MAX_DEPTH: usize = 64;

/// Refuse nesting deeper than [`MAX_DEPTH`], numbers that overflow a 64-bit float, and
/// unpaired surrogate escapes.
pub fn screen(body: &[u8]) -> Result<(), ApiError> {
    let mut walk = Walk::new(body);
    #[cfg(target_arch = "x86_64")]
    walk.blocks()?;
    #[cfg(not(target_arch = "x86_64"))]
    walk.bytes(body.len())?;
    Ok(())
}

/// How far the screen has come: everything before `pos` is screened.
struct Walk<'a> {
    body: &'a [u8],
    pos: usize,
    in_string: bool,
    depth: usize,
}

impl<'a> Walk<'a> {
    fn new(body: &'a [u8]) -> Walk<'a> {
        Walk {
            body,
            pos: 0,
            in_string: false,
            depth: 0,
        }
    }

    /// Walk byte by byte up to `stop`; an escape or a number that crosses it is finished.
    fn bytes(&mut self, stop: usize) -> Result<(), ApiError> {
        let body = self.body;
        let stop = stop.min(body.len());
        let mut i = self.pos;
        while i < stop {
            if self.in_string {
                // An unterminated string (or one ending in a lone backslash): the parser says so.
                match memchr::memchr2(b'"', b'\\', &body[i..stop]) {
                    None => i = stop,
                    Some(j) if body[i + j] == b'"' => {
                        self.in_string = false;
                        i += j + 1;
                    }
                    Some(j) => i += j + escape_len(body, i + j)?,
                }
                continue;
            }
            match body[i] {
                b'"' => {
                    self.in_string = true;
                    i += 1;
                }
                b'{' | b'[' => {
                    self.open(i)?;
                    i += 1;
                }
                b'}' | b']' => {
                    self.close();
                    i += 1;
                }
                b'-' | b'0'..=b'9' => i = number_end(body, i)?,
                _ => i += 1,
            }
        }
        self.pos = i;
        Ok(())
    }

    /// Walk the body 16 bytes at a time.
    #[cfg(target_arch = "x86_64")]
    fn blocks(&mut self) -> Result<(), ApiError> {
        let body = self.body;
        // The last block, padded with spaces (which the screen passes over).
        let mut tail = [b' '; 16];
        while self.pos < body.len() {
            let start = self.pos;
            let n = (body.len() - start).min(16);
            let block: &[u8; 16] = match body[start..].first_chunk() {
                Some(block) => block,
                None => {
                    tail[..n].copy_from_slice(&body[start..]);
                    &tail
                }
            };
            let m = sse2::classify(block);
            let valid: u32 = (1 << n) - 1;
            if m.backslash & valid != 0 {
                self.bytes(start + n)?;
                continue;
            }
            // Bit i of `inside` is set when byte i is inside a string (an opening quote
            // counts as inside, a closing one as outside): the parity of the quotes up to it.
            let mut inside = m.quote & valid;
            inside ^= inside << 1;
            inside ^= inside << 2;
            inside ^= inside << 4;
            inside ^= inside << 8;
            let odd_quotes = (inside >> (n - 1)) & 1 == 1;
            if self.in_string {
                inside = !inside;
            }
            let outside = !inside & valid;
            let (opens, closes) = (m.open & outside, m.close & outside);
            let mut stops = m.number & outside;
            let (o, c) = (ones(opens), ones(closes));
            if self.depth >= c && self.depth + o <= MAX_DEPTH {
                // Neither the limit nor zero can be reached within the block: order is moot.
                self.depth = self.depth + o - c;
            } else {
                stops |= opens | closes;
            }
            let mut next = start + n;
            while stops != 0 {
                let i = stops.trailing_zeros() as usize;
                match block[i] {
                    b'{' | b'[' => self.open(start + i)?,
                    b'}' | b']' => self.close(),
                    _ => {
                        let end = number_end(body, start + i)?;
                        if end >= start + n {
                            // The number runs into the next block: nothing follows it here.
                            next = end;
                            break;
                        }
                        stops &= !((1u32 << (end - start)) - 1);
                        continue;
                    }
                }
                stops &= stops - 1;
            }
            self.in_string ^= odd_quotes;
            self.pos = next;
        }
        Ok(())
    }

    fn open(&mut self, at: usize) -> Result<(), ApiError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ApiError::bad_request(format!(
                "JSON nests deeper than {MAX_DEPTH} levels (at byte {at})"
            )));
        }
        Ok(())
    }

    fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}

/// Set bits in a 16-bit mask. The x86_64 baseline has no `popcnt` instruction, and
/// `count_ones` without it costs more than a table.
#[cfg(target_arch = "x86_64")]
fn ones(mask: u32) -> usize {
    const ONES: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = (i as u8).count_ones() as u8;
            i += 1;
        }
        t
    };
    (ONES[(mask & 0xff) as usize] + ONES[(mask >> 8 & 0xff) as usize]) as usize
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    /// One bit per byte of a 16-byte block.
    pub struct Masks {
        pub quote: u32,
        pub backslash: u32,
        pub open: u32,
        pub close: u32,
        pub number: u32,
    }

    pub fn classify(block: &[u8; 16]) -> Masks {
        // SAFETY: SSE2 is part of the x86_64 baseline, and the load reads the 16 bytes of
        // `block`.
        unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            let mask = |x: __m128i| _mm_movemask_epi8(x) as u32;
            let eq = |v: __m128i, c: u8| mask(_mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8)));
            // '[' and '{' differ only in bit 0x20, and so do ']' and '}'.
            let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
            // '0'..='9' become 0..=9 after subtracting '0': those equal their minimum with 9.
            let d = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
            let digit = mask(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d));
            Masks {
                quote: eq(v, b'"'),
                backslash: eq(v, b'\\'),
                open: eq(folded, b'{'),
                close: eq(folded, b'}'),
                number: digit | eq(v, b'-'),
            }
        }
    }
}

/// The end of the number token starting at `start`, checked to fit a 64-bit float.
fn number_end(body: &[u8], start: usize) -> Result<usize, ApiError> {
    let mut exponent = false;
    let mut i = start;
    while i < body.len() {
        match body[i] {
            b'0'..=b'9' | b'-' | b'+' | b'.' => {}
            b'e' | b'E' => exponent = true,
            _ => break,
        }
        i += 1;
    }
    let token = &body[start..i];
    // 15 characters without an exponent always fit; only exponents and long digit runs can
    // overflow.
    if exponent || token.len() > 15 {
        check_number(token, start)?;
    }
    Ok(i)
}

fn check_number(token: &[u8], at: usize) -> Result<(), ApiError> {
    let text = std::str::from_utf8(token).unwrap_or("");
    match text.parse::<f64>() {
        Ok(x) if !x.is_finite() => {
            let shown = if text.len() > 24 {
                format!("{}... ({} characters)", &text[..20], text.len())
            } else {
                text.to_string()
            };
            Err(ApiError::bad_request(format!(
                "number {shown} at byte {at} is out of range: numbers must fit a 64-bit float"
            )))
        }
        _ => Ok(()), // in range, or not a number at all: the parser says so
    }
}

/// The length of the escape starting with the backslash at `i`; a `\u` escape of a UTF-16
/// surrogate must be a high one followed by a low one.
fn escape_len(body: &[u8], i: usize) -> Result<usize, ApiError> {
    if body.get(i + 1) != Some(&b'u') {
        return Ok(2);
    }
    let hex = |at: usize| -> Option<u16> {
        let s = std::str::from_utf8(body.get(at..at + 4)?).ok()?;
        u16::from_str_radix(s, 16).ok()
    };
    let lone = |code: u16| {
        ApiError::bad_request(format!(
            "string has an unpaired surrogate escape \\u{code:04x} at byte {i}; JSON text must be valid Unicode"
        ))
    };
    match hex(i + 2) {
        Some(high @ 0xD800..=0xDBFF) => {
            let low = (body.get(i + 6..i + 8) == Some(b"\\u"))
                .then(|| hex(i + 8))
                .flatten();
            match low {
                Some(0xDC00..=0xDFFF) => Ok(12),
                _ => Err(lone(high)),
            }
        }
        Some(low @ 0xDC00..=0xDFFF) => Err(lone(low)),
        _ => Ok(2), // a plain escape, or a bad one the parser names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    /// The byte-by-byte walk alone, as on CPUs other than x86_64.
    fn by_bytes(body: &[u8]) -> Result<(), ApiError> {
        let mut walk = Walk::new(body);
        walk.bytes(body.len())
    }

    #[test]
    fn depth_limit_counts_levels_outside_strings() {
        let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(screen(nest(MAX_DEPTH).as_bytes()).is_ok());
        let e = screen(nest(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("deeper than 64 levels"), "{}", e.message);
        // Brackets inside strings, escaped quotes included, do not count.
        let text = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
        assert!(screen(text.as_bytes()).is_ok());
        let text = format!(r#"{{"a":"{}","b":"{}"}}"#, "[".repeat(100), "{".repeat(100));
        assert!(screen(text.as_bytes()).is_ok());
    }

    #[test]
    fn numbers_must_fit_a_double() {
        for ok in [
            "0",
            "-1.5e300",
            "1e-400",
            "123456789012345678901234567890",
            "1E+308",
        ] {
            assert!(
                screen(format!(r#"{{"n":{ok}}}"#).as_bytes()).is_ok(),
                "{ok}"
            );
        }
        let e = screen(br#"{"n":1e400}"#).unwrap_err();
        assert!(
            e.message.contains("number 1e400 at byte 5 is out of range"),
            "{}",
            e.message
        );
        let e = screen(format!("[-{}]", "9".repeat(400)).as_bytes()).unwrap_err();
        assert!(
            e.message
                .contains("-9999999999999999999... (401 characters)"),
            "{}",
            e.message
        );
        // Inside a string a number is text.
        assert!(screen(br#"{"n":"1e400"}"#).is_ok());
        // Truncated input, wherever it stops: no panic, and only a cut surrogate pair is
        // refused here (the rest is left to the parser).
        let text = br#"{"a":"x\ud83d\ude00\"","n":-12e3}"#;
        for end in 0..text.len() {
            if let Err(e) = screen(&text[..end]) {
                assert!((13..19).contains(&end), "{end}: {}", e.message);
            }
        }
    }

    #[test]
    fn surrogate_escapes_must_pair() {
        assert!(screen(br#"["\ud83d\ude00", "\u00e9\n\\ud800"]"#).is_ok());
        for bad in [
            r#"["\ud800"]"#,
            r#"["\ud800\u0041"]"#,
            r#"["\udc00"]"#,
            r#"["x\uDBFF"]"#,
        ] {
            let e = screen(bad.as_bytes()).unwrap_err();
            assert!(
                e.message.contains("unpaired surrogate"),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn blocks_agree_with_the_byte_walk() {
        // Pieces that matter to the screen, joined at random: strings that cross 16-byte
        // blocks, escapes (surrogates paired and not) at block edges, numbers that overflow or
        // run across blocks, brackets inside and outside strings, bytes above 0x7f.
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            " ",
            "\"",
            "\"k\":",
            "\"value\"",
            "\"[{\"",
            "\"a long string of plain text, long enough to cross a block\"",
            "\\\"",
            "\\\\",
            "\\n",
            "\\ud83d\\ude00",
            "\\ud800",
            "\\udc00x",
            "\\u00e9",
            "\\u",
            "0",
            "-12",
            "1.5",
            "1e400",
            "1e-400",
            "123456789012345678",
            "9",
            "e",
            "true",
            "null",
            "é",
            "😀",
            "x",
            "[[[[[[[[[[[[[[[[",
            "]]]]]]]]]]]]]]]]",
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20_000 {
            let len = (next() % 60) as usize;
            let text: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            let (a, b) = (screen(text.as_bytes()), by_bytes(text.as_bytes()));
            assert_eq!(a, b, "round {round}: {text}");
        }
        // Deep nesting refused at the same byte either way, across many blocks.
        let deep = format!("{}{}", "[\"x\",".repeat(40), "[".repeat(40));
        assert_eq!(screen(deep.as_bytes()), by_bytes(deep.as_bytes()));
        assert!(screen(deep.as_bytes()).is_err());
    }
}
