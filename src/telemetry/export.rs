//! Export that never hurts traffic: the SDK's batch span processor behind a gate that counts
//! every span it cannot take, and the OTLP exporter run on a small runtime of its own.
//!
//! A request only ever hands a finished span to a bounded queue (`try_send`, never a wait).
//! What can be lost is counted in `shadowcat_telemetry_dropped_total`:
//!
//! * the queue is full (a slow or dead collector holds the exporter): the [`Gate`] refuses the
//!   span before the SDK's queue would, so the count is exact. It tracks spans in flight (queued
//!   or being exported) against the queue's capacity; the exporter releases them;
//! * an export fails or times out (connection refused, `timeouts` past): its whole batch.
//!   Retries are off (a retry holds the queue longer and the spans are telemetry, not traffic).
//!
//! The SDK's processor runs exports on a thread of its own (`futures_executor::block_on`);
//! the gRPC and HTTP clients need tokio, so [`OnRuntime`] runs each export on the
//! telemetry runtime (one worker thread), apart from Pingora's runtimes: an export never
//! takes a proxy worker's time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use prometheus::IntCounter;

/// Spans held at most (queued and being exported): the SDK's default queue.
pub const QUEUE: usize = 2048;
/// Spans per export at most.
const BATCH: usize = 512;
/// How often a partial batch goes out.
const DELAY: Duration = Duration::from_secs(1);
/// One export at most this long (the exporter's own timeout).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Spans in flight, against the queue's capacity; drops counted.
#[derive(Debug)]
pub struct Ledger {
    in_flight: AtomicUsize,
    capacity: usize,
    dropped: IntCounter,
}

impl Ledger {
    pub fn new(capacity: usize, dropped: IntCounter) -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            capacity,
            dropped,
        })
    }

    /// Takes a place for one span, or counts it dropped.
    fn admit(&self) -> bool {
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            self.dropped.inc();
        }
        taken
    }

    /// `n` spans left the queue: exported, or (`delivered` false) lost with their batch.
    fn release(&self, n: usize, delivered: bool) {
        self.in_flight.fetch_sub(n, Ordering::AcqRel);
        if !delivered {
            self.dropped.inc_by(n as u64);
        }
    }
}

/// The batch processor, admitting only the spans its queue can hold.
#[derive(Debug)]
pub struct Gate {
    inner: BatchSpanProcessor,
    ledger: Arc<Ledger>,
}

impl Gate {
    pub fn new<E: SpanExporter + 'static>(exporter: OnRuntime<E>) -> Self {
        let ledger = exporter.ledger.clone();
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(ledger.capacity)
            .with_max_export_batch_size(BATCH.min(ledger.capacity))
            .with_scheduled_delay(DELAY)
            .build();
        let inner = BatchSpanProcessor::builder(exporter)
            .with_batch_config(config)
            .build();
        Self { inner, ledger }
    }
}

impl SpanProcessor for Gate {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.ledger.admit() {
            self.inner.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// An exporter whose exports run on the telemetry runtime, each one's spans released from
/// the ledger when it ends.
#[derive(Debug)]
pub struct OnRuntime<E> {
    inner: Arc<E>,
    runtime: tokio::runtime::Handle,
    ledger: Arc<Ledger>,
}

impl<E: SpanExporter + 'static> OnRuntime<E> {
    pub fn new(inner: E, runtime: tokio::runtime::Handle, ledger: Arc<Ledger>) -> Self {
        Self {
            inner: Arc::new(inner),
            runtime,
            ledger,
        }
    }
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let n = batch.len();
        let inner = self.inner.clone();
        let task = self.runtime.spawn(async move { inner.export(batch).await });
        let ledger = self.ledger.clone();
        async move {
            let result = match task.await {
                Ok(r) => r,
                Err(e) => Err(OTelSdkError::InternalFailure(e.to_string())),
            };
            ledger.release(n, result.is_ok());
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once, when the provider is built, before any export holds a clone.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_refuses_past_capacity_and_counts_lost_batches() {
        let dropped = IntCounter::new("d", "d").unwrap();
        let ledger = Ledger::new(2, dropped.clone());
        assert!(ledger.admit());
        assert!(ledger.admit());
        assert!(!ledger.admit(), "a third span does not fit");
        assert_eq!(dropped.get(), 1);
        ledger.release(2, false);
        assert_eq!(dropped.get(), 3, "a failed export loses its batch");
        assert!(ledger.admit(), "released places are free again");
        ledger.release(1, true);
        assert_eq!(dropped.get(), 3);
    }
}
