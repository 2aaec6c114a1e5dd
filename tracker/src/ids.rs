//! Random identifiers: messageId and anonymousId are UUID v4 from the browser's CSPRNG
//! (`crypto.getRandomValues`, falling back to `Math.random` where crypto is unavailable).
//!
//! Laid out by hand: the `uuid` crate's formatter alone costs about 1 KB of wasm for what
//! is twelve lines here.

use alloc::string::String;

pub fn random_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    let ok = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut b).is_ok());
    if !ok {
        for x in b.iter_mut() {
            *x = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    b
}

/// A random (version 4) UUID in its lower-case hyphenated form.
pub fn uuid_v4() -> String {
    from_bytes(random_bytes())
}

/// The UUID text of 16 random bytes, with the version (4) and variant (10xx) bits set.
pub fn from_bytes(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(hex[(x >> 4) as usize] as char);
        s.push(hex[(x & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn lays_out_a_version_4_uuid() {
        let u = from_bytes([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let z = from_bytes([0; 16]);
        assert_eq!(z, "00000000-0000-4000-8000-000000000000");
    }

    #[cfg(target_arch = "wasm32")]
    #[test]
    fn random_ids_differ() {
        let a = uuid_v4();
        let b = uuid_v4();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
