//! The shutdown watch Pingora runs on: SIGTERM/SIGINT drain this process; SIGQUIT hands the
//! listening sockets to a new process (`reverse --upgrade`) first. Draining: `/readyz` turns
//! 503, session GET streams end with `retry:` (`Drain`), and the process exits as soon as
//! nothing is in flight, or when `shutdown.grace_period` is over.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};

use super::upgrade::OVERLAP;
use crate::proxy::reverse::drain::Drain;
use crate::upstream::stdio::{ProcessGroups, KILL_GRACE};

pub(super) struct DrainOnSignal {
    pub ready: Arc<AtomicBool>,
    pub in_flight: Arc<AtomicUsize>,
    pub drain: Arc<Drain>,
    pub grace: Duration,
    pub children: ProcessGroups,
}

#[async_trait]
impl ShutdownSignalWatch for DrainOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("cannot install signal handlers; SIGTERM will kill the process");
            return std::future::pending().await;
        };
        let (name, after, answer) = tokio::select! {
            _ = term.recv() => ("SIGTERM", Duration::ZERO, ShutdownSignal::GracefulTerminate),
            _ = int.recv() => ("SIGINT", Duration::ZERO, ShutdownSignal::GracefulTerminate),
            // Pingora sends the sockets, keeps accepting for its overlap (the new process
            // accepts too), then stops: the drain starts there.
            _ = quit.recv() => ("SIGQUIT", OVERLAP, ShutdownSignal::GracefulUpgrade),
        };
        tracing::info!(
            signal = name,
            in_flight = self.in_flight.load(Ordering::Relaxed),
            grace = ?self.grace,
            "draining"
        );
        let (ready, in_flight, drain) = (
            self.ready.clone(),
            self.in_flight.clone(),
            self.drain.clone(),
        );
        let (grace, children) = (self.grace, self.children.clone());
        // Pingora sleeps the whole grace period; leave as soon as nothing is in flight.
        std::thread::spawn(move || {
            std::thread::sleep(after);
            ready.store(false, Ordering::Relaxed);
            // Session GET streams end now, with `retry:`; requests being answered go on.
            drain.start();
            let start = Instant::now();
            while start.elapsed() < grace {
                if in_flight.load(Ordering::Relaxed) == 0 {
                    tracing::info!(after_ms = start.elapsed().as_millis() as u64, "drained");
                    // Stdio children end first (SIGTERM, SIGKILL after a grace): `exit` runs
                    // no destructor that would end them.
                    children.terminate_all_blocking(KILL_GRACE);
                    std::process::exit(0);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            tracing::warn!(
                in_flight = in_flight.load(Ordering::Relaxed),
                "grace period over, closing what is left"
            );
            children.terminate_all_blocking(KILL_GRACE);
        });
        answer
    }
}
