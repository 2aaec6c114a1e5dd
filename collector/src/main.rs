//! The `collector` binary: parse options, set up logging, run.

use clap::Parser;
use collector::config::{LogFormat, Options};

fn main() {
    let options = Options::parse();
    let config = match options.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("collector: {e:#}");
            std::process::exit(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("COLLECTOR_LOG")
        .unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(collector::run(config)) {
        tracing::error!("{e:#}");
        eprintln!("collector: {e:#}");
        std::process::exit(1);
    }
}
