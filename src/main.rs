//! `shadowcat`: CLI → load and validate config → build the server → run.

use std::process::ExitCode;

use clap::Parser;
use shadowcat::cli::{Cli, Command, ReverseArgs, EXIT_CONFIG, EXIT_START};
use shadowcat::config::{self, LogFormat, Overrides};

/// jemalloc instead of glibc's malloc. Profiled under load (`perf`, the json_max scenario), the
/// allocator went from ~14.5% of the proxy's CPU (glibc) to ~2.3% (jemalloc); mimalloc gave
/// ~6% but twice the memory per idle SSE stream (128 KB against 57 KB, it commits Pingora's
/// 64 KiB body buffers), which jemalloc, like glibc, leaves untouched until used.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(config) => {
                // Valid but probably not meant: said on stderr, and the check still passes.
                for warning in config.warnings() {
                    eprintln!("{}: warning: {warning}", file.display());
                }
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                ExitCode::from(EXIT_CONFIG as u8)
            }
        },
        Command::Reverse(args) => reverse(args),
    }
}

fn reverse(args: ReverseArgs) -> ExitCode {
    let overrides = Overrides {
        listen: args.bind,
        tls_cert: args.tls_cert.map(|p| p.display().to_string()),
        tls_key: args.tls_key.map(|p| p.display().to_string()),
        admin: args.admin,
        upstream: args.upstream,
        upstream_command: args.upstream_command.then_some(args.command),
        threads: args.threads,
        log_format: args.log_format,
    };
    // The config says how to log, so it is read first; its errors are plain lines on stderr
    // (nothing is logged before this point).
    let config = match config::load_with(args.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("config error: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    init_logging(config.log.format);
    let upstream = config
        .upstreams
        .first()
        .map(|u| u.describe())
        .unwrap_or_default();
    let proxy = match shadowcat::server::build(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::from(EXIT_START as u8);
        }
    };
    tracing::info!(
        listen = ?proxy.listeners,
        admin = ?proxy.admin,
        upstream,
        version = env!("CARGO_PKG_VERSION"),
        "shadowcat is up"
    );
    proxy.run_until_signal();
    ExitCode::SUCCESS
}

/// Logs go to stderr (stdout stays free for `check-config`). Text is colored only on a
/// terminal; JSON is one object per line with each event's fields as top-level keys (the
/// access line's `method`, `status`, `ms`, ... beside `timestamp`, `level`, `target`), so a log
/// pipeline reads them without parsing a message.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}
