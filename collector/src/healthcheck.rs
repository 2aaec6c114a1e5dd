//! `collector healthcheck`: is the collector at a URL ready? A container built `FROM scratch`
//! has no curl or wget for its `HEALTHCHECK`, so the binary probes itself: one GET of
//! `/readyz` over plain HTTP/1.1 (hyper's client), exit 0 on 200 and 1 otherwise.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;

/// `http://ADDR/readyz` for the address the collector serves `/readyz` on (see
/// `config::Options::readyz_address`). An unspecified address (`0.0.0.0`, `::`) is probed on
/// loopback.
pub fn url_for(mut addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}/readyz")
}

/// GET `url`; Ok when it answers 200 within `timeout`.
pub fn probe(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let uri: Uri = url.parse().context("not a URL")?;
    if uri.scheme_str() != Some("http") {
        bail!("only http:// URLs (probe the plain admin address, --admin-listen, behind TLS)");
    }
    let host = uri.host().context("no host in the URL")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(async {
        tokio::time::timeout(timeout, get(uri.clone(), &host, port))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))?
    })?;
    if status != StatusCode::OK {
        bail!("answered {status}");
    }
    Ok(())
}

async fn get(uri: Uri, host: &str, port: u16) -> anyhow::Result<StatusCode> {
    let stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .context("connecting")?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let req = Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())?;
    Ok(sender.send_request(req).await.context("sending")?.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_probes_loopback() {
        assert_eq!(
            url_for("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080/readyz"
        );
        assert_eq!(
            url_for("[::]:9090".parse().unwrap()),
            "http://[::1]:9090/readyz"
        );
        assert_eq!(
            url_for("10.0.0.5:8080".parse().unwrap()),
            "http://10.0.0.5:8080/readyz"
        );
    }

    #[test]
    fn refuses_what_it_cannot_probe() {
        let t = Duration::from_secs(1);
        let e = probe("https://example.org/readyz", t).unwrap_err();
        assert!(e.to_string().contains("only http://"), "{e}");
        // Nothing listens on port 1.
        let e = probe("http://127.0.0.1:1/readyz", t).unwrap_err();
        assert!(format!("{e:#}").contains("connecting"), "{e:#}");
    }
}
