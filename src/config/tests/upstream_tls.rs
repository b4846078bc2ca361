//! `upstreams[].tls` and `upstreams[].http2`: https URLs, every key, and the errors.

use super::*;
use crate::tls::testing::CertDir;

fn upstream(url: &str, extra: &str) -> String {
    format!("upstreams:\n  - name: u\n    url: {url}\n{extra}")
}

fn field(text: &str) -> (String, String) {
    let e = err(text);
    let (field, message) = match &e {
        ConfigError::Invalid { field, message } => (field.clone(), message.clone()),
        other => panic!("{other:?}"),
    };
    (field, message)
}

#[test]
fn https_urls_default_to_port_443_and_keep_the_scheme() {
    let c = from_yaml_str(&upstream("https://mcp.example.com/mcp", "")).unwrap();
    let u = &c.upstreams[0];
    assert!(u.url().unwrap().https);
    assert_eq!(u.url().unwrap().port, 443);
    assert_eq!(u.url().unwrap().authority(), "mcp.example.com:443");
    assert_eq!(u.url().unwrap().scheme(), "https");
    assert_eq!(u.tls, UpstreamTls::default());
    assert_eq!(u.http2, Http2Mode::Auto);
    let u = UpstreamUrl::parse("http://x/").unwrap();
    assert!(!u.https && u.port == 80 && u.scheme() == "http");
}

#[test]
fn every_tls_key_and_http2_mode() {
    let dir = CertDir::new("cfg-upstream");
    let ca = dir.ca("ca");
    let (cert, key) = dir.leaf("client", &["proxy"], &ca);
    let ca_file = dir.path("ca.crt");
    let c = from_yaml_str(&upstream(
        "https://10.0.0.7:8443/mcp",
        &format!(
            "    http2: always\n    tls:\n      server_name: mcp.internal\n      \
             ca_file: {}\n      cert_file: {}\n      key_file: {}\n",
            ca_file.display(),
            cert.display(),
            key.display()
        ),
    ))
    .unwrap();
    let u = &c.upstreams[0];
    assert_eq!(u.http2, Http2Mode::Always);
    assert_eq!(
        u.tls,
        UpstreamTls {
            server_name: Some("mcp.internal".into()),
            ca_file: Some(ca_file),
            cert_file: Some(cert),
            key_file: Some(key),
            insecure_skip_verify: false,
        }
    );
    for (text, mode) in [("never", Http2Mode::Never), ("auto", Http2Mode::Auto)] {
        let c = from_yaml_str(&upstream("http://x/", &format!("    http2: {text}\n"))).unwrap();
        assert_eq!(c.upstreams[0].http2, mode);
    }
    let c = from_yaml_str(&upstream(
        "https://x/",
        "    tls:\n      insecure_skip_verify: true\n",
    ))
    .unwrap();
    assert!(c.upstreams[0].tls.insecure_skip_verify);
}

#[test]
fn tls_and_http2_errors_name_the_field() {
    let dir = CertDir::new("cfg-upstream-err");
    let ca = dir.ca("ca");
    let (cert, _) = dir.leaf("a", &["a"], &ca);
    let (_, other_key) = dir.leaf("b", &["b"], &ca);
    let cases = [
        (
            upstream("http://x/", "    tls:\n      server_name: x\n"),
            "upstreams[0].tls",
            "https:// upstreams only",
        ),
        (
            upstream(
                "https://x/",
                &format!("    tls:\n      cert_file: {}\n", cert.display()),
            ),
            "upstreams[0].tls.key_file",
            "required with cert_file",
        ),
        (
            upstream("https://x/", "    tls:\n      key_file: /k.pem\n"),
            "upstreams[0].tls.cert_file",
            "required with key_file",
        ),
        (
            upstream(
                "https://x/",
                "    tls:\n      ca_file: /nonexistent/ca.pem\n",
            ),
            "upstreams[0].tls",
            "/nonexistent/ca.pem: cannot read",
        ),
        (
            upstream(
                "https://x/",
                &format!(
                    "    tls:\n      cert_file: {}\n      key_file: {}\n",
                    cert.display(),
                    other_key.display()
                ),
            ),
            "upstreams[0].tls",
            "does not match",
        ),
        (
            upstream(
                "https://x/",
                "    tls:\n      server_name: \"not a name\"\n",
            ),
            "upstreams[0].tls.server_name",
            "not a DNS name or IP address",
        ),
        (
            upstream("https://x/", "    tls:\n      ca_file: \" \"\n"),
            "upstreams[0].tls.ca_file",
            "empty path",
        ),
        (
            upstream(
                "https://x/",
                "    tls:\n      ca_file: /ca.pem\n      insecure_skip_verify: true\n",
            ),
            "upstreams[0].tls.insecure_skip_verify",
            "conflicts with ca_file",
        ),
        (
            upstream("http://x/", "    http2: sometimes\n"),
            "upstreams[0].http2",
            "use auto, always or never",
        ),
    ];
    for (text, want_field, want_message) in cases {
        let (f, m) = field(&text);
        assert_eq!(f, want_field, "{text}");
        assert!(m.contains(want_message), "{text}: {m}");
    }
    // Unknown keys under tls: are refused like everywhere else.
    err(&upstream("https://x/", "    tls:\n      verify: false\n"));
}
