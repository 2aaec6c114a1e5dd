//! Options from flags, environment variables and a TOML file, resolved and validated once at
//! start. Precedence: flag > env var > config file > default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use serde::Deserialize;

pub use crate::ingest::ip::{Hops, IpMode, ProxyHeader, TrustProxy};
pub use crate::ingest::IngestConfig;
pub use crate::plan::{PlanSet, PlanSettings};
pub use crate::ratelimit::LimitsConfig;
pub use crate::server::ConnConfig;
pub use crate::sinks::capture::{CaptureCodec, CaptureConfig, Destination};
pub use crate::spool::SpoolConfig;
pub use crate::tls::TlsConfig;

/// Every option the collector takes. Each is also an env var (`COLLECTOR_...`) and a key in
/// the TOML file given by `--config` (the same name with underscores: `data_dir = "..."`).
#[derive(Parser, Deserialize, Debug, Default, Clone)]
#[command(
    name = "collector",
    version,
    about = "Segment-compatible clickstream collector: durable spool, Event Hubs Capture files, Event Hubs relay"
)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// TOML config file; flags and env vars override its keys.
    #[arg(long, env = "COLLECTOR_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:8080]
    #[arg(long, env = "COLLECTOR_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Directory for the spool, capture files and dead letters [default: ./data]
    #[arg(long, env = "COLLECTOR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Sinks that drain the spool, comma-separated: capture, stdout, eventhubs [default: capture]
    #[arg(long, env = "COLLECTOR_SINK", value_delimiter = ',')]
    pub sink: Option<Vec<SinkKind>>,

    /// Log format: text or json [default: text]
    #[arg(long, env = "COLLECTOR_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Largest accepted request body, after gzip decompression, in bytes [default: 512000]
    #[arg(long, env = "COLLECTOR_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Largest single event, in bytes; bigger events are dead-lettered [default: 32768]
    #[arg(long, env = "COLLECTOR_MAX_EVENT_BYTES")]
    pub max_event_bytes: Option<usize>,

    /// Behind proxies you control, take the client IP from their forwarding header: true (one
    /// proxy), a number of proxies, or false [default: false]
    #[arg(long, env = "COLLECTOR_TRUST_PROXY", num_args = 0..=1, default_missing_value = "true")]
    pub trust_proxy: Option<Hops>,

    /// Header the trusted proxies set: x-forwarded-for or forwarded (RFC 7239) [default: x-forwarded-for]
    #[arg(long, env = "COLLECTOR_TRUST_PROXY_HEADER")]
    pub trust_proxy_header: Option<ProxyHeader>,

    /// What to store of the client IP: anonymize (IPv4 /24, IPv6 /48), keep, or drop [default: anonymize]
    #[arg(long, env = "COLLECTOR_IP")]
    pub ip: Option<IpMode>,

    /// Disk budget of the spool in bytes; when full, ingest answers 503 [default: 1073741824]
    #[arg(long, env = "COLLECTOR_SPOOL_MAX_BYTES")]
    pub spool_max_bytes: Option<u64>,

    /// Size at which the spool starts a new segment file, in bytes [default: 16777216]
    #[arg(long, env = "COLLECTOR_SPOOL_SEGMENT_BYTES")]
    pub spool_segment_bytes: Option<u64>,

    /// Where capture files go: file:///dir, az://container/prefix,
    /// abfss://container@account.dfs.core.windows.net/prefix, s3://bucket/prefix or
    /// gs://bucket/prefix; credentials from AZURE_STORAGE_*, AWS_*, GOOGLE_* [default:
    /// file://{data-dir}/capture]
    #[arg(long, env = "COLLECTOR_CAPTURE_URL")]
    pub capture_url: Option<String>,

    /// Partition directory in capture paths; each collector writing to one store needs its
    /// own [default: 0]
    #[arg(long, env = "COLLECTOR_CAPTURE_PARTITION")]
    pub capture_partition: Option<String>,

    /// Event Hubs namespace name used in capture paths [default: local]
    #[arg(long, env = "COLLECTOR_CAPTURE_NAMESPACE")]
    pub capture_namespace: Option<String>,

    /// Event hub name used in capture paths [default: clickstream]
    #[arg(long, env = "COLLECTOR_CAPTURE_EVENTHUB")]
    pub capture_eventhub: Option<String>,

    /// Roll capture files after this many seconds [default: 300]
    #[arg(long, env = "COLLECTOR_CAPTURE_ROLL_SECS")]
    pub capture_roll_secs: Option<u64>,

    /// Roll capture files at this size in bytes [default: 314572800]
    #[arg(long, env = "COLLECTOR_CAPTURE_ROLL_BYTES")]
    pub capture_roll_bytes: Option<u64>,

    /// Avro codec of capture files: null or deflate (smaller files, more CPU) [default: null]
    #[arg(long, env = "COLLECTOR_CAPTURE_CODEC")]
    pub capture_codec: Option<CaptureCodec>,

    /// Event Hubs connection string (SAS) for --sink eventhubs; prefer the env var
    #[arg(long, env = "EVENTHUBS_CONNECTION_STRING", hide_env_values = true)]
    pub eventhubs_connection_string: Option<String>,

    /// Event hub name, when the connection string has no EntityPath (or with --eventhubs-namespace)
    #[arg(long, env = "COLLECTOR_EVENTHUBS_NAME")]
    pub eventhubs_name: Option<String>,

    /// Connect here instead of the namespace host: amqp://host:port (plain) or amqps://host:port
    #[arg(long, env = "COLLECTOR_EVENTHUBS_ENDPOINT")]
    pub eventhubs_endpoint: Option<String>,

    /// Namespace host (NS.servicebus.windows.net) for Microsoft Entra ID auth instead of a connection string
    #[arg(long, env = "COLLECTOR_EVENTHUBS_NAMESPACE")]
    pub eventhubs_namespace: Option<String>,

    /// Entra ID credential with --eventhubs-namespace: managed-identity or developer-tools (az/azd login) [default: managed-identity]
    #[arg(long, env = "COLLECTOR_EVENTHUBS_CREDENTIAL")]
    pub eventhubs_credential: Option<crate::sinks::eventhubs::Credential>,

    /// Seconds to wait for one connect or batch send before reconnecting [default: 10]
    #[arg(long, env = "COLLECTOR_EVENTHUBS_TIMEOUT_SECS")]
    pub eventhubs_timeout_secs: Option<u64>,

    /// Serve the built tracker (tracker/pkg) first-party from this directory
    #[arg(long, env = "COLLECTOR_TRACKER_DIR")]
    pub tracker_dir: Option<PathBuf>,

    /// URL path prefix for the tracker files [default: /lib]
    #[arg(long, env = "COLLECTOR_TRACKER_PREFIX")]
    pub tracker_prefix: Option<String>,

    /// Serve a static site (the demo) from this directory at /
    #[arg(long, env = "COLLECTOR_SITE_DIR")]
    pub site_dir: Option<PathBuf>,

    /// Seconds to wait on shutdown for requests and sinks to finish [default: 10]
    #[arg(long, env = "COLLECTOR_SHUTDOWN_TIMEOUT_SECS")]
    pub shutdown_timeout_secs: Option<u64>,

    /// Live inspector at /inspector, /debug/stream and /debug/events [default: off; on with --demo]
    #[arg(long, env = "COLLECTOR_INSPECTOR", num_args = 0..=1, default_missing_value = "true")]
    pub inspector: Option<bool>,

    /// Demo mode: serve the demo site (www) and the built tracker (tracker/pkg), inspector on
    #[arg(long, env = "COLLECTOR_DEMO", num_args = 0..=1, default_missing_value = "true")]
    pub demo: Option<bool>,

    /// Requests per second allowed per client IP on the ingest routes (0 = no limit) [default: 50]
    #[arg(long, env = "COLLECTOR_RATE_LIMIT_IP")]
    pub rate_limit_ip: Option<u32>,

    /// Burst allowed per client IP above its rate [default: 200]
    #[arg(long, env = "COLLECTOR_RATE_LIMIT_IP_BURST")]
    pub rate_limit_ip_burst: Option<u32>,

    /// Requests per second allowed per source (0 = no limit) [default: 0]
    #[arg(long, env = "COLLECTOR_RATE_LIMIT_SOURCE")]
    pub rate_limit_source: Option<u32>,

    /// Burst allowed per source above its rate [default: 2 x the rate]
    #[arg(long, env = "COLLECTOR_RATE_LIMIT_SOURCE_BURST")]
    pub rate_limit_source_burst: Option<u32>,

    /// Most concurrent connections; more wait in the kernel's accept queue [default: 10000]
    #[arg(long, env = "COLLECTOR_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Most concurrent connections from one client IP (IPv6: one /64); more are answered 429
    /// (0 = no limit) [default: 1000; 0 with --trust-proxy, where every connection is the proxy's]
    #[arg(long, env = "COLLECTOR_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,

    /// Most concurrent streams (requests) on one HTTP/2 connection [default: 100]
    #[arg(long, env = "COLLECTOR_HTTP2_MAX_STREAMS")]
    pub http2_max_streams: Option<u32>,

    /// Most bytes of request bodies (and the events enriched from them) held at once; past it,
    /// 503 with Retry-After (0 = no limit) [default: 67108864]
    #[arg(long, env = "COLLECTOR_MAX_BODY_BYTES_IN_FLIGHT")]
    pub max_body_bytes_in_flight: Option<usize>,

    /// Serve the admin routes (/metrics, /readyz, /inspector, /debug/*) on this address only,
    /// not on --listen; e.g. 127.0.0.1:9090
    #[arg(long, env = "COLLECTOR_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Disk budget of the dead-letter directory in bytes; past it, dead letters are counted and
    /// dropped [default: 268435456]
    #[arg(long, env = "COLLECTOR_DEAD_LETTER_MAX_BYTES")]
    pub dead_letter_max_bytes: Option<u64>,

    /// Largest request head (request line + headers) in bytes [default: 16384]
    #[arg(long, env = "COLLECTOR_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,

    /// Seconds a client may take to send a request's headers; also how long a connection (HTTP/1
    /// keep-alive or HTTP/2) may sit idle with no request in flight [default: 10]
    #[arg(long, env = "COLLECTOR_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: Option<u64>,

    /// Seconds a client may take to send a request body [default: 30]
    #[arg(long, env = "COLLECTOR_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: Option<u64>,

    /// TLS certificate chain (PEM); with --tls-key the collector serves HTTPS (reloaded on SIGHUP)
    #[arg(long, env = "COLLECTOR_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM)
    #[arg(long, env = "COLLECTOR_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Remember at least this many recent messageIds (up to twice as many) and store a resent event once (0 = off) [default: 100000]
    #[arg(long, env = "COLLECTOR_DEDUPE_IDS")]
    pub dedupe_ids: Option<usize>,

    /// Tracking plan: a directory of JSON Schemas every event is checked against (a source's
    /// `tracking_plan` overrides it)
    #[arg(long, env = "COLLECTOR_TRACKING_PLAN")]
    pub tracking_plan: Option<PathBuf>,

    /// What a plan violation does: enforce (reject), tag (store with context.violations) or
    /// observe (store; count and show only) [default: enforce]
    #[arg(long, env = "COLLECTOR_TRACKING_PLAN_MODE")]
    pub tracking_plan_mode: Option<crate::plan::Mode>,

    /// What an event with no schema in the plan gets: allow, tag or block [default: allow]
    #[arg(long, env = "COLLECTOR_TRACKING_PLAN_UNPLANNED")]
    pub tracking_plan_unplanned: Option<crate::plan::Unplanned>,

    /// Sources with their write keys and allowed origins: config file only (`[[sources]]`)
    #[arg(skip)]
    pub sources: Option<Vec<crate::sources::SourceConfig>>,
}

#[derive(clap::ValueEnum, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Capture,
    Stdout,
    Eventhubs,
}

#[derive(clap::ValueEnum, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The resolved configuration the collector runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where the admin routes are served instead of `listen`.
    pub admin_listen: Option<SocketAddr>,
    pub dead_letter_max_bytes: u64,
    pub data_dir: PathBuf,
    pub sinks: Vec<SinkKind>,
    pub log_format: LogFormat,
    pub ingest: IngestConfig,
    pub spool: SpoolConfig,
    pub capture: CaptureConfig,
    /// Set when `eventhubs` is among the sinks.
    pub eventhubs: Option<crate::sinks::eventhubs::EventHubsConfig>,
    pub tracker_dir: Option<PathBuf>,
    pub tracker_prefix: String,
    pub site_dir: Option<PathBuf>,
    pub shutdown_timeout: Duration,
    pub inspector: bool,
    pub sources: Vec<crate::sources::SourceConfig>,
    /// The tracking plans the flags and the sources name, loaded.
    pub plans: Arc<PlanSet>,
    pub limits: LimitsConfig,
    pub conn: ConnConfig,
    pub tls: Option<TlsConfig>,
    /// The options as given on the command line and in the environment, to resolve again
    /// (re-reading the config file) on SIGHUP.
    pub cli: Options,
}

/// The fully commented example config (`collector config example`).
pub const EXAMPLE: &str = include_str!("../collector.example.toml");

impl Options {
    /// The options the environment sets (`COLLECTOR_...`), as `collector` with no flags sees them.
    pub fn from_env() -> anyhow::Result<Options> {
        Options::try_parse_from(["collector"]).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Where `/readyz` is served, as the collector would resolve it from these options and
    /// their config file: the admin address if any (admin routes are served only there), else
    /// the listen address. Reads the file's keys without checking the rest of it.
    pub fn readyz_address(self) -> anyhow::Result<SocketAddr> {
        let opts = self.with_file()?;
        Ok(opts
            .admin_listen
            .or(opts.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))))
    }

    /// These options, with what they leave unset taken from the config file (if any).
    fn with_file(self) -> anyhow::Result<Options> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let file: Options = toml::from_str(&text)
            .with_context(|| format!("parsing config file {}", path.display()))?;
        Ok(self.or(file))
    }

    /// Fill every option this one leaves unset from `other`.
    fn or(self, o: Options) -> Options {
        Options {
            config: self.config.or(o.config),
            listen: self.listen.or(o.listen),
            data_dir: self.data_dir.or(o.data_dir),
            sink: self.sink.or(o.sink),
            log_format: self.log_format.or(o.log_format),
            max_body_bytes: self.max_body_bytes.or(o.max_body_bytes),
            max_event_bytes: self.max_event_bytes.or(o.max_event_bytes),
            trust_proxy: self.trust_proxy.or(o.trust_proxy),
            trust_proxy_header: self.trust_proxy_header.or(o.trust_proxy_header),
            ip: self.ip.or(o.ip),
            spool_max_bytes: self.spool_max_bytes.or(o.spool_max_bytes),
            spool_segment_bytes: self.spool_segment_bytes.or(o.spool_segment_bytes),
            capture_url: self.capture_url.or(o.capture_url),
            capture_partition: self.capture_partition.or(o.capture_partition),
            capture_namespace: self.capture_namespace.or(o.capture_namespace),
            capture_eventhub: self.capture_eventhub.or(o.capture_eventhub),
            capture_roll_secs: self.capture_roll_secs.or(o.capture_roll_secs),
            capture_roll_bytes: self.capture_roll_bytes.or(o.capture_roll_bytes),
            capture_codec: self.capture_codec.or(o.capture_codec),
            eventhubs_connection_string: self
                .eventhubs_connection_string
                .or(o.eventhubs_connection_string),
            eventhubs_name: self.eventhubs_name.or(o.eventhubs_name),
            eventhubs_endpoint: self.eventhubs_endpoint.or(o.eventhubs_endpoint),
            eventhubs_namespace: self.eventhubs_namespace.or(o.eventhubs_namespace),
            eventhubs_credential: self.eventhubs_credential.or(o.eventhubs_credential),
            eventhubs_timeout_secs: self.eventhubs_timeout_secs.or(o.eventhubs_timeout_secs),
            tracker_dir: self.tracker_dir.or(o.tracker_dir),
            tracker_prefix: self.tracker_prefix.or(o.tracker_prefix),
            site_dir: self.site_dir.or(o.site_dir),
            shutdown_timeout_secs: self.shutdown_timeout_secs.or(o.shutdown_timeout_secs),
            inspector: self.inspector.or(o.inspector),
            demo: self.demo.or(o.demo),
            rate_limit_ip: self.rate_limit_ip.or(o.rate_limit_ip),
            rate_limit_ip_burst: self.rate_limit_ip_burst.or(o.rate_limit_ip_burst),
            rate_limit_source: self.rate_limit_source.or(o.rate_limit_source),
            rate_limit_source_burst: self.rate_limit_source_burst.or(o.rate_limit_source_burst),
            max_connections: self.max_connections.or(o.max_connections),
            max_connections_per_ip: self.max_connections_per_ip.or(o.max_connections_per_ip),
            http2_max_streams: self.http2_max_streams.or(o.http2_max_streams),
            max_body_bytes_in_flight: self.max_body_bytes_in_flight.or(o.max_body_bytes_in_flight),
            admin_listen: self.admin_listen.or(o.admin_listen),
            dead_letter_max_bytes: self.dead_letter_max_bytes.or(o.dead_letter_max_bytes),
            max_header_bytes: self.max_header_bytes.or(o.max_header_bytes),
            header_timeout_secs: self.header_timeout_secs.or(o.header_timeout_secs),
            body_timeout_secs: self.body_timeout_secs.or(o.body_timeout_secs),
            tls_cert: self.tls_cert.or(o.tls_cert),
            tls_key: self.tls_key.or(o.tls_key),
            sources: self.sources.or(o.sources),
            tracking_plan: self.tracking_plan.or(o.tracking_plan),
            tracking_plan_mode: self.tracking_plan_mode.or(o.tracking_plan_mode),
            tracking_plan_unplanned: self.tracking_plan_unplanned.or(o.tracking_plan_unplanned),
            dedupe_ids: self.dedupe_ids.or(o.dedupe_ids),
        }
    }

    /// Merge in the config file (if any), apply defaults and validate.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let cli = self.clone();
        let opts = self.with_file()?;
        let demo = opts.demo.unwrap_or(false);
        let sources = opts.sources.clone().unwrap_or_default();
        let plan = PlanSettings {
            dir: opts.tracking_plan.clone(),
            mode: opts.tracking_plan_mode,
            unplanned: opts.tracking_plan_unplanned,
        };
        let own: Vec<PlanSettings> = sources.iter().map(|s| s.plan_settings()).collect();
        let plans = Arc::new(PlanSet::load(&plan, &own)?);
        crate::sources::Sources::from_config(&sources, &plans)?;
        let source_per_sec = opts.rate_limit_source.unwrap_or(0);
        let limits = LimitsConfig {
            ip_per_sec: opts.rate_limit_ip.unwrap_or(50),
            ip_burst: opts.rate_limit_ip_burst.unwrap_or(200),
            source_per_sec,
            source_burst: opts
                .rate_limit_source_burst
                .unwrap_or(source_per_sec.saturating_mul(2)),
        };
        let trust_proxy = TrustProxy {
            hops: opts.trust_proxy.unwrap_or_default(),
            header: opts.trust_proxy_header.unwrap_or_default(),
        };
        let behind_proxy = trust_proxy.hops.0 > 0;
        let conn = ConnConfig {
            max_connections: opts
                .max_connections
                .unwrap_or(10_000)
                .clamp(1, MAX_CONNECTIONS),
            max_connections_per_ip: opts.max_connections_per_ip.unwrap_or(if behind_proxy {
                0
            } else {
                1000
            }),
            max_header_bytes: opts.max_header_bytes.unwrap_or(16 * 1024).max(8192),
            header_timeout: Duration::from_secs(opts.header_timeout_secs.unwrap_or(10).max(1)),
            http2_max_streams: opts.http2_max_streams.unwrap_or(100).max(1),
        };
        let tls = match (opts.tls_cert.clone(), opts.tls_key.clone()) {
            (Some(cert), Some(key)) => Some(TlsConfig { cert, key }),
            (None, None) => None,
            _ => bail!("--tls-cert and --tls-key go together"),
        };
        let data_dir = opts.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let mut sinks = opts.sink.unwrap_or_else(|| vec![SinkKind::Capture]);
        sinks.dedup();
        if sinks.is_empty() {
            bail!("--sink needs at least one sink");
        }
        let defaults = IngestConfig::default();
        let ingest = IngestConfig {
            dedupe_ids: opts.dedupe_ids.unwrap_or(defaults.dedupe_ids),
            max_body_bytes: opts.max_body_bytes.unwrap_or(defaults.max_body_bytes),
            body_timeout: Duration::from_secs(opts.body_timeout_secs.unwrap_or(30).max(1)),
            max_event_bytes: opts.max_event_bytes.unwrap_or(defaults.max_event_bytes),
            trust_proxy,
            ip: opts.ip.unwrap_or_default(),
            max_body_bytes_in_flight: opts
                .max_body_bytes_in_flight
                .unwrap_or(defaults.max_body_bytes_in_flight),
        };
        if ingest.max_body_bytes > MAX_BODY_BYTES {
            bail!(
                "--max-body-bytes ({}) is over the most the collector takes, {MAX_BODY_BYTES}",
                ingest.max_body_bytes
            );
        }
        if ingest.max_event_bytes > ingest.max_body_bytes {
            bail!(
                "--max-event-bytes ({}) is larger than --max-body-bytes ({})",
                ingest.max_event_bytes,
                ingest.max_body_bytes
            );
        }
        let spool = SpoolConfig {
            dir: data_dir.join("spool"),
            max_bytes: opts.spool_max_bytes.unwrap_or(1 << 30),
            segment_bytes: opts.spool_segment_bytes.unwrap_or(16 << 20),
            keep_window: ingest.dedupe_ids > 0,
        };
        if spool.segment_bytes == 0 || spool.max_bytes < spool.segment_bytes {
            bail!(
                "--spool-max-bytes ({}) must be at least --spool-segment-bytes ({})",
                spool.max_bytes,
                spool.segment_bytes
            );
        }
        let destination = match &opts.capture_url {
            Some(text) => crate::sinks::capture::parse_destination(text)
                .map_err(|e| anyhow::anyhow!("--capture-url: {e}"))?,
            None => Destination::Dir(data_dir.join("capture")),
        };
        let (dir, store) = match destination {
            Destination::Dir(dir) => (dir, None),
            // Files are built here, then uploaded.
            Destination::Store(url) => (data_dir.join("capture-upload"), Some(url)),
        };
        let capture = CaptureConfig {
            dir,
            store,
            partition: path_segment(
                "capture-partition",
                opts.capture_partition.unwrap_or_else(|| "0".into()),
            )?,
            namespace: path_segment(
                "capture-namespace",
                opts.capture_namespace.unwrap_or_else(|| "local".into()),
            )?,
            eventhub: path_segment(
                "capture-eventhub",
                opts.capture_eventhub
                    .unwrap_or_else(|| "clickstream".into()),
            )?,
            roll_after: Duration::from_secs(opts.capture_roll_secs.unwrap_or(300).max(1)),
            roll_bytes: opts.capture_roll_bytes.unwrap_or(300 << 20).max(1),
            codec: opts.capture_codec.unwrap_or_default(),
        };
        let eventhubs = if sinks.contains(&SinkKind::Eventhubs) {
            let eh = crate::sinks::eventhubs::EventHubsOptions {
                connection_string: opts.eventhubs_connection_string,
                name: opts.eventhubs_name,
                endpoint: opts.eventhubs_endpoint,
                namespace: opts.eventhubs_namespace,
                credential: opts.eventhubs_credential,
                timeout_secs: opts.eventhubs_timeout_secs,
            };
            Some(eh.resolve()?)
        } else {
            None
        };
        let mut tracker_prefix = opts.tracker_prefix.unwrap_or_else(|| "/lib".into());
        if !tracker_prefix.starts_with('/') {
            tracker_prefix.insert(0, '/');
        }
        while tracker_prefix.len() > 1 && tracker_prefix.ends_with('/') {
            tracker_prefix.pop();
        }
        if tracker_prefix == "/" || tracker_prefix.starts_with("/v1") {
            bail!("--tracker-prefix {tracker_prefix:?} would hide the API; pick a path like /lib");
        }
        Ok(Config {
            listen: opts
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            admin_listen: opts.admin_listen,
            dead_letter_max_bytes: opts.dead_letter_max_bytes.unwrap_or(256 << 20),
            data_dir,
            sinks,
            log_format: opts.log_format.unwrap_or_default(),
            ingest,
            spool,
            capture,
            eventhubs,
            tracker_dir: opts
                .tracker_dir
                .or_else(|| demo.then(|| PathBuf::from("tracker/pkg"))),
            tracker_prefix,
            site_dir: opts.site_dir.or_else(|| demo.then(|| PathBuf::from("www"))),
            shutdown_timeout: Duration::from_secs(
                opts.shutdown_timeout_secs
                    .unwrap_or(10)
                    .min(MAX_SHUTDOWN_TIMEOUT_SECS),
            ),
            inspector: opts.inspector.unwrap_or(demo),
            limits,
            conn,
            tls,
            sources,
            plans,
            cli,
        })
    }
}

/// The largest body cap that may be set: a request's bytes in memory (body, gunzip output and
/// enriched events, up to 8 x the body) must stay far below 4 GiB.
const MAX_BODY_BYTES: usize = 64 << 20;
/// Most concurrent connections that may be set.
const MAX_CONNECTIONS: usize = 1_000_000;
/// Longest shutdown grace period that may be set: a day.
const MAX_SHUTDOWN_TIMEOUT_SECS: u64 = 86_400;

fn path_segment(name: &str, value: String) -> anyhow::Result<String> {
    if value.is_empty() || value.contains(['/', '\\']) || value == "." || value == ".." {
        bail!("--{name} {value:?} must be a plain name (it becomes a directory)");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example config's option lines (`# key = value`, and `# [[sources]]`), uncommented.
    fn example_uncommented() -> String {
        EXAMPLE
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                *l == "[[sources]]"
                    || l.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty()
                            && k.bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    })
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_example_config_names_every_option_and_parses() {
        use clap::CommandFactory;
        let text = example_uncommented();
        for arg in Options::command().get_arguments() {
            let key = arg.get_id().as_str();
            if key == "config" {
                continue;
            }
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{key} = "))),
                "collector.example.toml does not show `{key}`"
            );
        }
        // Every key and value shown is one the collector takes.
        let all: Options = toml::from_str(&text).expect("the uncommented example parses");
        let sources = all.sources.expect("[[sources]] in the example");
        assert_eq!(sources.len(), 2);
        assert!(sources.iter().all(|s| !s.write_keys.is_empty()));
        assert_eq!(all.rate_limit_source_burst, Some(200));
        // As shipped (all commented out), it is the defaults: the collector starts with it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.toml");
        std::fs::write(&path, EXAMPLE).unwrap();
        let config = Options {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(config.sources.is_empty());
    }

    #[test]
    fn defaults() {
        let c = Options::default().resolve().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.sinks, vec![SinkKind::Capture]);
        assert_eq!(c.capture.roll_after, Duration::from_secs(300));
        assert_eq!(c.ingest.max_body_bytes, 512_000);
        assert_eq!(c.tracker_prefix, "/lib");
        assert!(!c.inspector && c.site_dir.is_none());
        assert!(c.sources.is_empty() && c.tls.is_none());
        assert_eq!(
            c.limits,
            LimitsConfig {
                ip_per_sec: 50,
                ip_burst: 200,
                source_per_sec: 0,
                source_burst: 0
            }
        );
    }

    #[test]
    fn sources_come_from_the_file_and_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[[sources]]\nname = \"web\"\nwrite_keys = [\"k1\"]\nallowed_origins = [\"https://shop.example\"]\n",
        )
        .unwrap();
        let c = Options {
            config: Some(file.clone()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.sources[0].name, "web");
        std::fs::write(&file, "[[sources]]\nname = \"web\"\nwrite_keys = []\n").unwrap();
        let err = Options {
            config: Some(file),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{err:#}").contains("no write_keys"), "{err:#}");
    }

    #[test]
    fn demo_mode_serves_site_tracker_and_inspector() {
        let c = Options::try_parse_from(["collector", "--demo"])
            .unwrap()
            .resolve()
            .unwrap();
        assert!(c.inspector);
        assert_eq!(c.site_dir, Some(PathBuf::from("www")));
        assert_eq!(c.tracker_dir, Some(PathBuf::from("tracker/pkg")));
        let c = Options::try_parse_from(["collector", "--demo", "--inspector", "false"])
            .unwrap()
            .resolve()
            .unwrap();
        assert!(!c.inspector);
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\ndata_dir = \"/x\"\nsink = [\"stdout\", \"capture\"]\nip = \"drop\"\n").unwrap();
        let opts = Options::try_parse_from([
            "collector",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            "/y",
        ])
        .unwrap();
        let c = opts.resolve().unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.data_dir, PathBuf::from("/y"));
        assert_eq!(c.sinks, vec![SinkKind::Stdout, SinkKind::Capture]);
        assert_eq!(c.ingest.ip, IpMode::Drop);
    }

    #[test]
    fn bad_file_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = Options {
            config: Some(file),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    }

    #[test]
    fn sink_list_from_flag() {
        let opts = Options::try_parse_from(["collector", "--sink", "capture,stdout"]).unwrap();
        assert_eq!(
            opts.sink.unwrap(),
            vec![SinkKind::Capture, SinkKind::Stdout]
        );
    }

    #[test]
    fn extreme_values_are_refused_or_clamped() {
        let err =
            Options::try_parse_from(["collector", "--max-body-bytes", "18446744073709551615"])
                .unwrap()
                .resolve()
                .unwrap_err();
        assert!(err.to_string().contains("--max-body-bytes"), "{err}");
        let c = Options::try_parse_from([
            "collector",
            "--shutdown-timeout-secs",
            "18446744073709551615",
            "--max-connections",
            "18446744073709551615",
        ])
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(
            c.shutdown_timeout,
            Duration::from_secs(MAX_SHUTDOWN_TIMEOUT_SECS)
        );
        assert_eq!(c.conn.max_connections, MAX_CONNECTIONS);
    }

    #[test]
    fn rejects_prefix_that_hides_api() {
        let err = Options {
            tracker_prefix: Some("/v1/x".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("tracker-prefix"));
    }
}
