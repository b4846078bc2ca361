use std::time::Duration;

use super::*;

mod admin;
mod cache;
mod log;
mod replicas;

mod recording;
mod stdio;
mod telemetry;
mod upstream_tls;

const ONE: &str = "upstreams:\n  - name: u\n    url: http://127.0.0.1:3001/mcp\n";

fn err(text: &str) -> ConfigError {
    from_yaml_str(text).expect_err("should be rejected")
}

#[test]
fn defaults_apply_to_every_key() {
    let c = from_yaml_str(ONE).unwrap();
    let d = Config::default();
    assert_eq!(c.listeners, d.listeners);
    assert_eq!(c.admin, Some("127.0.0.1:9090".parse().unwrap()));
    assert_eq!(c.endpoint, "/mcp");
    assert_eq!(c.timeouts.connect, Duration::from_secs(5));
    assert_eq!(c.timeouts.request, Duration::from_secs(300));
    assert_eq!(c.timeouts.idle_stream, Duration::from_secs(3600));
    assert_eq!(c.limits.max_body, 4 << 20);
    assert_eq!(c.limits.max_sse_event, 8 << 20);
    assert_eq!(c.sse.keepalive, Some(Duration::from_secs(15)));
    assert_eq!(c.shutdown.grace_period, Duration::from_secs(10));
    assert_eq!(c.load_balancing, LoadBalancing::RoundRobin);
    assert_eq!(c.health.down_for, Duration::from_secs(10));
    assert_eq!(c.sessions.idle_timeout, Duration::from_secs(1800));
    assert_eq!(c.sessions.max, 100_000);
    assert_eq!(c.sessions.max_per_principal, 1000);
    assert_eq!(c.sessions.max_per_ip, 1000);
    assert_eq!(c.upstreams[0].weight, 1);
    assert_eq!(c.upstreams[0].url().unwrap().authority(), "127.0.0.1:3001");
    assert_eq!(c.upstreams[0].url().unwrap().path_and_query, "/mcp");
}

#[test]
fn every_key_can_be_set() {
    let c = from_yaml_str(
        "listen: 0.0.0.0:80\nadmin: null\nendpoint: /x\nupstreams:\n  - {name: a, url: 'http://h/p?q=1'}\n\
         timeouts: {connect: 250ms, request: 1m, idle_stream: 2h}\nlimits: {max_body: 64KiB, max_sse_event: 2048}\n\
         sse: {keepalive: 0}\nshutdown: {grace_period: 0}\nload_balancing: least_sessions\n\
         health: {down_for: 3s}\nsessions: {idle_timeout: 5m, max: 10, max_per_principal: 3, max_per_ip: 10}\n",
    )
    .unwrap();
    assert_eq!(c.listen().port(), 80);
    assert_eq!(c.admin, None);
    assert_eq!(c.endpoint, "/x");
    assert_eq!(c.upstreams[0].url().unwrap().port, 80);
    assert_eq!(c.upstreams[0].url().unwrap().path_and_query, "/p?q=1");
    assert_eq!(c.timeouts.connect, Duration::from_millis(250));
    assert_eq!(c.limits.max_body, 65536);
    assert_eq!(c.limits.max_sse_event, 2048);
    assert_eq!(c.sse.keepalive, None);
    assert_eq!(c.shutdown.grace_period, Duration::ZERO);
    assert_eq!(c.load_balancing, LoadBalancing::LeastSessions);
    assert_eq!(c.health.down_for, Duration::from_secs(3));
    assert_eq!(c.sessions.max, 10);
    assert_eq!(c.sessions.max_per_principal, 3);
    assert_eq!(c.sessions.max_per_ip, 10);
}

/// The per-client caps default to 1000, or to `sessions.max` when that is smaller.
#[test]
fn per_client_session_caps_fit_under_the_table() {
    let c = from_yaml_str(&format!("{ONE}sessions: {{max: 50}}\n")).unwrap();
    assert_eq!(
        (c.sessions.max_per_principal, c.sessions.max_per_ip),
        (50, 50)
    );
    let c = from_yaml_str(&format!("{ONE}sessions: {{max: 50, max_per_ip: 50}}\n")).unwrap();
    assert_eq!(c.sessions.max_per_ip, 50, "equal to max: the cap is off");
}

#[test]
fn errors_name_the_field_path() {
    let cases = [
        ("timeouts:\n  connect: 5x\n", "timeouts.connect"),
        ("timeouts:\n  request: 0\n", "timeouts.request"),
        ("limits:\n  max_bodyy: 1\n", "limits"),
        ("bogus: 1\n", "bogus"),
        ("listen: nowhere\n", "listen"),
        ("upstreams:\n  - url: ftp://x/mcp\n", "upstreams[0].url"),
        ("upstreams:\n  - url: /relative\n", "upstreams[0].url"),
        ("upstreams: []\n", "upstreams"),
        (
            "upstreams:\n  - {name: a, url: 'http://x/'}\n  - {name: a, url: 'http://y/'}\n",
            "upstreams[1].name",
        ),
        (
            "upstreams:\n  - {name: 'bad name', url: 'http://x/'}\n",
            "upstreams[0].name",
        ),
        ("endpoint: mcp\n", "endpoint"),
        ("limits:\n  max_sse_event: 10\n", "limits.max_sse_event"),
        ("limits:\n  max_body: 2GiB\n", "limits.max_body"),
        (
            "timeouts:\n  connect: 99999999999999999h\n",
            "timeouts.connect",
        ),
        ("load_balancing: random\n", "load_balancing"),
        ("threads: 0\n", "threads"),
        ("threads: 5000\n", "threads"),
        ("limits:\n  max_headers: 0\n", "limits.max_headers"),
        ("limits:\n  read_buffer: 100\n", "limits.read_buffer"),
        ("limits:\n  keepalive_idle: 0\n", "limits.keepalive_idle"),
        (
            "limits:\n  max_streams_per_session: 0\n",
            "limits.max_streams_per_session",
        ),
        (
            "rate_limits:\n  per_ip: {rate: 0}\n",
            "rate_limits.per_ip.rate",
        ),
        (
            "rate_limits:\n  per_ip: {rate: 5, per: 0}\n",
            "rate_limits.per_ip.per",
        ),
        (
            "rate_limits:\n  trusted_proxies: ['10.0.0.0/40']\n",
            "rate_limits.trusted_proxies[0]",
        ),
        (
            "security:\n  allowed_hosts: ['']\n",
            "security.allowed_hosts[0]",
        ),
        ("health:\n  down_for: 0\n", "health.down_for"),
        ("sessions:\n  max: 0\n", "sessions.max"),
        (
            "sessions:\n  max_per_principal: 0\n",
            "sessions.max_per_principal",
        ),
        ("sessions:\n  max_per_ip: -1\n", "sessions.max_per_ip"),
        (
            "sessions:\n  max: 10\n  max_per_ip: 11\n",
            "sessions.max_per_ip",
        ),
        (
            "sessions:\n  idle_timeout: forever\n",
            "sessions.idle_timeout",
        ),
        (
            "upstreams:\n  - {name: a, url: 'http://x/', weight: 0}\n",
            "upstreams[0].weight",
        ),
        (
            "timeouts:\n  connect: 99999999999999999h\n",
            "timeouts.connect",
        ),
    ];
    for (text, field) in cases {
        let text = if text.starts_with("upstreams") {
            text.to_owned()
        } else {
            format!("{ONE}{text}")
        };
        let e = err(&text);
        assert!(e.field().starts_with(field), "{text:?}: got {e}");
        assert_eq!(e.to_string().lines().count(), 1, "one line: {e}");
    }
}

#[test]
fn unknown_keys_are_rejected_at_every_level() {
    let e = err(&format!("{ONE}sse:\n  keepalive: 1s\n  extra: 2\n"));
    assert!(e.to_string().contains("extra"), "{e}");
    let e = err("upstreams:\n  - {name: a, url: 'http://x/', weigth: 2}\n");
    assert!(e.to_string().contains("weigth"), "{e}");
}

#[test]
fn empty_file_needs_an_upstream_and_flags_supply_one() {
    let e = from_yaml_str("# nothing\n").unwrap_err();
    assert_eq!(e.field(), "upstreams");
    assert!(e.to_string().contains("--upstream"));
    let o = Overrides {
        listen: Some("127.0.0.1:0".into()),
        admin: Some("off".into()),
        upstream: Some("http://127.0.0.1:3001/mcp".into()),
        threads: Some(3),
        ..Overrides::default()
    };
    let c = from_yaml_str_with(None, &o).unwrap();
    assert_eq!(c.threads, Some(3));
    assert_eq!(c.listen().port(), 0);
    assert_eq!(c.admin, None);
    assert_eq!(c.upstreams[0].name, "default");
    // Flags override the file.
    let c = from_yaml_str_with(Some(&format!("listen: 127.0.0.1:1\n{ONE}")), &o).unwrap();
    assert_eq!(c.listen().port(), 0);
    assert_eq!(c.upstreams[0].url().unwrap().port, 3001);
    let c = from_yaml_str_with(Some(&format!("threads: 1\n{ONE}")), &o).unwrap();
    assert_eq!(c.threads, Some(3));
    assert_eq!(
        from_yaml_str(&format!("threads: 2\n{ONE}"))
            .unwrap()
            .threads,
        Some(2)
    );
    assert_eq!(
        from_yaml_str(ONE).unwrap().threads,
        None,
        "unset: one per core"
    );
    let zero = Overrides {
        threads: Some(0),
        ..Overrides::default()
    };
    assert_eq!(
        from_yaml_str_with(Some(ONE), &zero).unwrap_err().field(),
        "--threads"
    );
    let bad = Overrides {
        listen: Some("x".into()),
        ..Overrides::default()
    };
    assert_eq!(
        from_yaml_str_with(Some(ONE), &bad).unwrap_err().field(),
        "--bind"
    );
}

#[test]
fn upstream_urls() {
    let u = UpstreamUrl::parse("http://[::1]:3001/mcp").unwrap();
    assert_eq!((u.host.as_str(), u.port), ("::1", 3001));
    assert_eq!(u.authority(), "[::1]:3001");
    assert_eq!(
        UpstreamUrl::parse("http://example.com")
            .unwrap()
            .path_and_query,
        "/"
    );
    assert!(UpstreamUrl::parse("ftp://x/").is_err());
    assert!(UpstreamUrl::parse("http://user:pw@x/").is_err());
}

#[test]
fn io_errors_name_the_file() {
    let e = load(Path::new("/nonexistent/shadowcat.yaml")).unwrap_err();
    assert_eq!(e.field(), "/nonexistent/shadowcat.yaml");
}

/// Every example in `conf/` loads (rule files, a different schema, are skipped by name).
#[test]
fn every_conf_file_loads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/conf");
    let mut loaded = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || name.starts_with("rules") {
            continue;
        }
        if name == "tls.yaml" {
            // Its certificate files are made here; listener_tests checks what it says.
            super::listener_tests::load_tls_example();
            loaded += 1;
            continue;
        }
        load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        loaded += 1;
    }
    assert!(loaded >= 2, "conf/ has its examples");
}

#[test]
fn security_defaults_to_loopback_only() {
    let c = from_yaml_str(ONE).unwrap();
    let host = |h: &str| c.security.host_allowed(h);
    let origin = |o: &str| c.security.origin_allowed(o);
    assert!(host("127.0.0.1:8080") && host("localhost") && host("[::1]:9"));
    assert!(!host("evil.example.com") && !host("localhost.evil.com"));
    assert!(origin("http://localhost:6274") && origin("https://127.0.0.1"));
    assert!(!origin("http://evil.example") && !origin("null"));
    let c = from_yaml_str(&format!("{ONE}security:\n  allowed_hosts: ['mcp.example.com', '*.internal:*']\n  allowed_origins: ['*']\n")).unwrap();
    assert!(c.security.host_allowed("api.internal:443"));
    assert!(c.security.origin_allowed("http://anything"));
}

#[test]
fn upstream_headers_read_the_environment() {
    std::env::set_var("SHADOWCAT_TEST_TOKEN", "s3cret");
    let c = from_yaml_str(
        "upstreams:\n  - url: http://x/\n    forward_authorization: true\n    headers:\n      Authorization: 'Bearer ${SHADOWCAT_TEST_TOKEN}'\n      X-Team: core\n",
    )
    .unwrap();
    let u = &c.upstreams[0];
    assert!(u.forward_authorization);
    assert_eq!(u.headers[0].0, "authorization");
    assert_eq!(u.headers[0].1, "Bearer s3cret");
    assert!(
        !format!("{u:?}").contains("s3cret"),
        "credentials stay out of debug output"
    );
    let e =
        err("upstreams:\n  - url: http://x/\n    headers: {A: '${SHADOWCAT_NOT_SET_ANYWHERE}'}\n");
    assert_eq!(e.field(), "upstreams[0].headers.A");
    assert!(e.to_string().contains("SHADOWCAT_NOT_SET_ANYWHERE"));
    assert_eq!(
        err("upstreams:\n  - url: http://x/\n    headers: {'bad name': x}\n").field(),
        "upstreams[0].headers.bad name"
    );
    assert!(
        !from_yaml_str(ONE).unwrap().upstreams[0].forward_authorization,
        "off by default"
    );
}

#[test]
fn rate_limits_are_off_unless_configured() {
    assert_eq!(
        from_yaml_str(ONE).unwrap().rate_limits,
        RateLimits::default()
    );
    let c = from_yaml_str(&format!("{ONE}rate_limits:\n  per_ip: {{rate: 20, per: 1m}}\n  per_session: {{rate: 5, burst: 10}}\n  trusted_proxies: ['10.0.0.0/8']\n")).unwrap();
    let ip = c.rate_limits.per_ip.unwrap();
    assert_eq!(
        (ip.rate, ip.per, ip.burst),
        (20, Duration::from_secs(60), 20)
    );
    assert_eq!(c.rate_limits.per_session.unwrap().burst, 10);
    assert!(c.rate_limits.per_principal.is_none());
    assert_eq!(c.rate_limits.trusted_proxies.len(), 1);
}

/// Regression (found by fuzzing config_load): an unknown key holding CR bytes put control
/// characters into the field path, so the "one line" error spanned several. (Raw CRs inside a
/// flow mapping are broken YAML, reported as `(yaml)`; a quoted key can hold them legally.)
#[test]
fn regression_control_characters_in_keys_stay_on_one_line() {
    for text in [
        "upstreams:\n  - {url: \"http://x/\", wei\r\r\rtse: 1}\n",
        "upstreams:\n  - {url: \"http://x/\", \"wei\\r\\ntse\": 1}\n",
    ] {
        let line = err(text).to_string();
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
    let e = err("upstreams:\n  - {url: \"http://x/\", \"wei\\r\\ntse\": 1}\n");
    assert!(e.field().contains("wei\\r\\n"), "shown escaped: {e}");
}

/// Regression (found by fuzzing config_load, 2026-12-01): an upstream header *name* holding
/// newlines went into the field path of the validation error unescaped.
#[test]
fn regression_control_characters_in_header_names_stay_on_one_line() {
    let e = err("upstreams:\n  - url: http://x/\n    headers: {\"a\\nb\": v}\n");
    let line = e.to_string();
    assert!(!line.chars().any(char::is_control), "{line:?}");
    assert!(e.field().starts_with("upstreams[0].headers.a\\n"), "{line}");
}

/// serde_yaml's own path prefix is dropped (the error already starts with the field path);
/// its line/column is kept.
#[test]
fn type_errors_name_the_path_once_with_line_and_column() {
    let e = err(&format!("{ONE}limits:\n  max_bodyy: 1\n"));
    assert_eq!(e.field(), "limits.max_bodyy");
    let line = e.to_string();
    assert!(line.starts_with("limits.max_bodyy: unknown field `max_bodyy`, expected one of"));
    assert!(line.ends_with("at line 5 column 3"), "{line}");
    let e = err(&format!("{ONE}timeouts: 5s\n"));
    assert_eq!(e.field(), "timeouts");
    assert!(!e.to_string().contains("timeouts: timeouts"), "{e}");
}

/// A syntax error is about the text, not the field the typed pass was in.
#[test]
fn yaml_syntax_errors_are_reported_as_yaml_with_a_location() {
    for text in [
        "upstreams:\n  - url: http://x/\n\tlisten: x\n",
        "listen: [\n",
        "a: 1\na: 2\n",
    ] {
        let e = err(text);
        assert_eq!(e.field(), "(yaml)", "{text:?}: {e}");
        assert_eq!(e.to_string().lines().count(), 1);
    }
    assert!(err("listen: [\n").to_string().contains(" at line "));
}

#[test]
fn null_and_empty_documents_are_all_defaults() {
    for text in ["", "\n", "# c\n", "---\n", "null\n", "~\n", "{}\n"] {
        assert_eq!(err(text).field(), "upstreams", "{text:?}");
    }
}

/// Numbers that are not non-negative integers are reported by value, not as type errors.
#[test]
fn negative_fractional_and_huge_numbers_name_the_field() {
    let cases = [
        ("timeouts:\n  connect: -1\n", "timeouts.connect", "\"-1\""),
        ("timeouts:\n  connect: 1.5\n", "timeouts.connect", "\"1.5\""),
        ("limits:\n  max_body: -5\n", "limits.max_body", "\"-5\""),
        (
            "limits:\n  max_body: 1000.0\n",
            "limits.max_body",
            "\"1000.0\"",
        ),
        (
            "limits:\n  max_body: 99999999999999999999\n",
            "limits.max_body",
            "too large",
        ),
        (
            "limits:\n  max_body: true\n",
            "limits.max_body",
            "like 5s or 4MiB",
        ),
        (
            "limits:\n  max_body: 99999999999999999999999999999999999999999\n",
            "limits.max_body",
            "",
        ),
        (
            "limits:\n  max_header_bytes: 0\n",
            "limits.max_header_bytes",
            "more than 0",
        ),
    ];
    for (text, field, needle) in cases {
        let e = err(&format!("{ONE}{text}"));
        assert_eq!(e.field(), field, "{text:?}: {e}");
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
    }
}

#[test]
fn upstream_ports_and_fragments() {
    for bad in [
        "http://x:0/",
        "http://x:99999/",
        "http://x:/",
        "http://x/p#frag",
    ] {
        assert!(UpstreamUrl::parse(bad).is_err(), "{bad}");
    }
    let u = UpstreamUrl::parse("http://x:65535?q=1").unwrap();
    assert_eq!((u.port, u.path_and_query.as_str()), (65535, "/?q=1"));
    assert_eq!(UpstreamUrl::parse("http://[::1]/").unwrap().port, 80);
    let o = Overrides {
        admin: Some("OFF".into()),
        upstream: Some("http://127.0.0.1:3001/mcp".into()),
        ..Overrides::default()
    };
    assert_eq!(from_yaml_str_with(None, &o).unwrap().admin, None);
}
