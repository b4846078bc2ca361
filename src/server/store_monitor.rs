//! Keeps the shared store's health fresh without traffic: a ping every second, so `/readyz`
//! and `shadowcat_store_errors_total{op="ping"}` tell an idle replica's store is gone, and
//! the connection manager reconnects as soon as it is back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::store::Store;

pub(super) struct StoreMonitor(pub Arc<Store>);

#[async_trait]
impl BackgroundService for StoreMonitor {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let _ = self.0.ping().await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
