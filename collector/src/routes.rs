//! Path → handler. Also CORS, health, readiness, metrics and static files.
//!
//! CORS headers go on the ingest routes only (the Origin reflected, with credentials, for
//! Origins a source allows), and preflights are answered only there: no web page may read the
//! admin routes (`/metrics`, `/readyz`, the inspector), whatever mode the collector runs in. The
//! tracker's files are public and carry `Access-Control-Allow-Origin: *` (no credentials), so a
//! site on another origin can load its wasm.
//!
//! A listener has a [`Role`]: with `--admin-listen`, the public one serves ingest, `/healthz` and
//! static files, and the admin one the admin routes and `/healthz`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::ingest::message::MessageType;
use crate::ingest::{decode, pixel_data, ApiError, Endpoint, Ingest, Outcome};
use crate::inspector::{self, Filter};
use crate::respond::{self, Body};
use crate::sinks::SinkHealth;
use crate::static_files;

/// Readiness turns false when the spool is fuller than this share of its budget.
const SPOOL_HIGH_WATER: f64 = 0.9;

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, on one port (no admin listener).
    All,
    /// Ingest, `/healthz` and static files.
    Public,
    /// The admin routes and `/healthz`.
    Admin,
}

impl Role {
    fn serves(self, path: &str) -> bool {
        match self {
            Role::All => true,
            Role::Public => !is_admin(path),
            Role::Admin => is_admin(path) || path == "/healthz",
        }
    }
}

/// Routes for operators: metrics, readiness and the inspector.
fn is_admin(path: &str) -> bool {
    matches!(path, "/metrics" | "/readyz" | "/inspector") || path.starts_with("/debug/")
}

/// Everything the handlers share.
pub struct App {
    pub ingest: Ingest,
    pub metrics: Option<PrometheusHandle>,
    pub sinks: Vec<SinkHealth>,
    pub tracker_dir: Option<PathBuf>,
    pub tracker_prefix: String,
    pub site_dir: Option<PathBuf>,
}

/// The 1x1 transparent GIF the pixel answers with.
const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// The single-message endpoints, with Segment's short aliases.
fn single_endpoint(path: &str) -> Option<MessageType> {
    Some(match path {
        "/v1/track" | "/v1/t" => MessageType::Track,
        "/v1/page" | "/v1/p" => MessageType::Page,
        "/v1/identify" | "/v1/i" => MessageType::Identify,
        "/v1/group" | "/v1/g" => MessageType::Group,
        "/v1/alias" | "/v1/a" => MessageType::Alias,
        "/v1/screen" | "/v1/s" => MessageType::Screen,
        _ => return None,
    })
}

/// Route label for metrics: fixed names, never raw paths.
fn route_label(path: &str) -> &'static str {
    match path {
        "/v1/batch" | "/v1/import" => "batch",
        p if single_endpoint(p).is_some() => "single",
        p if p.starts_with("/v1/pixel/") => "pixel",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/inspector" | "/debug/events" | "/debug/stream" => "inspector",
        _ => "other",
    }
}

/// A status code as a metric label; the usual ones without an allocation per request.
fn status_label(status: StatusCode) -> metrics::SharedString {
    let fixed = match status.as_u16() {
        200 => "200",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        413 => "413",
        429 => "429",
        503 => "503",
        code => return code.to_string().into(),
    };
    fixed.into()
}

pub async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
    peer: SocketAddr,
    role: Role,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let path = req.uri().path();
    let label = route_label(path);
    let ingest = is_limited(path);
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut resp = if role.serves(path) {
        route(&app, req, peer).await
    } else {
        respond::error(
            StatusCode::NOT_FOUND,
            format!("no route for {} {path} on this port", req.method()),
        )
    };
    // CORS headers only on ingest routes, for origins some source allows (any in open mode).
    let sources = app.ingest.policy.get();
    let allowed = |o: &HeaderValue| ingest && o.to_str().is_ok_and(|o| sources.cors_allowed(o));
    if let Some(origin) = origin.filter(allowed) {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        // Lets a cross-origin tracker honour Retry-After on 429 and 503.
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
    }
    metrics::counter!("collector_http_requests_total", "route" => label, "status" => status_label(resp.status())).increment(1);
    metrics::histogram!("collector_http_request_duration_seconds", "route" => label)
        .record(started.elapsed().as_secs_f64());
    Ok(resp)
}

async fn route(app: &App, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if method == Method::OPTIONS && is_limited(&path) {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok());
        if origin.is_some_and(|o| !app.ingest.policy.get().cors_allowed(o)) {
            return respond::error(
                StatusCode::FORBIDDEN,
                "this origin is not allowed to send events here",
            );
        }
        return preflight(req.headers());
    }
    let client = crate::ingest::ip::client_ip(peer.ip(), req.headers(), app.ingest.cfg.trust_proxy);
    if is_limited(&path) {
        if let Err(e) = app.ingest.limits.check_ip(client) {
            return respond::api_error(&e);
        }
    }
    let api = path == "/v1/batch" || path == "/v1/import" || single_endpoint(&path).is_some();
    match (&method, path.as_str()) {
        (&Method::POST, _) if api => {
            let endpoint = single_endpoint(&path).map_or(Endpoint::Batch, Endpoint::Single);
            ingest_post(app, req, client, endpoint).await
        }
        (_, _) if api => method_not_allowed("POST, OPTIONS"),
        (&Method::GET | &Method::HEAD, p) if p.starts_with("/v1/pixel/") => {
            pixel(app, &req, client, &p["/v1/pixel/".len()..]).await
        }
        (_, p) if p.starts_with("/v1/pixel/") => method_not_allowed("GET, HEAD, OPTIONS"),
        (&Method::GET | &Method::HEAD, "/healthz") => {
            respond::json(StatusCode::OK, &json!({"status": "ok"}))
        }
        (&Method::GET | &Method::HEAD, "/readyz") => readiness(app),
        (&Method::GET | &Method::HEAD, "/metrics") => metrics(app),
        (&Method::GET | &Method::HEAD, "/inspector" | "/debug/events" | "/debug/stream") => {
            inspect(app, &req)
        }
        (&Method::GET | &Method::HEAD, p) => static_file(app, p, req.headers()).await,
        _ => respond::error(
            StatusCode::NOT_FOUND,
            format!("no route for {method} {path}"),
        ),
    }
}

/// Routes that take events, and so count against rate limits.
fn is_limited(path: &str) -> bool {
    path == "/v1/batch"
        || path == "/v1/import"
        || path.starts_with("/v1/pixel/")
        || single_endpoint(path).is_some()
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = respond::error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allow}"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn preflight(headers: &HeaderMap) -> Response<Body> {
    let allow_headers = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_static("Content-Type, Authorization, Content-Encoding")
        });
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS")
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers)
        .header(header::ACCESS_CONTROL_MAX_AGE, "86400")
        .body(respond::empty())
        .unwrap()
}

/// How many rejected events a 200 lists; the dead-letter store has all of them.
const LISTED_ERRORS: usize = 100;
/// How many tracking-plan violations a 200 lists in all (each event lists at most
/// [`crate::plan::violation::MAX_PER_EVENT`]).
const LISTED_VIOLATIONS: usize = 100;

/// `{"success":true,"accepted":N,"rejected":M,"errors":[{"index":i,"reason":"..."}]}`, with
/// `"errorsOmitted":K` when more than [`LISTED_ERRORS`] were rejected. An event refused by the
/// tracking plan lists its `violations` too, while [`LISTED_VIOLATIONS`] last.
fn outcome_response(o: &Outcome) -> Response<Body> {
    #[derive(serde::Serialize)]
    struct Rejection<'a> {
        index: usize,
        reason: &'a str,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        violations: &'a [crate::plan::Violation],
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer<'a> {
        success: bool,
        accepted: usize,
        rejected: usize,
        errors: Vec<Rejection<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        errors_omitted: Option<usize>,
    }
    let mut room = LISTED_VIOLATIONS;
    let errors = o
        .rejected
        .iter()
        .take(LISTED_ERRORS)
        .map(|(index, r)| {
            let listed = if r.violations.len() <= room {
                &r.violations[..]
            } else {
                &[]
            };
            room -= listed.len();
            Rejection {
                index: *index,
                reason: &r.reason,
                violations: listed,
            }
        })
        .collect();
    let omitted = o.rejected.len().saturating_sub(LISTED_ERRORS);
    respond::json(
        StatusCode::OK,
        &Answer {
            success: true,
            accepted: o.accepted,
            rejected: o.rejected.len(),
            errors,
            errors_omitted: (omitted > 0).then_some(omitted),
        },
    )
}

/// How long the rest of an oversize body is read before its 413 is sent anyway.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

async fn ingest_post(
    app: &App,
    req: Request<Incoming>,
    client: IpAddr,
    endpoint: Endpoint,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let mut body = std::pin::pin!(body);
    let cfg = &app.ingest.cfg;
    let mut held = app.ingest.in_flight.reservation();
    let result: Result<Outcome, ApiError> = async {
        decode::check_content_type(&parts.headers)?;
        let body = tokio::time::timeout(
            cfg.body_timeout,
            decode::read_body(&parts.headers, body.as_mut(), cfg.max_body_bytes, &mut held),
        )
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    cfg.body_timeout.as_secs()
                ),
            )
        })??;
        metrics::counter!("collector_request_bytes_total").increment(body.len() as u64);
        app.ingest
            .process(&body, endpoint, &parts.headers, client, &mut held)
            .await
    }
    .await;
    drop(held);
    if let Err(e) = &result {
        // Refused before the body was read to its end: read the rest (dropping it) so the
        // client gets to read the answer.
        if e.status == StatusCode::PAYLOAD_TOO_LARGE || e.status == StatusCode::SERVICE_UNAVAILABLE
        {
            let drain = decode::discard_rest(&parts.headers, body, cfg.max_body_bytes);
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        }
    }
    match result {
        Ok(o) => outcome_response(&o),
        Err(e) => respond::api_error(&e),
    }
}

async fn pixel(app: &App, req: &Request<Incoming>, client: IpAddr, kind: &str) -> Response<Body> {
    let Some(kind) = MessageType::parse(kind) else {
        return respond::error(
            StatusCode::NOT_FOUND,
            format!("no pixel for type {kind:?}; use /v1/pixel/track, /v1/pixel/page, ..."),
        );
    };
    let result = async {
        let data = pixel_data(req.uri().query())?;
        let mut held = app.ingest.in_flight.reservation();
        app.ingest
            .process(
                &data,
                Endpoint::Single(kind),
                req.headers(),
                client,
                &mut held,
            )
            .await
    }
    .await;
    match result {
        Ok(o) if o.accepted == 1 => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "image/gif")
            .header(header::CACHE_CONTROL, "no-store, max-age=0")
            .body(respond::full(Bytes::from_static(PIXEL_GIF)))
            .unwrap(),
        Ok(o) => {
            let reason = o
                .rejected
                .first()
                .map(|(_, r)| r.reason.clone())
                .unwrap_or_default();
            respond::error(
                StatusCode::BAD_REQUEST,
                format!("pixel event rejected: {reason}"),
            )
        }
        Err(e) => respond::api_error(&e),
    }
}

fn readiness(app: &App) -> Response<Body> {
    let stats = app.ingest.spool.stats();
    let fill = stats.bytes as f64 / stats.max_bytes.max(1) as f64;
    let spool_ok = app.ingest.spool.writable() && fill < SPOOL_HIGH_WATER;
    let sinks: serde_json::Map<String, serde_json::Value> = app
        .sinks
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                json!(if s.is_healthy() { "ok" } else { "failing" }),
            )
        })
        .collect();
    // Events each sink has not yet delivered durably (still held by the spool for it).
    let lag: serde_json::Map<String, serde_json::Value> = stats
        .cursors
        .iter()
        .map(|(name, at)| (name.to_string(), json!(stats.head.saturating_sub(*at))))
        .collect();
    let ready = spool_ok && !app.sinks.iter().any(SinkHealth::blocks_readiness);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    respond::json(
        status,
        &json!({"ready": ready, "spool": {"ok": spool_ok, "bytes": stats.bytes, "max_bytes": stats.max_bytes, "head": stats.head}, "sinks": sinks, "lag": lag}),
    )
}

fn inspect(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let Some(inspector) = &app.ingest.inspector else {
        return respond::error(
            StatusCode::NOT_FOUND,
            "the inspector is off; start the collector with --inspector (or --demo)",
        );
    };
    let filter = Filter::from_query(req.uri().query());
    match req.uri().path() {
        "/inspector" => Response::builder()
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(respond::full(Bytes::from_static(
                inspector::page::HTML.as_bytes(),
            )))
            .unwrap(),
        "/debug/stream" => inspector::stream::response(inspector, filter),
        _ => {
            let limit = req
                .uri()
                .query()
                .into_iter()
                .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
                .find(|(k, _)| k == "limit")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(100)
                .min(inspector::RING_CAPACITY);
            respond::json(StatusCode::OK, &inspector.recent(&filter, limit))
        }
    }
}

fn metrics(app: &App) -> Response<Body> {
    match &app.metrics {
        Some(h) => Response::builder()
            .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(respond::full(crate::metrics::render(h, &app.ingest.spool)))
            .unwrap(),
        None => respond::error(StatusCode::NOT_FOUND, "metrics are not enabled"),
    }
}

async fn static_file(app: &App, path: &str, headers: &HeaderMap) -> Response<Body> {
    if let Some(dir) = &app.tracker_dir {
        if let Some(rest) = path.strip_prefix(app.tracker_prefix.as_str()) {
            if rest.starts_with('/') {
                let mut r = static_files::serve(dir, rest, headers).await;
                r.headers_mut().insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
                return r;
            }
        }
    }
    match &app.site_dir {
        Some(dir) => static_files::serve(dir, path, headers).await,
        None => respond::error(StatusCode::NOT_FOUND, format!("no route for GET {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_the_codes() {
        for code in [200, 204, 400, 413, 418, 429, 500, 503] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(&*status_label(status), code.to_string());
        }
    }
}
