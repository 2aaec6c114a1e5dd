//! Optional TLS termination with rustls, for deployments without a proxy in front. The
//! certificate and key are read at start and again on SIGHUP; a broken pair on reload is
//! refused and the old one kept. ALPN offers HTTP/2 and HTTP/1.1.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The certificate chain and key files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Tls {
    acceptor: RwLock<TlsAcceptor>,
}

fn build(cfg: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .with_context(|| format!("reading TLS certificate {}", cfg.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cfg.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in {}", cfg.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key)
        .with_context(|| format!("reading TLS key {}", cfg.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS key does not match the certificate")?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

impl Tls {
    pub fn load(cfg: &TlsConfig) -> anyhow::Result<Tls> {
        Ok(Tls {
            acceptor: RwLock::new(build(cfg)?),
        })
    }

    /// Re-read the files (possibly new paths); keep the old acceptor if they are broken.
    pub fn reload(&self, cfg: &TlsConfig) -> anyhow::Result<()> {
        let acceptor = build(cfg)?;
        *self.acceptor.write().unwrap() = acceptor;
        Ok(())
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.read().unwrap().clone()
    }
}
