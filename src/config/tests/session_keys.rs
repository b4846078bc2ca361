//! `sessions.keys` and `sessions.max_age`: secrets from the environment, errors that name the
//! entry, and no secret in debug output.

use super::*;

#[test]
fn session_keys_from_the_environment() {
    std::env::set_var(
        "SHADOWCAT_TEST_SEAL_K2",
        "0123456789abcdef0123456789abcdef-k2",
    );
    let c = from_yaml_str(&format!(
        "{ONE}sessions:\n  max_age: 2h\n  keys:\n    - {{id: k2, secret: '${{SHADOWCAT_TEST_SEAL_K2}}'}}\n    - {{id: k1, secret: 0123456789abcdef0123456789abcdef-k1}}\n"
    ))
    .unwrap();
    assert_eq!(c.sessions.max_age, Duration::from_secs(7200));
    let ids: Vec<&str> = c.sessions.keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["k2", "k1"]);
    assert_eq!(
        c.sessions.keys[0].secret,
        "0123456789abcdef0123456789abcdef-k2"
    );
    let sealer = c.sessions.sealer().unwrap();
    assert_eq!(sealer.sealing_key_id(), "k2");
    assert!(
        !format!("{c:?}").contains("0123456789abcdef"),
        "no secret in debug output"
    );
    // Without keys: no sealer, and a day's max_age by default.
    let plain = from_yaml_str(ONE).unwrap();
    assert!(plain.sessions.sealer().is_none());
    assert_eq!(plain.sessions.max_age, Duration::from_secs(86_400));
}

#[test]
fn session_key_errors_name_the_entry() {
    std::env::remove_var("SHADOWCAT_TEST_SEAL_UNSET");
    let good = "0123456789abcdef0123456789abcdef";
    let cases = [
        ("keys: []".to_owned(), "sessions.keys", "at least one"),
        (
            "keys: [{id: k1, secret: short}]".to_owned(),
            "sessions.keys[0].secret",
            "at least 32",
        ),
        (
            format!("keys: [{{id: 'a.b', secret: {good}}}]"),
            "sessions.keys[0].id",
            "key id",
        ),
        (
            format!("keys: [{{id: k1, secret: {good}}}, {{id: k1, secret: {good}x}}]"),
            "sessions.keys[1].id",
            "twice",
        ),
        (
            "keys: [{id: k1, secret: '${SHADOWCAT_TEST_SEAL_UNSET}'}]".to_owned(),
            "sessions.keys[0].secret",
            "SHADOWCAT_TEST_SEAL_UNSET is not set",
        ),
        (
            format!("keys: [{{id: k1, secret: {good}, extra: 1}}]"),
            "sessions.keys[0].extra",
            "unknown field",
        ),
        ("max_age: 0s".to_owned(), "sessions.max_age", "more than 0"),
    ];
    for (text, field, needle) in cases {
        let e = err(&format!("{ONE}sessions:\n  {text}\n"));
        assert_eq!(e.field(), field, "{text:?}: {e}");
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
    }
}
