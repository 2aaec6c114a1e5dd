//! Serves a directory over HTTP: the built tracker under its first-party prefix, and the demo
//! site. Correct content types (application/wasm enables streaming compilation), strong ETags
//! with 304 answers, and no way out of the directory.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use hyper::{Response, StatusCode};

use crate::respond::{self, Body};

pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "wasm" => "application/wasm",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "txt" | "md" | "ts" => "text/plain; charset=utf-8",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// The file for a URL path below the mount point, or `None` if it would leave `root`.
pub fn resolve(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel = rel.trim_start_matches('/');
    let mut path = root.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if rel.contains('\\') || rel.contains('\0') {
        return None;
    }
    Some(path)
}

/// Names like `tracker.3fa9c2d1.wasm` carry a content hash and never change.
fn is_hashed_name(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.split('.')
        .any(|part| part.len() >= 8 && part.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Serve `rel` from `root` (a directory maps to its index.html).
pub async fn serve(root: &Path, rel: &str, headers: &HeaderMap) -> Response<Body> {
    let Some(mut path) = resolve(root, rel) else {
        return respond::error(StatusCode::NOT_FOUND, "no such file");
    };
    if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_dir()) {
        path.push("index.html");
    }
    let data = match tokio::fs::read(&path).await {
        Ok(d) => d,
        Err(_) => return respond::error(StatusCode::NOT_FOUND, format!("no such file: {rel}")),
    };
    let etag = format!("\"{:x}-{:08x}\"", data.len(), crc32c::crc32c(&data));
    let cache = if is_hashed_name(&path) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300, must-revalidate"
    };
    let not_modified = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if not_modified {
        Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .body(respond::empty())
            .unwrap()
    } else {
        Response::builder()
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, content_type(&path))
            .body(respond::full(Bytes::from(data)))
            .unwrap()
    };
    let h = resp.headers_mut();
    h.insert(ETAG, HeaderValue::from_str(&etag).unwrap());
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_stays_inside() {
        let root = Path::new("/srv/site");
        assert_eq!(
            resolve(root, "/a/b.js").unwrap(),
            PathBuf::from("/srv/site/a/b.js")
        );
        assert_eq!(resolve(root, "").unwrap(), PathBuf::from("/srv/site"));
        assert!(resolve(root, "/../etc/passwd").is_none());
        assert!(resolve(root, "/a/../../x").is_none());
        assert!(resolve(root, "//etc/passwd").is_some_and(|p| p.starts_with(root)));
    }

    #[test]
    fn types_and_hashes() {
        assert_eq!(
            content_type(Path::new("x/tracker_bg.wasm")),
            "application/wasm"
        );
        assert!(content_type(Path::new("tracker.js")).starts_with("text/javascript"));
        assert!(is_hashed_name(Path::new("tracker.3fa9c2d1.wasm")));
        assert!(!is_hashed_name(Path::new("tracker_bg.wasm")));
    }

    #[tokio::test]
    async fn etag_and_304() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.wasm"), b"\0asm").unwrap();
        let r = serve(dir.path(), "/t.wasm", &HeaderMap::new()).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/wasm");
        let etag = r.headers()[ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, etag);
        assert_eq!(
            serve(dir.path(), "/t.wasm", &h).await.status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            serve(dir.path(), "/nope.js", &h).await.status(),
            StatusCode::NOT_FOUND
        );
    }
}
