//! Command line: `shadowcat reverse ...` runs the proxy, `shadowcat check-config FILE` validates.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Shadowcat: a streaming MCP edge proxy on Pingora.
#[derive(Debug, Parser)]
#[command(name = "shadowcat", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the MCP reverse proxy (Streamable HTTP in front of one MCP server).
    Reverse(ReverseArgs),
    /// Validate a config file without binding any port: exit 0 when valid, otherwise one line
    /// on stderr naming the field and the problem, and exit code 64.
    CheckConfig {
        /// The YAML config file.
        file: PathBuf,
    },
}

/// `reverse` flags; each one overrides the same setting of the config file.
#[derive(Debug, Args)]
pub struct ReverseArgs {
    /// YAML config file (optional when --upstream is given).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address for MCP clients, e.g. 127.0.0.1:8080 (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Upstream MCP endpoint URL, e.g. http://127.0.0.1:3001/mcp (replaces `upstreams`).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Admin address for /metrics, /healthz and /readyz, or `off` (overrides `admin`).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// Worker threads for the proxy (overrides `threads`; default: one per CPU core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Exit code for a bad config or bad flags (EX_USAGE from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;
/// Exit code when the proxy cannot start (address in use, unresolvable upstream).
pub const EXIT_START: i32 = 69;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from([
            "shadowcat",
            "reverse",
            "--bind",
            "127.0.0.1:0",
            "--upstream",
            "http://x/mcp",
        ]);
        let Command::Reverse(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.bind.as_deref(), Some("127.0.0.1:0"));
        assert!(args.config.is_none());
    }
}
