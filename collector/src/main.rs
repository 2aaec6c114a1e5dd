//! The `collector` binary: parse the command line, set up logging, run the server, or run one
//! of its tools (`capture`, `plan`, `config`, `healthcheck`).

use clap::{Parser, Subcommand};

/// mimalloc: ingest allocates many small, short-lived buffers per request; this allocator
/// handles that pattern with less CPU than glibc's (measured by `./dev bench`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use collector::capture_cli::{self, CaptureCommand};
use collector::config::{LogFormat, Options};
use collector::plan::cli::PlanCommand;

#[derive(Parser)]
#[command(
    name = "collector",
    version = collector::VERSION,
    about = "Segment-compatible clickstream collector: durable spool, Event Hubs Capture files, Event Hubs relay",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    options: Options,
}

#[derive(Subcommand)]
enum Command {
    /// Read capture Avro files: `collector capture cat|stats PATH...`
    #[command(subcommand)]
    Capture(CaptureCommand),
    /// Tracking plans: `collector plan check|test|types DIR`
    #[command(subcommand)]
    Plan(PlanCommand),
    /// The config file: `collector config check [FILE]` or `collector config example`
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Exit 0 when the collector at URL is ready (GET /readyz answers 200), else 1: for
    /// container health checks, where there is no curl
    Healthcheck {
        /// [default: /readyz on the admin address, else the listen address, from the
        /// environment and the config file (COLLECTOR_CONFIG) as the collector reads them]
        #[arg(long)]
        url: Option<String>,
        /// Seconds to wait for the answer
        #[arg(long, default_value_t = 5)]
        timeout_secs: u64,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a config file (and the environment, as the collector would read them) and every
    /// file it names: exit 0 when the collector would start with it, 1 with the problem
    Check {
        /// The TOML file [default: COLLECTOR_CONFIG, else none: flags' defaults and env only]
        file: Option<std::path::PathBuf>,
    },
    /// Print the fully commented example config: `collector config example > collector.toml`
    Example,
}

fn main() {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Config(ConfigCommand::Example)) => {
            print!("{}", collector::config::EXAMPLE);
            return;
        }
        Some(Command::Config(ConfigCommand::Check { file })) => {
            let checked = Options::from_env()
                .and_then(|mut options| {
                    if let Some(file) = file {
                        options.config = Some(file.clone());
                    }
                    options.resolve()
                })
                .and_then(|config| collector::check(&config));
            match checked {
                Ok(lines) => {
                    for line in lines {
                        println!("{line}");
                    }
                    println!("config ok");
                    return;
                }
                Err(e) => {
                    eprintln!("collector config check: {e:#}");
                    std::process::exit(1);
                }
            }
        }
        Some(Command::Healthcheck { url, timeout_secs }) => {
            let url = match url {
                Some(url) => url.clone(),
                None => match Options::from_env().and_then(Options::readyz_address) {
                    Ok(addr) => collector::healthcheck::url_for(addr),
                    Err(e) => {
                        eprintln!("collector healthcheck: {e:#}");
                        std::process::exit(1);
                    }
                },
            };
            let timeout = std::time::Duration::from_secs(*timeout_secs);
            match collector::healthcheck::probe(&url, timeout) {
                Ok(()) => return,
                Err(e) => {
                    eprintln!("collector healthcheck: {url}: {e:#}");
                    std::process::exit(1);
                }
            }
        }
        _ => {}
    }
    if let Some(Command::Plan(cmd)) = &cli.command {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let code = match collector::plan::cli::run(cmd, &mut out) {
            Ok(code) => code,
            Err(e) => {
                let _ = std::io::Write::flush(&mut out);
                eprintln!("collector plan: {e:#}");
                2
            }
        };
        let _ = std::io::Write::flush(&mut out);
        std::process::exit(code);
    }
    if let Some(Command::Capture(cmd)) = cli.command {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let result = match &cmd {
            CaptureCommand::Cat(args) => capture_cli::cat(args, &mut out),
            CaptureCommand::Stats(args) => capture_cli::stats(args, &mut out),
        };
        if let Err(e) = result.and_then(|()| std::io::Write::flush(&mut out).map_err(Into::into)) {
            // A closed pipe (`| head`) is not an error worth a message.
            if !e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                eprintln!("collector capture: {e:#}");
                std::process::exit(1);
            }
        }
        return;
    }
    let config = match cli.options.resolve() {
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
