//! `telemetry:`: OpenTelemetry traces exported over OTLP (see `crate::telemetry`). Absent, the
//! proxy creates no span, exports nothing and passes `traceparent`/`tracestate` through
//! untouched.

/// `telemetry:` validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    pub otlp: OtlpConfig,
    /// `sample_ratio`: the share of new traces recorded and exported, 0 to 1 (default 1). An
    /// incoming `traceparent` keeps its own sampled flag (parent-based sampling).
    pub sample_ratio: f64,
    /// `service_name`: the `service.name` resource attribute (default `shadowcat`).
    pub service_name: String,
    /// `propagate_in_meta`: also write the proxy's span context into `params._meta.traceparent`
    /// of the upstream request's messages (it changes the body; default false).
    pub propagate_in_meta: bool,
}

/// `telemetry.otlp`: where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// `http://` or `https://`. For `http` an endpoint without a path gets `/v1/traces`.
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    /// Sent with every export (a collector's API key); values may read `${VAR}`.
    pub headers: Vec<(String, String)>,
}

/// `telemetry.otlp.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (the collector's port 4317).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (the collector's port 4318).
    Http,
}

impl OtlpProtocol {
    /// `grpc` or `http`, as written in the config.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "grpc" => Some(Self::Grpc),
            "http" => Some(Self::Http),
            _ => None,
        }
    }
}

/// The default `telemetry.service_name`.
pub const DEFAULT_SERVICE_NAME: &str = "shadowcat";
