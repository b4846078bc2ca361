//! `telemetry:` — OTLP endpoint, protocol and headers, sampling, service name.

use super::super::raw::RawTelemetry;
use super::super::telemetry::{OtlpConfig, OtlpProtocol, TelemetryConfig, DEFAULT_SERVICE_NAME};
use super::super::ConfigError;
use super::env::upstream_header;
use super::invalid;

pub(super) fn validate(raw: RawTelemetry) -> Result<TelemetryConfig, ConfigError> {
    let otlp = raw
        .otlp
        .ok_or_else(|| invalid("telemetry.otlp", "required (endpoint, protocol)"))?;
    let protocol = match otlp.protocol.as_deref() {
        None => OtlpProtocol::default(),
        Some(p) => OtlpProtocol::parse(p).ok_or_else(|| {
            invalid(
                "telemetry.otlp.protocol",
                format!("unknown protocol {p:?} (use grpc or http)"),
            )
        })?,
    };
    let endpoint = otlp
        .endpoint
        .ok_or_else(|| invalid("telemetry.otlp.endpoint", "required"))?;
    let endpoint = self::endpoint(&endpoint, protocol)?;
    let headers = otlp
        .headers
        .iter()
        .map(|(k, v)| {
            let field = format!("telemetry.otlp.headers.{k}");
            let (name, value) = upstream_header(k, v, &field)?;
            let value = value
                .to_str()
                .map_err(|_| invalid(&field, "value must be visible ASCII"))?;
            Ok((name.as_str().to_owned(), value.to_owned()))
        })
        .collect::<Result<_, ConfigError>>()?;
    let sample_ratio = raw.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        return Err(invalid("telemetry.sample_ratio", "must be 0 to 1"));
    }
    let service_name = raw
        .service_name
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
    if service_name.trim().is_empty() {
        return Err(invalid("telemetry.service_name", "must not be empty"));
    }
    Ok(TelemetryConfig {
        otlp: OtlpConfig {
            endpoint,
            protocol,
            headers,
        },
        sample_ratio,
        service_name,
        propagate_in_meta: raw.propagate_in_meta.unwrap_or(false),
    })
}

/// An absolute `http(s)://host[:port][/path]`; for OTLP/HTTP an empty path becomes
/// `/v1/traces` (the collector's traces path), as `OTEL_EXPORTER_OTLP_ENDPOINT` does.
fn endpoint(text: &str, protocol: OtlpProtocol) -> Result<String, ConfigError> {
    let field = "telemetry.otlp.endpoint";
    let uri: http::Uri = text
        .parse()
        .map_err(|_| invalid(field, format!("{text:?} is not a URL")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(invalid(
                field,
                format!("{text:?} must start with http:// or https://"),
            ))
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(field, format!("{text:?} has no host")));
    }
    if uri.query().is_some() {
        return Err(invalid(field, "must not have a query"));
    }
    let bare = matches!(uri.path(), "" | "/");
    Ok(match protocol {
        OtlpProtocol::Http if bare => format!("{}/v1/traces", text.trim_end_matches('/')),
        _ => text.to_owned(),
    })
}
