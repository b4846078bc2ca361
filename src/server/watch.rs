//! Reloads without restart: everything read from a file that can change under a running proxy
//! (interceptor rules, TLS certificates) is read again on SIGHUP, and on change when polled.
//!
//! Polling once a second is cheap (a `stat` per file) and works on every filesystem, editors'
//! rename-on-save and Kubernetes' symlink swap of a secret volume included, where change
//! notifications are unreliable. One SIGHUP handler serves every target.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::tls::TlsEdge;
use crate::interceptor::Interceptors;
use crate::proxy::reverse::Metrics;

/// Something the watcher reloads.
pub trait Reload: Send + Sync {
    /// Whether [`Reload::changed`] is polled (SIGHUP reloads every target regardless).
    fn polled(&self) -> bool;
    /// A file changed since it was last read.
    fn changed(&self) -> bool;
    /// Reads the files again; logs and counts the outcome. A failure keeps what was in force.
    fn reload(&self, why: &'static str);
}

/// Reloads its targets on SIGHUP, and each polled one when its files change.
pub struct Watcher(pub Vec<Box<dyn Reload>>);

#[async_trait]
impl BackgroundService for Watcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGHUP handler; reload by file change only");
                None
            }
        };
        let polled = self.0.iter().any(|t| t.polled());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    for target in &self.0 {
                        target.reload("SIGHUP");
                    }
                }
                _ = tick.tick(), if polled => {
                    for target in self.0.iter().filter(|t| t.polled() && t.changed()) {
                        target.reload("file changed");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// The interceptor rule file; polled when `interceptors.watch` is set.
pub struct RulesReload {
    pub interceptors: Arc<Interceptors>,
    pub watch: bool,
    pub metrics: Arc<Metrics>,
}

impl Reload for RulesReload {
    fn polled(&self) -> bool {
        self.watch
    }

    fn changed(&self) -> bool {
        self.interceptors.file_changed()
    }

    fn reload(&self, why: &'static str) {
        let file = self.interceptors.file().map(|f| f.display().to_string());
        match self.interceptors.reload() {
            Ok(n) => {
                self.metrics.rules_reload.with_label_values(&["ok"]).inc();
                tracing::info!(rules = n, file, why, "interceptor rules reloaded");
            }
            Err(e) => {
                self.metrics
                    .rules_reload
                    .with_label_values(&["error"])
                    .inc();
                tracing::error!(error = %e, file, why, "rule file rejected; the previous rules stay in force");
            }
        }
    }
}

/// A TLS listener's certificates: always polled (cert-manager and certbot rotate files in
/// place and expect the server to notice).
impl Reload for Arc<TlsEdge> {
    fn polled(&self) -> bool {
        true
    }

    fn changed(&self) -> bool {
        TlsEdge::changed(self)
    }

    fn reload(&self, why: &'static str) {
        TlsEdge::reload(self, why)
    }
}
