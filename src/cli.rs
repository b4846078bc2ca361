//! Command line: `shadowcat reverse ...` runs the proxy, `shadowcat check-config FILE` validates.
//! Every setting is a key of the YAML config; the flags override a few of them, and each help
//! text names the keys or points to where they are listed.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Where the config keys are listed; the end of every command's help.
const CONFIG_KEYS: &str = "Config keys: every setting is a key of the YAML config file. \
conf/shadowcat.yaml (in the source tree) lists each key with its default, and the README's \
\"Configuration\" section explains them. Unknown keys are errors.";

/// Shadowcat: a streaming MCP edge proxy on Pingora.
#[derive(Debug, Parser)]
#[command(name = "shadowcat", version, about, long_about = None, after_help = CONFIG_KEYS)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the MCP reverse proxy: Streamable HTTP in front of one or more MCP servers.
    ///
    /// The upstreams are the config file's `upstreams` list (each with a `weight`); new sessions
    /// and sessionless requests go to one of them by `load_balancing` (`round_robin`, weighted,
    /// or `least_sessions`), and a session stays on the upstream that made it. With --upstream
    /// no file is needed: one upstream, every other key at its default. Each flag overrides
    /// the key named in its help; the file sets the rest (`auth`, `interceptors`,
    /// `rate_limits`, `limits`, `timeouts`, `sse`, `sessions`, `security`, ...). Logs go to
    /// stderr, at the level set by RUST_LOG, as text or JSON (`log.format`).
    #[command(after_help = CONFIG_KEYS)]
    Reverse(ReverseArgs),
    /// Validate a config file without binding any port: exit 0 when valid, otherwise one line
    /// on stderr naming the field and the problem, and exit code 64.
    ///
    /// Checks every key of the file, and the interceptor rules file it names
    /// (`interceptors.rules_file`), as `reverse --config FILE` would load them.
    #[command(after_help = CONFIG_KEYS)]
    CheckConfig {
        /// The YAML config file (its keys: conf/shadowcat.yaml).
        file: PathBuf,
    },
    /// Read tapes (recorded with `recording:` or `reverse --record DIR`): check, list, show,
    /// export.
    #[command(subcommand, after_help = CONFIG_KEYS)]
    Tape(TapeCommand),
    /// Serve tapes as a Streamable HTTP MCP server: `initialize` as recorded (with a fresh
    /// session id), every request answered with the recorded answer to the same method and
    /// parameters, as JSON or as SSE with the recorded spacing. A request no tape holds gets
    /// a JSON-RPC error naming the closest recorded one.
    #[command(after_help = CONFIG_KEYS)]
    Replay(ReplayArgs),
}

/// `tape` subcommands.
#[derive(Debug, Subcommand)]
pub enum TapeCommand {
    /// Validate a tape: exit 0, or one line naming the first broken line and exit code 64.
    Check {
        /// The tape file (.jsonl).
        tape: PathBuf,
    },
    /// One line per tape in a directory: file, start, protocol version, upstream, messages.
    List {
        /// The recording directory (`recording.dir`).
        dir: PathBuf,
    },
    /// A readable timeline: time, direction, HTTP method or status, JSON-RPC method or
    /// result, SSE event ids.
    Show { tape: PathBuf },
    /// Convert a tape to another format on stdout.
    Export {
        tape: PathBuf,
        /// `har`: HAR 1.2 (one entry per HTTP exchange), for browser tools and HTTP tooling.
        #[arg(long, value_parser = ["har"], default_value = "har")]
        format: String,
    },
}

/// `replay` flags.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Tape files to serve (their recorded requests are matched together).
    #[arg(required = true, value_name = "TAPE")]
    pub tapes: Vec<PathBuf>,
    /// Address to serve MCP on, e.g. 127.0.0.1:8080 (port 0: any free port, printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Time between SSE events: 0 sends them at once, 1 as recorded, 2 twice as fast.
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    pub speed: f64,
    /// A field of `params` that matching ignores, as a JSON pointer (repeatable), e.g.
    /// `/cursor` or `/arguments/timestamp`. `_meta` is always ignored.
    #[arg(long = "ignore", value_name = "POINTER")]
    pub ignore: Vec<String>,
    /// The endpoint path served.
    #[arg(long, value_name = "PATH", default_value = "/mcp")]
    pub endpoint: String,
}

/// `reverse` flags; each one overrides the same setting of the config file.
#[derive(Debug, Args)]
pub struct ReverseArgs {
    /// YAML config file, keys as in conf/shadowcat.yaml (optional when --upstream is given).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address for MCP clients, e.g. 127.0.0.1:8080 (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// PEM certificate chain: with --tls-key, the --bind (or `listen`) listener terminates
    /// TLS (overrides `cert_file` of a listener's `tls`).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert (overrides `key_file` of a listener's `tls`).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Upstream MCP endpoint URL, e.g. http://127.0.0.1:3001/mcp (replaces the `upstreams`
    /// list with this one upstream; several upstreams need the config file).
    #[arg(long, value_name = "URL", conflicts_with = "upstream_command")]
    pub upstream: Option<String>,
    /// Run the upstream MCP server as a stdio program, given after `--`: one child per MCP
    /// session, served through the proxy's stdio bridge (replaces the `upstreams` list with
    /// this one upstream), e.g. `--upstream-command -- npx -y @modelcontextprotocol/server-memory`.
    #[arg(long, requires = "command")]
    pub upstream_command: bool,
    /// With --upstream-command: the program and its arguments, after `--` (replaces the
    /// `upstreams` list with this one stdio upstream).
    #[arg(
        last = true,
        value_name = "PROGRAM ARGS",
        requires = "upstream_command"
    )]
    pub command: Vec<String>,
    /// Admin address for /metrics, /healthz and /readyz, or `off` (overrides `admin`).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// Worker threads for the proxy (overrides `threads`; default: one per CPU core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Log lines as `text` or `json`, one object per line (overrides `format` under `log`).
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// Record every session's traffic as tapes in DIR (overrides `dir` under `recording`;
    /// the other `recording` keys come from the file or their defaults).
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Zero-downtime upgrade: take over the listening sockets of the shadowcat running with
    /// the same addresses (fixed ports, not 0), then send that one SIGQUIT within 30 s; the
    /// sockets pass through a Unix socket (uses `upgrade_sock` under `shutdown`).
    #[arg(long)]
    pub upgrade: bool,
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

    #[test]
    fn upstream_command_takes_the_program_after_dashes() {
        let cli = Cli::parse_from([
            "shadowcat",
            "reverse",
            "--bind",
            "127.0.0.1:0",
            "--upstream-command",
            "--",
            "npx",
            "-y",
            "@modelcontextprotocol/server-memory",
        ]);
        let Command::Reverse(args) = cli.command else {
            panic!()
        };
        assert!(args.upstream_command);
        assert_eq!(
            args.command,
            ["npx", "-y", "@modelcontextprotocol/server-memory"]
        );
        for bad in [
            &["shadowcat", "reverse", "--upstream-command"][..],
            &["shadowcat", "reverse", "--", "npx"],
            &[
                "shadowcat",
                "reverse",
                "--upstream",
                "http://x/mcp",
                "--upstream-command",
                "--",
                "x",
            ],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    /// Every command's help points to the config keys; `reverse` says it takes several
    /// upstreams; every `reverse` flag names the key it overrides, and that key exists in
    /// conf/shadowcat.yaml.
    #[test]
    fn help_names_the_config_keys() {
        let conf = include_str!("../conf/shadowcat.yaml");
        let mut cmd = Cli::command();
        let top = cmd.render_long_help().to_string();
        assert!(top.contains("conf/shadowcat.yaml"), "{top}");
        for sub in cmd
            .get_subcommands_mut()
            .filter(|s| !matches!(s.get_name(), "help"))
        {
            let help = sub.render_long_help().to_string();
            assert!(help.contains("conf/shadowcat.yaml"), "{help}");
            assert!(help.contains("\"Configuration\""), "{help}");
        }
        let reverse = cmd.find_subcommand_mut("reverse").unwrap();
        let help = reverse.render_long_help().to_string();
        assert!(help.contains("one or more MCP servers"), "{help}");
        assert!(!help.contains("one MCP server"), "{help}");
        assert!(help.contains("least_sessions"), "{help}");
        for arg in reverse.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "config") {
                continue;
            }
            let text = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let key = text
                .split("overrides `")
                .nth(1)
                .or_else(|| text.split("replaces the `").nth(1))
                // A flag that sets no key (`--upgrade`) names the one it reads.
                .or_else(|| text.split("uses `").nth(1))
                .and_then(|rest| rest.split('`').next())
                .unwrap_or_else(|| panic!("--{id} names no config key: {text}"));
            assert!(
                conf.lines().any(|l| l
                    .trim_start_matches(['#', ' '])
                    .starts_with(&format!("{key}:"))),
                "--{id}: `{key}` is not a key of conf/shadowcat.yaml"
            );
        }
    }
}
