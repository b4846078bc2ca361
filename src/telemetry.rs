//! OpenTelemetry traces (issue 20): spans per request, per JSON-RPC message and per upstream
//! attempt, W3C trace context continued and passed on, export over OTLP that never holds a
//! request up. No Pingora here: the proxy's phases call [`RequestTrace`] in a few lines
//! (`proxy::reverse::traced`).
//!
//! * `request_trace` — the spans of one request and their attributes (HTTP and MCP semantic
//!   conventions);
//! * `propagation` — `traceparent`/`tracestate` in headers and `params._meta`;
//! * `export` — the batch processor behind a counting gate, the exporter on its own runtime.
//!
//! Without `telemetry:` in the config none of this exists: no span, nothing exported, and
//! trace headers pass through untouched.

mod export;
pub mod propagation;
mod request_trace;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use prometheus::IntCounter;

pub use request_trace::{session_hash, RequestTrace, ServerRequest};

use crate::config::{OtlpProtocol, TelemetryConfig};

/// The tracer and its export pipeline; dropping it flushes what is queued (bounded in time).
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagate_in_meta: bool,
    /// Runs the exporter's I/O; shut down after the provider.
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("propagate_in_meta", &self.propagate_in_meta)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Builds the pipeline for `config`; spans that cannot be exported are counted in
    /// `dropped`. Nothing connects yet (the collector may come up later).
    pub fn start(config: &TelemetryConfig, dropped: IntCounter) -> Result<Arc<Self>, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .map_err(|e| format!("telemetry runtime: {e}"))?;
        let exporter = {
            // The gRPC channel is made (lazily connected) on the runtime it will run on.
            let _entered = runtime.enter();
            exporter(config)?
        };
        let ledger = export::Ledger::new(export::QUEUE, dropped);
        let exporter = export::OnRuntime::new(exporter, runtime.handle().clone(), ledger);
        let sampler =
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(export::Gate::new(exporter))
            .with_sampler(sampler)
            .with_resource(
                Resource::builder_empty()
                    .with_service_name(config.service_name.clone())
                    .with_attribute(opentelemetry::KeyValue::new(
                        "service.version",
                        env!("CARGO_PKG_VERSION"),
                    ))
                    .build(),
            )
            .build();
        let tracer = provider.tracer("shadowcat");
        Ok(Arc::new(Self {
            provider,
            tracer,
            propagate_in_meta: config.propagate_in_meta,
            runtime: Some(runtime),
        }))
    }

    /// A request's trace, begun at its head.
    pub fn begin(&self, req: &ServerRequest<'_>) -> RequestTrace {
        RequestTrace::new(self.tracer.clone(), req)
    }

    /// `telemetry.propagate_in_meta`.
    pub fn propagate_in_meta(&self) -> bool {
        self.propagate_in_meta
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        // Queued spans get one last export (bounded), then the runtime goes.
        let _ = self.provider.shutdown_with_timeout(Duration::from_secs(2));
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The OTLP exporter for `config.otlp`: one attempt per export (no retries), bounded by
/// [`export::EXPORT_TIMEOUT`].
fn exporter(config: &TelemetryConfig) -> Result<opentelemetry_otlp::SpanExporter, String> {
    let otlp = &config.otlp;
    let built = match otlp.protocol {
        OtlpProtocol::Grpc => {
            let mut headers = http::HeaderMap::new();
            for (name, value) in &otlp.headers {
                let name = http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("telemetry.otlp.headers.{name}: invalid name"))?;
                let value = http::HeaderValue::from_str(value)
                    .map_err(|_| format!("telemetry.otlp.headers.{name}: invalid value"))?;
                headers.insert(name, value);
            }
            let metadata =
                opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers);
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(otlp.endpoint.clone())
                .with_timeout(export::EXPORT_TIMEOUT)
                .with_metadata(metadata)
                .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
                .build()
        }
        OtlpProtocol::Http => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(http_client()?)
            .with_endpoint(otlp.endpoint.clone())
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_timeout(export::EXPORT_TIMEOUT)
            .with_headers(otlp.headers.iter().cloned().collect())
            .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
            .build(),
    };
    built.map_err(|e| format!("telemetry.otlp: {e}"))
}

/// hyper 1 (the tree's) over rustls with the system's roots, for `http://` and `https://`.
fn http_client() -> Result<impl opentelemetry_http::HttpClient, String> {
    let tls = crate::upstream_client::TlsSettings::default()
        .client_config()
        .map_err(|e| format!("telemetry.otlp.endpoint: {e}"))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(opentelemetry_http::hyper::HyperClient::new(
        connector,
        export::EXPORT_TIMEOUT,
        None,
    ))
}
