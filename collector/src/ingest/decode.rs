//! Turns an HTTP request body into JSON bytes: checks the content type, reads the body under a
//! size cap, and gunzips it under the same cap (so a gzip bomb costs at most the cap).

use std::io::Read;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use hyper::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::StatusCode;

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

/// Read the whole body, decompressing gzip, refusing anything over `max` bytes.
pub async fn read_body<B>(headers: &HeaderMap, body: B, max: usize) -> Result<Bytes, ApiError>
where
    B: Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the {max}-byte limit"),
        )
    };
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
    if let Some(len) = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            return Err(too_large());
        }
    }
    let raw = match Limited::new(body, max).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(too_large())
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {e}"),
            ))
        }
    };
    if !gzip {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity((raw.len() * 4).min(max + 1));
    let mut dec = flate2::read::MultiGzDecoder::new(&raw[..]).take(max as u64 + 1);
    dec.read_to_end(&mut out).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body is not valid gzip: {e}"),
        )
    })?;
    if out.len() > max {
        return Err(too_large());
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use std::io::Write;

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
        let b = read_body(&HeaderMap::new(), Full::new(Bytes::from("{}")), 10)
            .await
            .unwrap();
        assert_eq!(b, "{}");
        let h = headers(&[("content-encoding", "gzip")]);
        let b = read_body(&h, Full::new(Bytes::from(gz(b"{\"a\":1}"))), 100)
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
        )
        .await
        .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        let bomb = gz(&vec![b' '; 1 << 20]);
        assert!(bomb.len() < 10_000);
        let h = headers(&[("content-encoding", "gzip")]);
        let e = read_body(&h, Full::new(Bytes::from(bomb)), 10_000)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn bad_encoding_and_type() {
        let h = headers(&[("content-encoding", "br")]);
        assert_eq!(
            read_body(&h, Full::new(Bytes::new()), 10)
                .await
                .unwrap_err()
                .status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let h = headers(&[("content-encoding", "gzip")]);
        assert_eq!(
            read_body(&h, Full::new(Bytes::from("nope")), 10)
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
