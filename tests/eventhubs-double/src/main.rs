//! `eventhubs-double --listen 127.0.0.1:PORT`: runs the Event Hubs double as a process for
//! manual use and benchmarks, printing every accepted event as one NDJSON line on stdout.

use std::io::Write as _;

use eventhubs_double::{Double, DoubleConfig};

const USAGE: &str = "usage: eventhubs-double [--listen ADDR] [--hub NAME] [--namespace HOST] \
[--partitions N] [--max-message-size BYTES] [--quiet]
  --listen            where to listen (default 127.0.0.1:5672)
  --hub               the event hub name (default clicks)
  --namespace         the namespace host in the connection string (never resolved)
  --partitions        partition count (default 4)
  --max-message-size  max-message-size reported on sender links (default 1048576)
  --quiet             count events instead of printing them; print the count on exit";

fn parse() -> anyhow::Result<(DoubleConfig, bool)> {
    let mut config = DoubleConfig {
        listen: "127.0.0.1:5672".parse()?,
        ..Default::default()
    };
    let mut quiet = false;
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
            "--quiet" => quiet = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok((config, quiet))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, quiet) = parse()?;
    let double = Double::start_with(config).await?;
    eprintln!("eventhubs-double listening on {}", double.addr());
    eprintln!("  endpoint:          {}", double.endpoint());
    eprintln!("  connection string: {}", double.connection_string());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    if !quiet {
        double.recorder().set_tap(tx);
    }
    let printer = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", event.to_json());
            let _ = out.flush();
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    double.kill();
    printer.abort();
    eprintln!(
        "eventhubs-double: {} events accepted",
        double.recorder().len()
    );
    Ok(())
}
