//! A small, fast, durable clickstream collector.
//!
//! Data flows one way:
//!
//! ```text
//!  HTTP ──► server ──► routes ──► ingest: decode → message → validate → plan → enrich ──► spool ──► sinks
//!                                            │ (rejected)                                 (fsync)   capture | eventhubs | stdout
//!                                            └──────────────► deadletter
//! ```
//!
//! - [`config`]: flags, env vars and a TOML file, resolved once; the composition root that
//!   assembles each module's own option type (nothing below imports it).
//! - [`server`]: accept loop, HTTP/1.1 + HTTP/2, connection limits; [`shutdown`]: the signal
//!   that drains it.
//! - [`routes`]: the Segment HTTP API, pixel, CORS, health, readiness, metrics;
//!   [`static_files`] serves the tracker and a site; [`respond`] builds the JSON answers.
//! - [`ingest`]: turns a request into enriched events, or a specific error.
//! - [`plan`]: tracking plans, the site's own JSON Schemas each event is held to.
//! - [`spool`]: the durable log; a 2xx means the events are fsync'd here.
//! - [`sinks`]: drain the spool, each from its own cursor: [`sinks::capture`] writes Event Hubs
//!   Capture Avro files, [`sinks::eventhubs`] relays to Azure Event Hubs over AMQP,
//!   [`sinks::stdout`] writes NDJSON.
//! - [`deadletter`]: rejected events with their reasons.
//! - [`sources`], [`ratelimit`], [`tls`]: who may send, how much, and over what.
//! - [`inspector`]: the live view of accepted and rejected events (off unless asked for).
//! - [`metrics`]: the Prometheus exporter and the gauges read at scrape time.
//! - Tools of the binary: [`capture_cli`] (`collector capture`), [`plan::cli`]
//!   (`collector plan`), [`check`] (`collector config check`), [`healthcheck`].

pub mod capture_cli;
pub mod config;
pub mod deadletter;
pub mod healthcheck;
pub mod ingest;
pub mod inspector;
pub mod metrics;
pub mod plan;
pub mod ratelimit;
pub mod respond;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod sinks;
pub mod sources;
pub mod spool;
pub mod static_files;
pub mod tls;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};

use config::{Config, SinkKind};

/// The version `collector --version` prints: the crate's (shared by the npm package and the
/// release tarball) and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("COLLECTOR_COMMIT"),
    ")"
);

/// `collector config check`: what `run` would load before listening, without listening or
/// writing anything: the TLS files, the directories to serve, the data directory. (The config
/// file, the sources and the tracking plans were checked by resolving `config`.) Returns a
/// summary, a line per part.
pub fn check(config: &Config) -> anyhow::Result<Vec<String>> {
    let mut lines = vec![format!("listen {}", config.listen)];
    if let Some(admin) = config.admin_listen {
        lines.push(format!("admin routes on {admin}"));
    }
    if let Some(t) = &config.tls {
        tls::Tls::load(t)?;
        lines.push(format!(
            "tls: {} and {} load",
            t.cert.display(),
            t.key.display()
        ));
    }
    let sinks: Vec<String> = config
        .sinks
        .iter()
        .map(|s| format!("{s:?}").to_lowercase())
        .collect();
    lines.push(format!("sinks: {}", sinks.join(", ")));
    match std::fs::metadata(&config.data_dir) {
        Ok(m) if m.is_dir() => lines.push(format!("data dir {}", config.data_dir.display())),
        Ok(_) => anyhow::bail!("data dir {} is not a directory", config.data_dir.display()),
        Err(_) => lines.push(format!(
            "data dir {} (created at start)",
            config.data_dir.display()
        )),
    }
    for (what, dir) in [
        ("tracker dir", &config.tracker_dir),
        ("site dir", &config.site_dir),
    ] {
        if let Some(dir) = dir {
            if !dir.is_dir() {
                anyhow::bail!("{what} {} is not a directory", dir.display());
            }
            lines.push(format!("{what} {}", dir.display()));
        }
    }
    if config.sources.is_empty() {
        lines.push("sources: none, OPEN MODE (any write key from any origin)".into());
    } else {
        let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        lines.push(format!("sources: {}", names.join(", ")));
    }
    for plan in config.plans.plans() {
        lines.push(format!(
            "tracking plan {}: {} schemas",
            plan.dir.display(),
            plan.schemas.len()
        ));
    }
    Ok(lines)
}

/// Connections the admin listener takes at once (scrapers, probes, an operator's browser).
const ADMIN_MAX_CONNECTIONS: usize = 64;
use sinks::SinkHealth;

/// Run the collector until SIGTERM or SIGINT, then shut down cleanly.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let (trigger, shutdown) = shutdown::channel();
    // Installed here, before the collector says it is listening: a signal that arrives right
    // after start must not meet the default action, which kills the process.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutdown signal received");
        trigger.fire();
    });
    run_with(config, listener, shutdown, true).await
}

/// On SIGHUP, re-read the config file and swap in its sources and TLS certificate. A broken
/// config is refused with a log line and the running one kept.
async fn reload_on_sighup(
    mut hup: Signal,
    cli: config::Options,
    policy: Arc<sources::Policy>,
    tls: Option<Arc<tls::Tls>>,
) {
    while hup.recv().await.is_some() {
        // Reading and compiling plans is blocking work: off the runtime's threads.
        let cli = cli.clone();
        let tls = tls.clone();
        let result = tokio::task::spawn_blocking(move || {
            cli.resolve().and_then(|c| {
                let sources = sources::Sources::from_config(&c.sources, &c.plans)?;
                if let (Some(tls), Some(cfg)) = (&tls, &c.tls) {
                    tls.reload(cfg)?;
                }
                Ok(sources)
            })
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("reload panicked: {e}")));
        match result {
            Ok(sources) => {
                tracing::info!(
                    sources = sources.len(),
                    open = sources.is_open(),
                    "config reloaded"
                );
                ::metrics::counter!("collector_config_reloads_total", "result" => "ok")
                    .increment(1);
                policy.replace(sources);
            }
            Err(e) => {
                ::metrics::counter!("collector_config_reloads_total", "result" => "refused")
                    .increment(1);
                tracing::error!(error = %format!("{e:#}"), "config reload refused; keeping the running config")
            }
        }
    }
}

/// Run on an already bound listener until `shutdown` fires.
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    shutdown: shutdown::Shutdown,
    with_metrics: bool,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let admin_listener = match config.admin_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the admin listener {addr}"))?,
        ),
        None => None,
    };
    let spool = spool::Spool::open(&config.spool).context("opening the spool")?;
    let dedupe = ingest::dedupe::Dedupe::open(
        config.ingest.dedupe_ids,
        &config.spool.dir.join("dedupe.seed"),
        &spool,
    )
    .context("rebuilding the dedupe window")?;
    let dead_letters = deadletter::DeadLetters::open(
        config.data_dir.join("deadletter"),
        config.dead_letter_max_bytes,
    )
    .context("opening the dead-letter store")?;
    let metrics = if with_metrics {
        Some(metrics::install()?)
    } else {
        None
    };

    let (sink_trigger, sink_shutdown) = shutdown::channel();
    let mut healths = Vec::new();
    let mut tasks = Vec::new();
    for kind in &config.sinks {
        let running = sinks::Running {
            spool: &spool,
            shutdown: &sink_shutdown,
            grace: config.shutdown_timeout,
            dead_letters: &dead_letters,
        };
        let (health, task) = match kind {
            SinkKind::Capture => {
                // Files in an object store: the spool rides out its outages, as with Event Hubs.
                let h = match config.capture.store {
                    Some(_) => SinkHealth::outage_tolerant("capture"),
                    None => SinkHealth::new("capture"),
                };
                let sink = sinks::capture::CaptureSink::new(config.capture.clone())?;
                (h.clone(), running.spawn(sink, h)?)
            }
            SinkKind::Eventhubs => {
                let eh = config
                    .eventhubs
                    .clone()
                    .context("eventhubs sink without its config")?;
                let h = SinkHealth::outage_tolerant("eventhubs");
                let sink = sinks::eventhubs::EventHubsSink::new(eh, dead_letters.clone());
                (h.clone(), running.spawn(sink, h)?)
            }
            SinkKind::Stdout => {
                let h = SinkHealth::new("stdout");
                (
                    h.clone(),
                    running.spawn(sinks::stdout::StdoutSink::new(), h)?,
                )
            }
        };
        healths.push(health);
        tasks.push(task);
    }

    let sources = sources::Sources::from_config(&config.sources, &config.plans)?;
    for plan in config.plans.plans() {
        tracing::info!(dir = %plan.dir.display(), schemas = plan.schemas.len(), "tracking plan loaded");
    }
    if sources.is_open() {
        tracing::warn!(
            "no sources configured: OPEN MODE, any write key from any origin is accepted; \
             add [[sources]] with write_keys and allowed_origins to the config file to lock it down"
        );
    } else {
        tracing::info!(sources = sources.len(), "write keys enforced");
    }
    let policy = Arc::new(sources::Policy::new(sources));
    let tls = match &config.tls {
        Some(t) => Some(Arc::new(tls::Tls::load(t)?)),
        None => None,
    };
    let app = Arc::new(routes::App {
        ingest: ingest::Ingest {
            cfg: config.ingest.clone(),
            spool: spool.clone(),
            dead_letters,
            inspector: config
                .inspector
                .then(|| Arc::new(inspector::Inspector::new())),
            policy: policy.clone(),
            limits: ratelimit::RateLimits::new(&config.limits),
            dedupe,
            in_flight: ingest::inflight::InFlight::new(config.ingest.max_body_bytes_in_flight),
        },
        metrics,
        sinks: healths,
        tracker_dir: config.tracker_dir.clone(),
        tracker_prefix: config.tracker_prefix.clone(),
        site_dir: config.site_dir.clone(),
    });
    // Installed before the "listening" line: see `run`.
    let hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let addr = listener.local_addr()?;
    if config.inspector {
        tracing::info!("live inspector on http://{addr}/inspector");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(sinks = ?config.sinks, data_dir = %config.data_dir.display(), "listening on {scheme}://{addr}");
    let housekeeping = tokio::spawn({
        let app = app.clone();
        async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                app.ingest.limits.housekeeping();
            }
        }
    });
    let reloader = tokio::spawn(reload_on_sighup(
        hup,
        config.cli.clone(),
        policy,
        tls.clone(),
    ));
    let admin = match admin_listener {
        None => None,
        Some(admin) => {
            tracing::info!("admin routes on http://{}", admin.local_addr()?);
            let conn = server::ConnConfig {
                max_connections: ADMIN_MAX_CONNECTIONS,
                max_connections_per_ip: 0,
                ..config.conn.clone()
            };
            Some(tokio::spawn(server::serve(
                admin,
                app.clone(),
                conn,
                None,
                shutdown.clone(),
                config.shutdown_timeout,
                routes::Role::Admin,
            )))
        }
    };
    let role = if admin.is_some() {
        routes::Role::Public
    } else {
        routes::Role::All
    };
    server::serve(
        listener,
        app,
        config.conn.clone(),
        tls,
        shutdown,
        config.shutdown_timeout,
        role,
    )
    .await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    housekeeping.abort();
    reloader.abort();

    // No request can append any more: close the spool, then let the sinks catch up and close.
    spool.close().await;
    sink_trigger.fire();
    for t in tasks {
        let _ = t.await;
    }
    tracing::info!(head = spool.head(), "collector stopped");
    Ok(())
}
