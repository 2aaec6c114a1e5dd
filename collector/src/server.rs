//! The accept loop: HTTP/1.1 (keep-alive) and HTTP/2 on one port, plain or TLS. Connection
//! hygiene: a cap on concurrent connections, a cap on the request head size, a timeout for
//! headers (which also closes idle keep-alive connections and defeats slowloris) and for the
//! TLS handshake. The body timeout is applied where bodies are read (routes). Graceful
//! shutdown stops accepting and lets in-flight requests finish.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::ConnConfig;
use crate::routes::{self, App};
use crate::shutdown::Shutdown;
use crate::tls::Tls;

fn builder(conn: &ConnConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(conn.header_timeout)
        .max_buf_size(conn.max_header_bytes)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(conn.max_header_bytes as u32)
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(conn.header_timeout);
    b
}

/// Serve until `shutdown` fires, then wait up to `grace` for open requests.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    conn: ConnConfig,
    tls: Option<Arc<Tls>>,
    mut shutdown: Shutdown,
    grace: Duration,
) {
    let builder = Arc::new(builder(&conn));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(conn.max_connections));
    loop {
        // At the cap, stop accepting: new clients wait in the kernel's backlog.
        let permit = tokio::select! {
            _ = shutdown.wait() => break,
            p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        metrics::gauge!("collector_open_connections")
            .set((conn.max_connections - permits.available_permits()) as f64);
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| routes::handle(app.clone(), req, peer));
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        let handshake_timeout = conn.header_timeout;
        tokio::spawn(async move {
            // The HTTP/1-or-2 detection reads the first bytes before hyper's header timeout is
            // armed, so a client that connects and sends nothing is cut off here.
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(handshake_timeout, stream.peek(&mut first)).await,
                Ok(Ok(1))
            ) {
                drop(permit);
                return;
            }
            let result = match tls {
                None => {
                    watcher
                        .watch(
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .into_owned(),
                        )
                        .await
                }
                Some(tls) => {
                    match tokio::time::timeout(handshake_timeout, tls.acceptor().accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => {
                            watcher
                                .watch(
                                    builder
                                        .serve_connection(TokioIo::new(s), service)
                                        .into_owned(),
                                )
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => Ok(()),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; finishing in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within the grace period");
    }
}
