//! `admin:`: the address forms, the bearer token, and the warning when it is exposed.

use super::*;

#[test]
fn admin_takes_an_address_or_a_map_with_a_bearer_token() {
    std::env::set_var("SHADOWCAT_TEST_ADMIN_TOKEN", "0123456789abcdef0123");
    let plain = from_yaml_str(&format!("{ONE}admin: 127.0.0.1:9191\n")).unwrap();
    assert_eq!(plain.admin, Some("127.0.0.1:9191".parse().unwrap()));
    assert_eq!(plain.admin_bearer_token, None);
    let full = from_yaml_str(&format!(
        "{ONE}admin:\n  addr: 0.0.0.0:9191\n  bearer_token: '${{SHADOWCAT_TEST_ADMIN_TOKEN}}'\n"
    ))
    .unwrap();
    assert_eq!(full.admin, Some("0.0.0.0:9191".parse().unwrap()));
    let token = full.admin_bearer_token.clone().unwrap();
    assert!(token.admits(b"Bearer 0123456789abcdef0123"));
    assert!(token.admits(b"bearer  0123456789abcdef0123 "));
    for bad in [
        &b"Bearer 0123456789abcdef012"[..],
        b"Bearer 0123456789abcdef01234",
        b"Basic 0123456789abcdef0123",
        b"0123456789abcdef0123",
        b"Bearer",
        b"",
    ] {
        assert!(!token.admits(bad), "{bad:?}");
    }
    assert!(
        !format!("{full:?}").contains("0123456789abcdef0123"),
        "the token never shows in debug output"
    );
    assert!(full.warnings().is_empty(), "protected: no warning");
    let default_addr = from_yaml_str(&format!(
        "{ONE}admin: {{bearer_token: 0123456789abcdef0123}}\n"
    ))
    .unwrap();
    assert_eq!(default_addr.admin, Config::default().admin);
    assert!(default_addr.admin_bearer_token.is_some());
    // `--admin` moves the listener and keeps the file's token; `off` turns it off.
    let text = format!("{ONE}admin: {{addr: 127.0.0.1:1, bearer_token: 0123456789abcdef0123}}\n");
    let moved = Overrides {
        admin: Some("127.0.0.1:2".into()),
        ..Overrides::default()
    };
    let c = from_yaml_str_with(Some(&text), &moved).unwrap();
    assert_eq!(
        (c.admin.unwrap().port(), c.admin_bearer_token.is_some()),
        (2, true)
    );
    assert_eq!(
        from_yaml_str(&format!("{ONE}admin: null\n")).unwrap().admin,
        None
    );
}

#[test]
fn admin_errors_name_the_field() {
    std::env::remove_var("SHADOWCAT_TEST_ADMIN_UNSET");
    let cases = [
        ("admin: nope\n", "admin", "invalid address"),
        ("admin: {addr: nope}\n", "admin.addr", "invalid address"),
        (
            "admin: {addr: 127.0.0.1:1, tokn: x}\n",
            "admin.tokn",
            "unknown field `tokn`",
        ),
        (
            "admin: {bearer_token: ''}\n",
            "admin.bearer_token",
            "must be a bearer token",
        ),
        (
            "admin: {bearer_token: 'has space 0123456789'}\n",
            "admin.bearer_token",
            "must be a bearer token",
        ),
        (
            "admin: {bearer_token: short}\n",
            "admin.bearer_token",
            "at least 16",
        ),
        (
            "admin: {bearer_token: '${SHADOWCAT_TEST_ADMIN_UNSET}'}\n",
            "admin.bearer_token",
            "SHADOWCAT_TEST_ADMIN_UNSET is not set",
        ),
        ("admin: [1]\n", "admin", "an address like"),
    ];
    for (text, field, needle) in cases {
        let e = err(&format!("{ONE}{text}"));
        assert_eq!(e.field(), field, "{text:?}: {e}");
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
    }
}

/// Regression: an admin listener on a non-loopback address started silently, serving
/// `/metrics` to anyone who could reach it.
#[test]
fn admin_beyond_loopback_without_a_token_is_a_warning() {
    let c = from_yaml_str(&format!("{ONE}admin: 0.0.0.0:9090\n")).unwrap();
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("admin.bearer_token"),
        "{}",
        warnings[0]
    );
    assert!(from_yaml_str(ONE).unwrap().warnings().is_empty());
    assert!(from_yaml_str(&format!("{ONE}admin: '[::1]:9090'\n"))
        .unwrap()
        .warnings()
        .is_empty());
}
