//! `telemetry:`: OTLP endpoint and protocol, headers, sampling.

use super::*;

#[test]
fn telemetry_is_off_unless_configured() {
    assert_eq!(from_yaml_str(ONE).unwrap().telemetry, None);
}

#[test]
fn telemetry_takes_every_key_with_defaults() {
    let c = from_yaml_str(&format!(
        "{ONE}telemetry:\n  otlp: {{endpoint: \"http://127.0.0.1:4317\"}}\n"
    ))
    .unwrap();
    let t = c.telemetry.unwrap();
    assert_eq!(t.otlp.protocol, OtlpProtocol::Grpc);
    assert_eq!(t.otlp.endpoint, "http://127.0.0.1:4317");
    assert_eq!(t.sample_ratio, 1.0);
    assert_eq!(t.service_name, DEFAULT_SERVICE_NAME);
    assert!(!t.propagate_in_meta);

    std::env::set_var("SHADOWCAT_TEST_OTLP_KEY", "k-123");
    let c = from_yaml_str(&format!(
        "{ONE}telemetry:\n  otlp:\n    endpoint: http://collector:4318\n    protocol: http\n    headers: {{x-api-key: \"${{SHADOWCAT_TEST_OTLP_KEY}}\"}}\n  sample_ratio: 0.25\n  service_name: edge\n  propagate_in_meta: true\n"
    ))
    .unwrap();
    let t = c.telemetry.unwrap();
    assert_eq!(t.otlp.protocol, OtlpProtocol::Http);
    // OTLP/HTTP: a bare endpoint gets the traces path; a path is kept as written.
    assert_eq!(t.otlp.endpoint, "http://collector:4318/v1/traces");
    assert_eq!(t.otlp.headers, vec![("x-api-key".into(), "k-123".into())]);
    assert_eq!(t.sample_ratio, 0.25);
    assert_eq!(t.service_name, "edge");
    assert!(t.propagate_in_meta);
    let c = from_yaml_str(&format!(
        "{ONE}telemetry: {{otlp: {{endpoint: \"https://c.example/otlp/v1/traces\", protocol: http}}}}\n"
    ))
    .unwrap();
    assert_eq!(
        c.telemetry.unwrap().otlp.endpoint,
        "https://c.example/otlp/v1/traces"
    );
}

#[test]
fn telemetry_errors_name_the_field() {
    for (yaml, field) in [
        ("telemetry: {sample_ratio: 1}", "telemetry.otlp"),
        (
            "telemetry: {otlp: {protocol: grpc}}",
            "telemetry.otlp.endpoint",
        ),
        (
            "telemetry: {otlp: {endpoint: \"127.0.0.1:4317\"}}",
            "telemetry.otlp.endpoint",
        ),
        (
            "telemetry: {otlp: {endpoint: \"ftp://c:1\"}}",
            "telemetry.otlp.endpoint",
        ),
        (
            "telemetry: {otlp: {endpoint: \"http://c:1\", protocol: thrift}}",
            "telemetry.otlp.protocol",
        ),
        (
            "telemetry: {otlp: {endpoint: \"http://c:1\"}, sample_ratio: 1.5}",
            "telemetry.sample_ratio",
        ),
        (
            "telemetry: {otlp: {endpoint: \"http://c:1\"}, sample_ratio: -0.1}",
            "telemetry.sample_ratio",
        ),
        (
            "telemetry: {otlp: {endpoint: \"http://c:1\"}, service_name: \" \"}",
            "telemetry.service_name",
        ),
        (
            "telemetry: {otlp: {endpoint: \"http://c:1\", headers: {\"bad name\": x}}}",
            "telemetry.otlp.headers.bad name",
        ),
        (
            "telemetry: {otlp: {endpoint: \"http://c:1\"}, exporter: jaeger}",
            "telemetry.exporter",
        ),
    ] {
        let e = err(&format!("{ONE}{yaml}\n"));
        assert_eq!(e.field(), field, "{yaml}: {e}");
    }
}
