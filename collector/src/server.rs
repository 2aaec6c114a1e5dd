//! The accept loop: HTTP/1.1 (keep-alive) and HTTP/2 on one port, plain or TLS. Connection
//! hygiene: a cap on concurrent connections and on those from one client IP (IPv6: one /64), a
//! cap on the request head size and on concurrent HTTP/2 streams, a timeout for headers and
//! the TLS handshake (which defeats slowloris), and an idle timeout: a connection of either
//! protocol with no request in flight for that long is closed, even if its client answers
//! HTTP/2 pings. The body timeout is applied where bodies are read (routes). Graceful shutdown
//! stops accepting and lets in-flight requests finish.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::ingest::ip::limit_key;
use crate::respond::{self, Body};
use crate::routes::{self, App, Role};
use crate::shutdown::Shutdown;
use crate::tls::Tls;

/// Connection limits and timeouts.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub max_connections: usize,
    /// Connections from one client IP (IPv6: one /64) at once; 0 = no limit.
    pub max_connections_per_ip: usize,
    pub max_header_bytes: usize,
    /// For a request's headers, the TLS handshake, and a connection with nothing in flight.
    pub header_timeout: Duration,
    pub http2_max_streams: u32,
}

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
        .max_concurrent_streams(conn.http2_max_streams)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(conn.header_timeout);
    b
}

/// Open connections per client IP key, for the per-IP cap.
struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted against its IP; uncounted when dropped.
struct IpSlot {
    table: Arc<PerIp>,
    key: IpAddr,
}

impl PerIp {
    /// Count a connection from `ip`, unless that IP is at the cap.
    fn enter(table: &Arc<PerIp>, ip: IpAddr) -> Option<IpSlot> {
        let key = limit_key(ip);
        let mut open = table.open.lock().unwrap();
        let n = open.entry(key).or_insert(0);
        if *n >= table.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: table.clone(),
            key,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap();
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Requests on one connection: how many are in flight, and how many have started.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    started: AtomicU64,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Resolves once the connection has had no request in flight and none started for at
    /// least `period` (at most twice that).
    async fn idle(&self, period: Duration) {
        let mut seen = self.started.load(Ordering::Relaxed);
        loop {
            tokio::time::sleep(period).await;
            let now = self.started.load(Ordering::Relaxed);
            if now == seen && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            seen = now;
        }
    }
}

/// A request in flight until its response body is sent or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted as in flight while it is being sent (a
/// Server-Sent Events stream is a request in flight for as long as it lasts).
struct Tracked {
    body: Body,
    _request: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serve until `shutdown` fires, then wait up to `grace` for open requests.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    conn: ConnConfig,
    tls: Option<Arc<Tls>>,
    shutdown: Shutdown,
    grace: Duration,
    role: Role,
) {
    let builder = Arc::new(builder(&conn));
    let permits = Arc::new(Semaphore::new(conn.max_connections));
    let per_ip = (conn.max_connections_per_ip > 0).then(|| {
        Arc::new(PerIp {
            max: conn.max_connections_per_ip,
            open: Mutex::default(),
        })
    });
    let mut stopping = shutdown.clone();
    loop {
        // At the cap, stop accepting: new clients wait in the kernel's backlog.
        let permit = tokio::select! {
            _ = stopping.wait() => break,
            p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = stopping.wait() => break,
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
        if role != Role::Admin {
            metrics::gauge!("collector_open_connections")
                .set((conn.max_connections - permits.available_permits()) as f64);
        }
        let slot = match &per_ip {
            None => None,
            Some(table) => match PerIp::enter(table, peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    metrics::counter!("collector_connections_refused_total", "reason" => "per_ip")
                        .increment(1);
                    let refuse = Connection {
                        builder: builder.clone(),
                        idle: conn.header_timeout,
                        shutdown: shutdown.clone(),
                        tls: tls.clone(),
                        peer,
                    };
                    let max = conn.max_connections_per_ip;
                    tokio::spawn(async move {
                        refuse.run(stream, move |_| too_many(max)).await;
                        drop(permit);
                    });
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let serve = Connection {
            builder: builder.clone(),
            idle: conn.header_timeout,
            shutdown: shutdown.clone(),
            tls: tls.clone(),
            peer,
        };
        tokio::spawn(async move {
            serve
                .run(stream, move |req| {
                    routes::handle(app.clone(), req, peer, role)
                })
                .await;
            drop(slot);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(?role, "stopped accepting; finishing in-flight requests");
    // Every open connection holds a permit: all of them back means all are closed.
    let all = u32::try_from(conn.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within the grace period");
    }
}

/// The answer on a connection over the per-IP cap.
async fn too_many(max: usize) -> Result<Response<Body>, std::convert::Infallible> {
    let mut r = respond::error(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many connections from your address; at most {max} at once"),
    );
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    Ok(r)
}

/// What serving one accepted connection needs.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    idle: Duration,
    shutdown: Shutdown,
    tls: Option<Arc<Tls>>,
    peer: SocketAddr,
}

impl Connection {
    /// Serve the connection with `handle` until the client closes it, it sits idle, or the
    /// collector shuts down.
    async fn run<H, F>(self, stream: tokio::net::TcpStream, handle: H)
    where
        H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
        F: std::future::Future<Output = Result<Response<Body>, std::convert::Infallible>>
            + Send
            + 'static,
    {
        // The HTTP/1-or-2 detection reads the first bytes before hyper's header timeout is
        // armed, so a client that connects and sends nothing is cut off here.
        let mut first = [0u8; 1];
        if !matches!(
            tokio::time::timeout(self.idle, stream.peek(&mut first)).await,
            Ok(Ok(1))
        ) {
            return;
        }
        match self.tls.clone() {
            None => self.serve(stream, handle).await,
            Some(tls) => match tokio::time::timeout(self.idle, tls.acceptor().accept(stream)).await
            {
                Ok(Ok(s)) => self.serve(s, handle).await,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, peer = %self.peer, "TLS handshake failed")
                }
                Err(_) => {}
            },
        }
    }

    async fn serve<I, H, F>(self, io: I, handle: H)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
        F: std::future::Future<Output = Result<Response<Body>, std::convert::Infallible>>
            + Send
            + 'static,
    {
        let activity = Arc::new(Activity::default());
        let counted = activity.clone();
        let handle = Arc::new(handle);
        let service = service_fn(move |req| {
            let request = counted.begin();
            let answer = handle(req);
            async move {
                let resp = answer.await?;
                Ok::<_, std::convert::Infallible>(resp.map(|body| Tracked {
                    body,
                    _request: request,
                }))
            }
        });
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        let mut conn = std::pin::pin!(conn);
        let mut stopping = self.shutdown.clone();
        let mut closing = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, peer = %self.peer, "connection ended with an error");
                    }
                    return;
                }
                _ = stopping.wait(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = activity.idle(self.idle), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                // A peer that keeps streams open after being told to go: cut it off. On
                // shutdown, requests still in flight have this long too (and `serve` waits
                // at most its grace period for them).
                _ = activity.idle(self.idle), if closing => return,
            }
        }
    }
}
