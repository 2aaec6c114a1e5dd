//! Prometheus metrics. Code records with the `metrics` macros; `/metrics` renders them.
//! Spool gauges are sampled at scrape time.

use metrics::{describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::spool::Spool;

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Install the global recorder. Call once per process, within the runtime.
///
/// The exporter keeps each histogram sample until it is folded into the buckets, which a
/// scrape does. Without scrapes they would pile up (two per request), so a task folds them
/// every [`UPKEEP_INTERVAL`].
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let latency_buckets = [
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency_buckets)?
        .install_recorder()?;
    describe_counter!(
        "collector_http_requests_total",
        "HTTP requests by route and status"
    );
    describe_histogram!(
        "collector_http_request_duration_seconds",
        "HTTP request latency by route"
    );
    describe_counter!(
        "collector_events_accepted_total",
        "Events accepted (durably spooled)"
    );
    describe_counter!(
        "collector_events_rejected_total",
        "Events rejected by validation (dead-lettered)"
    );
    describe_counter!(
        "collector_event_bytes_total",
        "Bytes of accepted, enriched events"
    );
    describe_counter!(
        "collector_request_bytes_total",
        "Bytes of request bodies after decompression"
    );
    describe_counter!(
        "collector_dead_letters_total",
        "Events written to the dead-letter store, by stage"
    );
    describe_gauge!("collector_spool_bytes", "Bytes held in spool segments");
    describe_gauge!("collector_spool_max_bytes", "Disk budget of the spool");
    describe_gauge!(
        "collector_spool_head",
        "Sequence number after the last durable event"
    );
    describe_gauge!(
        "collector_spool_depth_events",
        "Events in the spool not yet delivered by the slowest sink"
    );
    describe_gauge!(
        "collector_sink_lag_events",
        "Events in the spool not yet delivered, by sink"
    );
    describe_counter!("collector_sink_events_total", "Events delivered, by sink");
    describe_counter!(
        "collector_sink_errors_total",
        "Failed delivery attempts, by sink"
    );
    describe_histogram!(
        "collector_sink_delivery_seconds",
        "Time of one delivery call, by sink"
    );
    describe_counter!("collector_capture_files_total", "Capture files finished");
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Render for a scrape, after sampling the spool.
pub fn render(handle: &PrometheusHandle, spool: &Spool) -> String {
    let s = spool.stats();
    gauge!("collector_spool_bytes").set(s.bytes as f64);
    gauge!("collector_spool_max_bytes").set(s.max_bytes as f64);
    gauge!("collector_spool_head").set(s.head as f64);
    let slowest = s.cursors.iter().map(|(_, c)| *c).min().unwrap_or(s.head);
    gauge!("collector_spool_depth_events").set(s.head.saturating_sub(slowest) as f64);
    for (sink, cursor) in &s.cursors {
        gauge!("collector_sink_lag_events", "sink" => *sink)
            .set(s.head.saturating_sub(*cursor) as f64);
    }
    handle.render()
}
