//! Which partition a visitor's events go to. The relay sends each batch to one partition so
//! several batches (one per partition) can be in flight at once, and it picks the partition
//! from the partition key exactly as the Event Hubs gateway would: the Jenkins lookup3 hash the
//! Azure SDKs share (ported from azure_messaging_eventhubs 0.16, `PartitionResolver`, MIT, which
//! ports the .NET SDK). Same key, same partition, so each visitor's events stay in order, and a
//! consumer sees the same layout as if the service had routed by key.

/// Maps partition keys onto a hub's partition ids.
#[derive(Debug, Clone)]
pub struct Partitions {
    ids: Vec<String>,
}

impl Partitions {
    pub fn new(ids: Vec<String>) -> anyhow::Result<Self> {
        anyhow::ensure!(!ids.is_empty(), "the event hub reports no partitions");
        Ok(Partitions { ids })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn id(&self, index: usize) -> &str {
        &self.ids[index]
    }

    /// The partition index for a key; events without a key are spread by `fallback`.
    pub fn index_for(&self, key: Option<&str>, fallback: usize) -> usize {
        match key {
            Some(k) => (hash_code(k) as i32 % self.ids.len() as i32).unsigned_abs() as usize,
            None => fallback % self.ids.len(),
        }
    }
}

/// The 16-bit hash the gateway uses for partition keys.
pub fn hash_code(key: &str) -> i16 {
    let (h1, h2) = lookup3(key.as_bytes());
    (h1 ^ h2) as u16 as i16
}

fn lookup3(data: &[u8]) -> (u32, u32) {
    fn le32(b: &[u8]) -> u32 {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    let mut a = 0xDEAD_BEEF_u32.wrapping_add(data.len() as u32);
    let mut b = a;
    let mut c = a;
    let chunks = if data.len() > 12 {
        (data.len() - 1) / 12
    } else {
        0
    };
    let mut off = 0;
    for _ in 0..chunks {
        a = a.wrapping_add(le32(&data[off..]));
        b = b.wrapping_add(le32(&data[off + 4..]));
        c = c.wrapping_add(le32(&data[off + 8..]));
        off += 12;
        a = a.wrapping_sub(c);
        a ^= c.rotate_left(4);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a);
        b ^= a.rotate_left(6);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b);
        c ^= b.rotate_left(8);
        b = b.wrapping_add(a);
        a = a.wrapping_sub(c);
        a ^= c.rotate_left(16);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a);
        b ^= a.rotate_left(19);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b);
        c ^= b.rotate_left(4);
        b = b.wrapping_add(a);
    }
    let t = &data[off..];
    let byte = |i: usize, shift: u32| (t[i] as u32) << shift;
    match t.len() {
        12 => {
            a = a.wrapping_add(le32(t));
            b = b.wrapping_add(le32(&t[4..]));
            c = c.wrapping_add(le32(&t[8..]));
        }
        n @ 9..=11 => {
            for (i, shift) in [(10, 16), (9, 8), (8, 0)] {
                if i < n {
                    c = c.wrapping_add(byte(i, shift));
                }
            }
            b = b.wrapping_add(le32(&t[4..]));
            a = a.wrapping_add(le32(t));
        }
        8 => {
            b = b.wrapping_add(le32(&t[4..]));
            a = a.wrapping_add(le32(t));
        }
        n @ 5..=7 => {
            for (i, shift) in [(6, 16), (5, 8), (4, 0)] {
                if i < n {
                    b = b.wrapping_add(byte(i, shift));
                }
            }
            a = a.wrapping_add(le32(t));
        }
        4 => a = a.wrapping_add(le32(t)),
        n @ 1..=3 => {
            for (i, shift) in [(2, 16), (1, 8), (0, 0)] {
                if i < n {
                    a = a.wrapping_add(byte(i, shift));
                }
            }
        }
        _ => return (c, b),
    }
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(24));
    (c, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from the .NET SDK's PartitionResolverTests (also used by the Rust SDK): the
    /// hash must agree with the gateway.
    #[test]
    fn hash_matches_the_sdk_vectors() {
        let cases: &[(&str, i16)] = &[
            ("7", -15263),
            ("131", 30562),
            ("7149583486996073602", 12977),
            ("FWfAT", -22341),
            ("sOdeEAsyQoEuEFPGerWO", -6503),
            ("FAyAIctPeCgmiwLKbJcyswoHglHVjQdvtBowLACDNORsYvOcLddNJYDmhAVkbyLOrHTKLneMNcbgWVlasVywOByANjs", 5226),
            ("1XYM6!(7(lF5wq4k4m*e$Nc!1ezLJv*1YK1Y-C^*&B$O)lq^iUkG(TNzXG;Zi#z2Og*Qq0#^*k):vXh$3,C7We7%W0meJ;b3,rQCg^J;^twXgs5E$$hWKxqp", 23950),
            ("E(x;RRIaQcJs*P;D&jTPau-4K04oqr:lF6Z):ERpo&;9040qyV@G1_c9mgOs-8_8/10Fwa-7b7-yP!T-!IH&968)FWuI;(^g$2fN;)HJ^^yTn:", -29304),
            ("!c*_!I@1^c", 15372),
            ("p4*!jioeO/z-!-;w:dh", -3104),
            ("$0cb", 26269),
            ("-4189260826195535198", 453),
        ];
        for (key, want) in cases {
            assert_eq!(hash_code(key), *want, "key {key}");
        }
    }

    #[test]
    fn keys_map_into_range_and_stay_put() {
        for n in 1..=32 {
            let p = Partitions::new((0..n).map(|i| i.to_string()).collect()).unwrap();
            for key in ["7", "FWfAT", "", "$0cb", "anon-3"] {
                let i = p.index_for(Some(key), 0);
                assert!(i < n);
                assert_eq!(i, p.index_for(Some(key), 5));
            }
            assert_eq!(p.index_for(None, n + 1), 1 % n);
        }
        assert!(Partitions::new(vec![]).is_err());
    }
}
