//! The on-disk record format of spool segments: `[len u32][crc32c u32][seq u64][payload]`,
//! little-endian. The CRC covers seq and payload, so recovery can find a torn tail.

use bytes::Bytes;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 16;

/// One spooled event: its position in the spool and the enriched event JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub payload: Bytes,
}

/// Append the encoded record to `out`.
pub fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("payloads are capped far below 4 GiB");
    let seq_bytes = seq.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&seq_bytes), payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&seq_bytes);
    out.extend_from_slice(payload);
}

/// A parsed header: payload length, checksum and sequence number.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub len: usize,
    pub crc: u32,
    pub seq: u64,
}

pub fn decode_header(h: &[u8; HEADER_LEN]) -> Header {
    Header {
        len: u32::from_le_bytes(h[0..4].try_into().unwrap()) as usize,
        crc: u32::from_le_bytes(h[4..8].try_into().unwrap()),
        seq: u64::from_le_bytes(h[8..16].try_into().unwrap()),
    }
}

/// Does `payload` match the header's checksum?
pub fn verify(h: &Header, payload: &[u8]) -> bool {
    crc32c::crc32c_append(crc32c::crc32c(&h.seq.to_le_bytes()), payload) == h.crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let mut buf = Vec::new();
        encode(42, b"{\"a\":1}", &mut buf);
        assert_eq!(buf.len(), HEADER_LEN + 7);
        let h = decode_header(buf[..HEADER_LEN].try_into().unwrap());
        assert_eq!((h.len, h.seq), (7, 42));
        assert!(verify(&h, &buf[HEADER_LEN..]));
        buf[HEADER_LEN] ^= 1;
        assert!(!verify(&h, &buf[HEADER_LEN..]));
    }
}
