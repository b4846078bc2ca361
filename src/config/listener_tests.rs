//! `listen`, `listeners`, `tls`, `security.hsts` and the TLS flags.

use std::time::Duration;

use super::*;
use crate::tls::testing::CertDir;

const ONE: &str = "upstreams:\n  - url: http://127.0.0.1:3001/mcp\n";

fn yaml(dir: &CertDir, text: &str) -> String {
    format!(
        "{}{ONE}",
        text.replace("$DIR", &dir.0.display().to_string())
    )
}

/// conf/tls.yaml, with its certificate files made in a temporary directory.
pub(super) fn load_tls_example() -> Config {
    let dir = CertDir::new("example");
    let ca = dir.ca("ca");
    dir.leaf("server", &["localhost"], &ca);
    dir.leaf("mcp.example.com", &["mcp.example.com"], &ca);
    dir.ca("clients-ca");
    let text = include_str!("../../conf/tls.yaml")
        .replace("/etc/shadowcat/tls", &dir.0.display().to_string());
    let c = from_yaml_str(&text).unwrap_or_else(|e| panic!("conf/tls.yaml: {e}"));
    assert_eq!(c.listeners.len(), 2);
    assert!(c.listeners[0].tls.is_none());
    let tls = c.listeners[1].tls.as_ref().unwrap();
    assert_eq!(
        tls.certificates[0].names,
        ["mcp.example.com", "*.mcp.example.com"]
    );
    assert_eq!(tls.client_auth, ClientAuth::Optional);
    assert_eq!(
        c.security.hsts.as_ref().unwrap(),
        "max-age=31536000; includeSubDomains"
    );
    c
}

#[test]
fn listen_is_one_plain_listener_and_listeners_lists_several() {
    let c = from_yaml_str(&format!("listen: 127.0.0.1:9\n{ONE}")).unwrap();
    assert_eq!(
        c.listeners,
        [Listener::plain("127.0.0.1:9".parse().unwrap())]
    );
    let dir = CertDir::new("listeners");
    let ca = dir.ca("ca");
    dir.leaf("a", &["a.test"], &ca);
    let text = "listeners:\n  - addr: 127.0.0.1:1\n  - addr: 127.0.0.1:2\n    tls: \
                {cert_file: $DIR/a.crt, key_file: $DIR/a.key, handshake_timeout: 3s}\n";
    let c = from_yaml_str(&yaml(&dir, text)).unwrap();
    assert_eq!(c.listeners.len(), 2);
    let tls = c.listeners[1].tls.as_ref().unwrap();
    assert_eq!(tls.handshake_timeout, Duration::from_secs(3));
    assert_eq!(tls.client_auth, ClientAuth::Off);
    assert_eq!(c.listen().port(), 1);
}

#[test]
fn listener_errors_name_the_field() {
    let dir = CertDir::new("errors");
    let ca = dir.ca("ca");
    dir.leaf("a", &["a.test"], &ca);
    dir.leaf("b", &["b.test"], &ca);
    let cases = [
        (
            "listen: 127.0.0.1:1\nlisteners: [{addr: 127.0.0.1:2}]\n",
            "listeners",
        ),
        ("listeners: []\n", "listeners"),
        ("listeners: [{addr: nowhere}]\n", "listeners[0].addr"),
        (
            "listeners: [{addr: 127.0.0.1:1}, {addr: 127.0.0.1:1}]\n",
            "listeners[1].addr",
        ),
        (
            "listeners: [{addr: 127.0.0.1:1, tls: {cert_file: $DIR/a.crt}}]\n",
            "listeners[0].tls.key_file",
        ),
        (
            "listeners: [{addr: 127.0.0.1:1, tls: {}}]\n",
            "listeners[0].tls.cert_file",
        ),
        (
            "listeners: [{addr: 127.0.0.1:1, tls: {cert_file: $DIR/a.crt, key_file: $DIR/a.key, \
             client_auth: required}}]\n",
            "listeners[0].tls.client_ca_file",
        ),
        (
            "listeners: [{addr: 127.0.0.1:1, tls: {cert_file: $DIR/a.crt, key_file: $DIR/a.key, \
             client_ca_file: $DIR/ca.crt, client_auth: sometimes}}]\n",
            "listeners[0].tls.client_auth",
        ),
        (
            "listeners: [{addr: 127.0.0.1:1, tls: {certificates: [{names: ['a b'], \
             cert_file: $DIR/a.crt, key_file: $DIR/a.key}]}}]\n",
            "listeners[0].tls.certificates[0].names[0]",
        ),
        (
            "listeners: [{addr: 127.0.0.1:1, tls: {cert_file: $DIR/a.crt, key_file: $DIR/a.key, \
             handshake_timeout: 0}}]\n",
            "listeners[0].tls.handshake_timeout",
        ),
        ("security: {hsts: {max_age: 0}}\n", "security.hsts.max_age"),
    ];
    for (text, field) in cases {
        let e = from_yaml_str(&yaml(&dir, text)).unwrap_err();
        assert_eq!(e.field(), field, "{text}: {e}");
    }
    // A key that is not the certificate's: the field is named, and so is the file.
    let text =
        "listeners: [{addr: 127.0.0.1:1, tls: {cert_file: $DIR/a.crt, key_file: $DIR/b.key}}]\n";
    let e = from_yaml_str(&yaml(&dir, text)).unwrap_err();
    assert_eq!(e.field(), "listeners[0].tls");
    assert!(e.to_string().contains("b.key"), "{e}");
    let text =
        "listeners: [{addr: 127.0.0.1:1, tls: {cert_file: $DIR/none.crt, key_file: $DIR/a.key}}]\n";
    let e = from_yaml_str(&yaml(&dir, text)).unwrap_err();
    assert!(e.to_string().contains("none.crt"), "{e}");
}

#[test]
fn tls_flags_apply_to_bind_or_listen() {
    let dir = CertDir::new("flags");
    let ca = dir.ca("ca");
    let (cert, key) = dir.leaf("a", &["localhost"], &ca);
    let flags = Overrides {
        tls_cert: Some(cert.display().to_string()),
        tls_key: Some(key.display().to_string()),
        upstream: Some("http://127.0.0.1:3001/mcp".into()),
        ..Overrides::default()
    };
    let bind = Overrides {
        listen: Some("127.0.0.1:0".into()),
        ..flags.clone()
    };
    let c = from_yaml_str_with(None, &bind).unwrap();
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].tls, Some(TlsConfig::pair(&cert, &key)));
    let c = from_yaml_str_with(Some("listen: 127.0.0.1:7\n"), &flags).unwrap();
    assert_eq!(c.listeners[0].addr.port(), 7);
    assert!(c.listeners[0].tls.is_some());
    let e = from_yaml_str_with(Some("listeners: [{addr: 127.0.0.1:7}]\n"), &flags).unwrap_err();
    assert_eq!(e.field(), "--tls-cert");
    let half = Overrides {
        tls_key: None,
        ..bind
    };
    assert_eq!(
        from_yaml_str_with(None, &half).unwrap_err().field(),
        "--tls-key"
    );
}

#[test]
fn hsts_is_off_unless_set() {
    assert_eq!(from_yaml_str(ONE).unwrap().security.hsts, None);
    let c = from_yaml_str(&format!("security: {{hsts: {{}}}}\n{ONE}")).unwrap();
    assert_eq!(c.security.hsts.unwrap(), "max-age=31536000");
    let c = from_yaml_str(&format!(
        "security: {{hsts: {{max_age: 1h, preload: true}}}}\n{ONE}"
    ))
    .unwrap();
    assert_eq!(c.security.hsts.unwrap(), "max-age=3600; preload");
}
