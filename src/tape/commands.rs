//! The `tape` and `replay` commands: what they print and their exit codes (0, or 64 for a
//! broken tape or bad flags, 69 when the replay server cannot start).

use std::io::Write;

use super::{check, har, replay, show};
use crate::cli::{ReplayArgs, TapeCommand, EXIT_CONFIG, EXIT_START};

/// Runs a `tape` subcommand; the process's exit code.
pub fn tape(command: TapeCommand) -> u8 {
    let result = match command {
        TapeCommand::Check { tape } => check::read(&tape).map(|t| {
            println!(
                "{}: ok ({} lines, {} exchanges)",
                tape.display(),
                t.lines.len() + 1,
                show::exchanges(&t)
            );
        }),
        TapeCommand::List { dir } => {
            return match show::list(&dir) {
                Ok(text) => print(&text),
                Err(e) => {
                    eprintln!("{}: {e}", dir.display());
                    EXIT_CONFIG as u8
                }
            }
        }
        TapeCommand::Show { tape } => check::read(&tape).map(|t| {
            print(&show::timeline(&t));
        }),
        TapeCommand::Export { tape, .. } => check::read(&tape).map(|t| {
            let har = har::export(&t);
            print(&format!(
                "{}\n",
                serde_json::to_string_pretty(&har).unwrap_or_default()
            ));
        }),
    };
    match result {
        Ok(()) => 0,
        Err(broken) => {
            eprintln!("{broken}");
            EXIT_CONFIG as u8
        }
    }
}

/// Runs `replay` until SIGINT/SIGTERM; the process's exit code.
pub fn replay(args: ReplayArgs) -> u8 {
    if !(args.speed >= 0.0 && args.speed.is_finite()) {
        eprintln!("--speed: must be 0 or more");
        return EXIT_CONFIG as u8;
    }
    let library = match replay::Library::load(&args.tapes, &args.ignore) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG as u8;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return EXIT_START as u8;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&args.bind).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("cannot start: {}: {e}", args.bind);
                return EXIT_START as u8;
            }
        };
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        println!(
            "replaying {} exchanges on http://{addr}{}",
            library.len(),
            args.endpoint
        );
        let _ = std::io::stdout().flush();
        let server = replay::Server::new(library, args.speed, args.endpoint);
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = server.serve(listener) => {}
            () = stop => {}
            () = term => {}
        }
        0
    })
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) -> u8 {
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}
