//! Turns an HTTP request body into JSON bytes: checks the content type, reads the body under a
//! size cap, and gunzips it under the same cap (so a gzip bomb costs at most the cap). What it
//! holds is reserved against the collector-wide bound on bytes in flight as it grows.

use std::io::Read;

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::StatusCode;

use super::inflight::Reservation;
use super::ApiError;

/// Check the media type: JSON, or text/plain because browsers send beacons that way. A
/// form-urlencoded type is taken too: it is what `curl -d` sends, and the body must still be JSON.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    match essence {
        "application/json" | "text/plain" | "application/x-www-form-urlencoded" | "" => Ok(()),
        other if other.ends_with("+json") => Ok(()),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type {other:?} is not supported; send application/json or text/plain"),
        )),
    }
}

/// Read the whole body, decompressing gzip, refusing anything over `max` bytes. `held` grows
/// with what is read (the body as sent, and after gunzip both copies).
pub async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    max: usize,
    held: &mut Reservation,
) -> Result<Bytes, ApiError>
where
    B: Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let gzip = match headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase())
    {
        None => false,
        Some(e) if e.is_empty() || e == "identity" => false,
        Some(e) if e == "gzip" || e == "x-gzip" => true,
        Some(e) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {e:?} is not supported; send gzip or no encoding"),
            ))
        }
    };
    match declared_length(headers) {
        Some(len) if len > max as u64 => return Err(too_large(max)),
        Some(len) => held.grow_to(len as usize)?,
        None => {}
    }
    let raw = collect_capped(std::pin::pin!(body), max, held).await?;
    if !gzip {
        return Ok(raw);
    }
    gunzip(&raw, max, held)
}

/// Decompress a gzip body (one member or several) in steps, reserving as the output grows.
fn gunzip(raw: &[u8], max: usize, held: &mut Reservation) -> Result<Bytes, ApiError> {
    const STEP: usize = 64 << 10;
    let mut out = Vec::new();
    let mut dec = flate2::read::MultiGzDecoder::new(raw).take((max as u64).saturating_add(1));
    loop {
        held.grow_to(raw.len() + out.len() + STEP)?;
        let before = out.len();
        (&mut dec)
            .take(STEP as u64)
            .read_to_end(&mut out)
            .map_err(|e| ApiError::bad_request(format!("body is not valid gzip: {e}")))?;
        if out.len() > max {
            return Err(too_large(max));
        }
        if out.len() - before < STEP {
            return Ok(Bytes::from(out));
        }
    }
}

/// A body found larger than the cap is read on, and thrown away, up to this many times the
/// cap; past that the connection is dropped.
const DRAIN_FACTOR: usize = 4;

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than the {max}-byte limit"),
    )
}

/// The body size `Content-Length` announces, if any.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(CONTENT_LENGTH)?.to_str().ok()?;
    value.parse().ok()
}

/// Collect the body's data frames, refusing them once they pass `max` bytes.
async fn collect_capped<B>(
    mut body: std::pin::Pin<&mut B>,
    max: usize,
    held: &mut Reservation,
) -> Result<Bytes, ApiError>
where
    B: Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {e}"),
            )
        })?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers
        };
        len += data.remaining();
        if len > max {
            return Err(too_large(max));
        }
        held.grow_to(len)?;
        chunks.push(data.copy_to_bytes(data.remaining()));
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().expect("one chunk"),
        _ => Bytes::from(chunks.concat()),
    })
}

/// After a refusal that came before the body's end (413, or 503 at the bound on bytes in
/// flight): read and drop the rest of the body, up to [`DRAIN_FACTOR`] times the cap (and not
/// at all when `Content-Length` says more), so the client is not cut off mid-send and gets to
/// read the answer. Closing a socket with unread data resets the connection, and the client
/// may lose the answer with it. The caller bounds the time it takes.
pub async fn discard_rest<B: Body>(headers: &HeaderMap, body: B, max: usize) {
    let limit = max.saturating_mul(DRAIN_FACTOR);
    let declared = declared_length(headers);
    if declared.is_some_and(|len| len > max.saturating_add(limit) as u64) {
        return;
    }
    let mut body = std::pin::pin!(body);
    let mut seen = 0usize;
    while seen <= limit {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, Buf::remaining),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::inflight::InFlight;
    use http_body_util::Full;
    use std::io::Write;

    fn unbounded() -> Reservation {
        InFlight::new(0).reservation()
    }

    #[tokio::test]
    async fn what_is_read_is_reserved() {
        let pool = InFlight::new(1000);
        let mut held = pool.reservation();
        let body = Full::new(Bytes::from(vec![b' '; 600]));
        read_body(&HeaderMap::new(), body, 10_000, &mut held)
            .await
            .unwrap();
        assert_eq!(held.bytes(), 600);
        let mut other = pool.reservation();
        let h = headers(&[("content-length", "500")]);
        let e = read_body(&h, Full::new(Bytes::new()), 10_000, &mut other)
            .await
            .unwrap_err();
        assert_eq!(
            e.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "refused from the header"
        );
        drop(held);
        let h = headers(&[("content-encoding", "gzip")]);
        let e = read_body(
            &h,
            Full::new(Bytes::from(gz(&[b'a'; 5000]))),
            10_000,
            &mut other,
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "gunzip output counts too"
        );
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[tokio::test]
    async fn plain_and_gzip() {
        let b = read_body(
            &HeaderMap::new(),
            Full::new(Bytes::from("{}")),
            10,
            &mut unbounded(),
        )
        .await
        .unwrap();
        assert_eq!(b, "{}");
        let h = headers(&[("content-encoding", "gzip")]);
        let b = read_body(
            &h,
            Full::new(Bytes::from(gz(b"{\"a\":1}"))),
            100,
            &mut unbounded(),
        )
        .await
        .unwrap();
        assert_eq!(b, "{\"a\":1}");
    }

    #[tokio::test]
    async fn caps_raw_and_decompressed_size() {
        let e = read_body(
            &HeaderMap::new(),
            Full::new(Bytes::from(vec![b' '; 11])),
            10,
            &mut unbounded(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        let bomb = gz(&vec![b' '; 1 << 20]);
        assert!(bomb.len() < 10_000);
        let h = headers(&[("content-encoding", "gzip")]);
        let e = read_body(&h, Full::new(Bytes::from(bomb)), 10_000, &mut unbounded())
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    /// A body of chunks that counts how many were read.
    struct Chunks {
        left: std::collections::VecDeque<Bytes>,
        read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            let next = self.left.pop_front();
            if next.is_some() {
                self.read.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            std::task::Poll::Ready(next.map(|b| Ok(hyper::body::Frame::data(b))))
        }
    }

    fn chunks(n: usize, size: usize) -> (Chunks, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let read = std::sync::Arc::default();
        let left = (0..n).map(|_| Bytes::from(vec![b' '; size])).collect();
        let body = Chunks {
            left,
            read: std::sync::Arc::clone(&read),
        };
        (body, read)
    }

    #[tokio::test]
    async fn an_oversize_body_is_read_to_its_end_within_a_bound() {
        use std::sync::atomic::Ordering::SeqCst;
        // Declared too large: refused from the header, then read on so the client can finish
        // sending and read the 413.
        let (body, read) = chunks(3, 10);
        let mut body = std::pin::pin!(body);
        let h = headers(&[("content-length", "30")]);
        let e = read_body(&h, body.as_mut(), 10, &mut unbounded())
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(read.load(SeqCst), 0);
        discard_rest(&h, body.as_mut(), 10).await;
        assert_eq!(read.load(SeqCst), 3);
        // Declared far too large: not read at all.
        let (body, read) = chunks(100, 10);
        let h = headers(&[("content-length", "1000")]);
        discard_rest(&h, body, 10).await;
        assert_eq!(read.load(SeqCst), 0);
        // Undeclared and far too large: read to the cap, then on to a few times the cap.
        let (body, read) = chunks(100, 5);
        let mut body = std::pin::pin!(body);
        let e = read_body(&HeaderMap::new(), body.as_mut(), 10, &mut unbounded())
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(read.load(SeqCst), 3);
        discard_rest(&HeaderMap::new(), body.as_mut(), 10).await;
        assert_eq!(read.load(SeqCst), 3 + 9);
        // Several chunks that fit are joined.
        let (body, _) = chunks(3, 3);
        assert_eq!(
            read_body(&HeaderMap::new(), body, 10, &mut unbounded())
                .await
                .unwrap()
                .len(),
            9
        );
    }

    #[tokio::test]
    async fn bad_encoding_and_type() {
        let h = headers(&[("content-encoding", "br")]);
        assert_eq!(
            read_body(&h, Full::new(Bytes::new()), 10, &mut unbounded())
                .await
                .unwrap_err()
                .status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let h = headers(&[("content-encoding", "gzip")]);
        assert_eq!(
            read_body(&h, Full::new(Bytes::from("nope")), 10, &mut unbounded())
                .await
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        assert!(
            check_content_type(&headers(&[("content-type", "text/plain;charset=UTF-8")])).is_ok()
        );
        assert!(check_content_type(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )]))
        .is_ok());
        assert_eq!(
            check_content_type(&headers(&[("content-type", "application/xml")]))
                .unwrap_err()
                .status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
