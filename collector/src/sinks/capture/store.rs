//! Capture files in an object store (Azure Blob / ADLS Gen2, S3, GCS) instead of a local
//! directory. The store is opened from a URL with the `object_store` crate, which reads the
//! same environment variables as other tools (`AZURE_STORAGE_*`, `AWS_*`, `GOOGLE_*`). A file
//! is uploaded whole when it rolls: one PUT when small, a block (multipart) upload when large;
//! either way the object appears under its name only when complete.
//!
//! Errors from the store can quote request URLs, and a SAS or presigned URL carries its
//! signature in the query: every error leaving this module goes through [`redact`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};
use tokio::io::AsyncWriteExt;
use url::Url;

/// Where capture files go: a local directory, or a prefix in an object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Dir(std::path::PathBuf),
    Store(Url),
}

/// Parse `--capture-url`: `file:///dir`, `az://container/prefix`,
/// `abfss://container@account.dfs.core.windows.net/prefix`, `s3://bucket/prefix`,
/// `gs://bucket/prefix`. Credentials belong in the environment, never in the URL.
pub fn parse_destination(text: &str) -> Result<Destination, String> {
    let url = Url::parse(text).map_err(|e| format!("not a URL ({e}): {text}"))?;
    if url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err(
            "the capture URL must not carry credentials, a query or a fragment; \
             put credentials in the environment (AZURE_STORAGE_*, AWS_*, GOOGLE_*)"
                .into(),
        );
    }
    match url.scheme() {
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|()| format!("{text}: a file URL needs an absolute local path"))?;
            Ok(Destination::Dir(path))
        }
        "az" | "abfs" | "abfss" | "s3" | "gs" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "{text}: name the container or bucket, e.g. {}://NAME/prefix",
                    url.scheme()
                ));
            }
            Ok(Destination::Store(url))
        }
        other => Err(format!(
            "unsupported capture URL scheme {other:?}: use file, az, abfss, s3 or gs"
        )),
    }
}

/// The URL without its user part, safe to log.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// An open object store and the prefix capture files go under.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    pub shown: String,
}

/// Bytes per upload part, and the size below which a file goes up in one PUT.
const PART_BYTES: usize = 10 << 20;
/// Parts in flight at once: bounds the memory an upload holds to about this many parts.
const PARTS_IN_FLIGHT: usize = 2;

impl Store {
    /// Open the store named by `url`, with credentials from the environment. Requests that
    /// fail (including throttling: 429, 503) are retried by `object_store` with backoff for
    /// up to a minute; past that the sink's own backoff takes over.
    pub fn open(url: &Url) -> anyhow::Result<Store> {
        let retry = RetryConfig {
            max_retries: 4,
            retry_timeout: Duration::from_secs(60),
            ..Default::default()
        };
        let text = url.as_str();
        let inner: Arc<dyn ObjectStore> = match url.scheme() {
            "az" | "abfs" | "abfss" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(text)
                    .with_retry(retry)
                    .build()
                    .map_err(redacted)?,
            ),
            "s3" => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(text)
                    .with_retry(retry)
                    .build()
                    .map_err(redacted)?,
            ),
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(text)
                    .with_retry(retry)
                    .build()
                    .map_err(redacted)?,
            ),
            other => anyhow::bail!("not an object store URL scheme: {other}"),
        };
        let prefix = ObjectPath::from_url_path(url.path())
            .with_context(|| format!("the path of {}", display_url(url)))?;
        Ok(Store {
            inner,
            prefix,
            shown: display_url(url),
        })
    }

    /// An in-memory store under the prefix `lake`, for tests.
    #[cfg(test)]
    pub fn memory() -> Store {
        Store {
            inner: Arc::new(object_store::memory::InMemory::new()),
            prefix: ObjectPath::from("lake"),
            shown: "memory:///lake".into(),
        }
    }

    /// Store `bytes` as `name` (tests: another writer's object).
    #[cfg(test)]
    pub async fn put(&self, name: &ObjectPath, bytes: &'static [u8]) {
        self.inner.put(name, bytes.into()).await.unwrap();
    }

    /// Delete `name` (tests: an upload that never completed).
    #[cfg(test)]
    pub async fn delete(&self, name: &ObjectPath) {
        self.inner.delete(name).await.unwrap();
    }

    /// The object `rel` (a `/`-separated path) under the prefix.
    pub fn path(&self, rel: &str) -> ObjectPath {
        rel.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |p, part| p.join(part))
    }

    /// The size of `name`, or `None` if there is no such object.
    pub async fn size_of(&self, name: &ObjectPath) -> anyhow::Result<Option<u64>> {
        match self.inner.head(name).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(redacted(e)).with_context(|| format!("checking {name}")),
        }
    }

    /// Upload the local file `from` as `name`, whole: one PUT up to [`PART_BYTES`], a
    /// multipart upload above (aborted on failure). Returns the bytes uploaded.
    pub async fn upload(&self, from: &Path, name: &ObjectPath) -> anyhow::Result<u64> {
        let mut file = tokio::fs::File::open(from)
            .await
            .with_context(|| format!("opening {}", from.display()))?;
        let mut w = BufWriter::with_capacity(self.inner.clone(), name.clone(), PART_BYTES)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        let copied = async {
            let n = tokio::io::copy(&mut file, &mut w).await?;
            w.shutdown().await?;
            Ok::<u64, std::io::Error>(n)
        }
        .await;
        match copied {
            Ok(n) => Ok(n),
            Err(e) => {
                let _ = w.abort().await;
                Err(anyhow::anyhow!(redact(&e.to_string())))
                    .with_context(|| format!("uploading {name}"))
            }
        }
    }

    /// Every object under the prefix (or under `rel` below it) whose name ends in `suffix`,
    /// sorted by name (which sorts capture files by time).
    pub async fn list(&self, rel: &str, suffix: &str) -> anyhow::Result<Vec<(ObjectPath, u64)>> {
        use futures::TryStreamExt;
        let under = self.path(rel);
        let mut out: Vec<(ObjectPath, u64)> = self
            .inner
            .list(Some(&under))
            .map_ok(|m| (m.location, m.size))
            .try_collect::<Vec<_>>()
            .await
            .map_err(redacted)
            .with_context(|| format!("listing {under}"))?
            .into_iter()
            .filter(|(p, _)| p.as_ref().ends_with(suffix))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Download `name` into the local file `to`, streaming.
    pub async fn download(&self, name: &ObjectPath, to: &Path) -> anyhow::Result<()> {
        use futures::StreamExt;
        let got = self
            .inner
            .get(name)
            .await
            .map_err(redacted)
            .with_context(|| format!("reading {name}"))?;
        let mut out = tokio::fs::File::create(to).await?;
        let mut body = got.into_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(redacted)
                .with_context(|| format!("reading {name}"))?;
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        Ok(())
    }
}

fn redacted(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(redact(&e.to_string()))
}

/// Query parameters that carry secrets in SAS and presigned URLs.
const SECRET_PARAMS: &[&str] = &[
    "sig=",
    "signature=",
    "x-amz-signature=",
    "x-amz-security-token=",
    "x-amz-credential=",
    "x-goog-signature=",
    "x-goog-credential=",
    "access_token=",
    "code=",
];

/// Environment variables whose values are secrets.
const SECRET_VARS: &[&str] = &[
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_MASTER_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
];

/// `text` with signatures in URLs and the values of secret environment variables replaced by
/// `REDACTED`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for var in SECRET_VARS {
        if let Ok(value) = std::env::var(var) {
            let value = value.trim_start_matches('?');
            if value.len() >= 8 {
                out = out.replace(value, "REDACTED");
            }
        }
    }
    let lower = out.to_ascii_lowercase();
    let mut cuts = Vec::new();
    for param in SECRET_PARAMS {
        for (at, _) in lower.match_indices(param) {
            let preceded = at == 0 || matches!(lower.as_bytes()[at - 1], b'?' | b'&' | b' ');
            if !preceded {
                continue;
            }
            let start = at + param.len();
            let end = lower[start..]
                .find(|c: char| matches!(c, '&' | '"' | '\'' | ')' | '>') || c.is_whitespace())
                .map_or(lower.len(), |n| start + n);
            if end > start {
                cuts.push(start..end);
            }
        }
    }
    cuts.sort_by_key(|r| std::cmp::Reverse(r.start));
    for r in cuts {
        out.replace_range(r, "REDACTED");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_schemes_and_refuses_credentials_in_urls() {
        assert_eq!(
            parse_destination("file:///var/lib/capture").unwrap(),
            Destination::Dir("/var/lib/capture".into())
        );
        for ok in [
            "az://capture/events",
            "abfss://capture@acct.dfs.core.windows.net/events",
            "s3://bucket/prefix",
            "gs://bucket",
        ] {
            assert!(
                matches!(parse_destination(ok), Ok(Destination::Store(_))),
                "{ok}"
            );
        }
        for (bad, says) in [
            ("az://capture/x?sig=abc", "must not carry credentials"),
            ("s3://user:pw@bucket/x", "must not carry credentials"),
            ("ftp://host/x", "unsupported capture URL scheme"),
            ("file://relative", "absolute local path"),
            ("capture", "not a URL"),
        ] {
            let e = parse_destination(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("abc") && !e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn redacts_signatures_in_urls() {
        let text = "error sending request for url (http://127.0.0.1:1/devstoreaccount1/c/x.avro?sv=2021-08-06&ss=b&sig=AbC%2Bd%3D&se=2030) Forbidden";
        let r = redact(text);
        assert!(!r.contains("AbC"), "{r}");
        assert!(r.contains("sig=REDACTED&se=2030"), "{r}");
        assert_eq!(redact("no secrets here"), "no secrets here");
        let presigned =
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA/x&X-Amz-Signature=deadbeef";
        let r = redact(presigned);
        assert!(!r.contains("deadbeef") && !r.contains("AKIA"), "{r}");
    }

    #[test]
    fn object_paths_go_under_the_prefix() {
        let url = Url::parse("az://capture/lake/raw").unwrap();
        let prefix = ObjectPath::from_url_path(url.path()).unwrap();
        let store = Store {
            inner: Arc::new(object_store::memory::InMemory::new()),
            prefix,
            shown: display_url(&url),
        };
        assert_eq!(
            store.path("ns/hub/0/2026/12/04/10/00/00.avro").as_ref(),
            "lake/raw/ns/hub/0/2026/12/04/10/00/00.avro"
        );
    }
}
