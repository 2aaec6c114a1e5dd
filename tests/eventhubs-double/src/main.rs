//! `eventhubs-double --listen 127.0.0.1:PORT`: runs the Event Hubs double as a process for
//! manual use and benchmarks. By default it prints every accepted event as one NDJSON line on
//! stdout; `--latency-field receivedAt` instead measures, per event, the time from that RFC 3339
//! timestamp in the event's JSON body to its arrival here, and prints one summary line on exit.

use std::io::Write as _;
use std::time::UNIX_EPOCH;

use eventhubs_double::{Double, DoubleConfig, ReceivedEvent};

const USAGE: &str = "usage: eventhubs-double [--listen ADDR] [--hub NAME] [--namespace HOST] \
[--partitions N] [--max-message-size BYTES] [--quiet | --latency-field NAME]
  --listen            where to listen (default 127.0.0.1:5672)
  --hub               the event hub name (default clicks)
  --namespace         the namespace host in the connection string (never resolved)
  --partitions        partition count (default 4)
  --max-message-size  max-message-size reported on sender links (default 1048576)
  --quiet             count events instead of printing them; print the count on exit
  --latency-field F   don't print events; on SIGUSR1 and on exit (SIGTERM/SIGINT) print one JSON
                      line with the count, arrival window and p50/p90/p99/max of (arrival - body.F)
                      in ms for the events since the previous line";

enum Mode {
    Print,
    Quiet,
    Latency(String),
}

fn parse() -> anyhow::Result<(DoubleConfig, Mode)> {
    let mut config = DoubleConfig {
        listen: "127.0.0.1:5672".parse()?,
        ..Default::default()
    };
    let mut mode = Mode::Print;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => config.listen = value()?.parse()?,
            "--hub" => config.hub = value()?,
            "--namespace" => config.namespace = value()?,
            "--partitions" => config.partition_count = value()?.parse()?,
            "--max-message-size" => config.max_message_size = value()?.parse()?,
            "--quiet" => mode = Mode::Quiet,
            "--latency-field" => mode = Mode::Latency(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok((config, mode))
}

/// The string value of a field of a JSON object: the first `"field":"..."` in compact JSON (what
/// the collector relays), found by a byte search so that measuring does not steal much CPU from
/// the system under test; JSON with other spacing takes the full parse (top-level field).
fn field_str(body: &[u8], field: &str) -> Option<String> {
    let needle = format!("\"{field}\":\"");
    if let Some(at) = body
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
    {
        let rest = &body[at + needle.len()..];
        let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
        if rest[end] == b'"' {
            return std::str::from_utf8(&rest[..end]).ok().map(str::to_owned);
        }
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get(field)?
        .as_str()
        .map(str::to_owned)
}

/// Arrival-time statistics for `--latency-field`.
#[derive(Default)]
struct Latencies {
    field: String,
    millis: Vec<i64>,
    missing: u64,
    first_ms: Option<u128>,
    last_ms: u128,
}

impl Latencies {
    fn add(&mut self, event: &ReceivedEvent) {
        let arrived = event
            .received_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.first_ms.get_or_insert(arrived.as_millis());
        self.last_ms = arrived.as_millis();
        let stamp = field_str(&event.body, &self.field)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok());
        match stamp {
            Some(t) => self
                .millis
                .push(arrived.as_millis() as i64 - t.timestamp_millis()),
            None => self.missing += 1,
        }
    }

    fn summary(&mut self) -> serde_json::Value {
        let events = self.millis.len() + self.missing as usize;
        self.millis.sort_unstable();
        let q = |p: f64| -> Option<i64> {
            let n = self.millis.len();
            (n > 0).then(|| self.millis[((n as f64 * p).ceil() as usize).clamp(1, n) - 1])
        };
        let window_ms = self.first_ms.map(|f| self.last_ms - f).unwrap_or(0);
        let line = serde_json::json!({
            "events": events,
            "window_ms": window_ms,
            "events_per_sec": if window_ms > 0 { events as f64 * 1000.0 / window_ms as f64 } else { 0.0 },
            "latency_field": self.field,
            "latency_ms": {"p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "max": q(1.0)},
            "without_field": self.missing,
        });
        *self = Latencies {
            field: std::mem::take(&mut self.field),
            ..Default::default()
        };
        line
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, mode) = parse()?;
    let double = Double::start_with(config).await?;
    double.recorder().forget_events();
    eprintln!("eventhubs-double listening on {}", double.addr());
    eprintln!("  endpoint:          {}", double.endpoint());
    eprintln!("  connection string: {}", double.connection_string());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    if !matches!(mode, Mode::Quiet) {
        double.recorder().set_tap(tx);
    }
    let latency_field = match &mode {
        Mode::Latency(f) => Some(f.clone()),
        _ => None,
    };
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    let (flush_tx, mut flush_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let consumer = tokio::spawn(async move {
        let mut stats = latency_field.map(|field| Latencies {
            field,
            ..Default::default()
        });
        loop {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => match stats.as_mut() {
                        Some(s) => s.add(&event),
                        None => {
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(out, "{}", event.to_json());
                            let _ = out.flush();
                        }
                    },
                    None => break,
                },
                Some(()) = flush_rx.recv() => {
                    // Everything accepted before the signal is already queued: drain it first.
                    while let Ok(event) = rx.try_recv() {
                        if let Some(s) = stats.as_mut() {
                            s.add(&event);
                        }
                    }
                    if let Some(s) = stats.as_mut() {
                        println!("{}", s.summary());
                    }
                }
            }
        }
        if let Some(mut s) = stats {
            println!("{}", s.summary());
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = usr1.recv() => {
                let _ = flush_tx.send(());
            }
        }
    }
    double.kill();
    let events = double.recorder().len();
    // Closing the tap lets the consumer finish what is queued and print the last summary.
    double.recorder().close_tap();
    let _ = consumer.await;
    eprintln!("eventhubs-double: {events} events accepted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::field_str;

    #[test]
    fn finds_a_top_level_string_field_fast_or_slow() {
        let compact = br#"{"type":"track","receivedAt":"2026-11-28T12:00:00.000Z","n":1}"#;
        assert_eq!(
            field_str(compact, "receivedAt").as_deref(),
            Some("2026-11-28T12:00:00.000Z")
        );
        let spaced = br#"{ "receivedAt" : "2026-11-28T12:00:00.000Z" }"#;
        assert_eq!(
            field_str(spaced, "receivedAt").as_deref(),
            Some("2026-11-28T12:00:00.000Z")
        );
        assert_eq!(field_str(br#"{"other":1}"#, "receivedAt"), None);
        assert_eq!(field_str(b"not json", "receivedAt"), None);
    }
}
