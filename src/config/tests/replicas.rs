//! `sessions.keys`, `sessions.max_age` and `store:`: secrets from the environment, errors that name the
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

#[test]
fn store_memory_by_default_redis_with_a_url() {
    let plain = from_yaml_str(ONE).unwrap();
    assert_eq!(plain.store.kind, StoreKind::Memory);
    std::env::set_var("SHADOWCAT_TEST_STORE_PASS", "hunter2hunter2");
    let c = from_yaml_str(&format!(
        "{ONE}store:\n  kind: redis\n  url: 'redis://:${{SHADOWCAT_TEST_STORE_PASS}}@127.0.0.1:6379/0'\n  prefix: 'prod:'\n  on_error: deny\n"
    ))
    .unwrap();
    assert_eq!(c.store.kind, StoreKind::Redis);
    assert_eq!(c.store.url, "redis://:hunter2hunter2@127.0.0.1:6379/0");
    assert_eq!(c.store.prefix, "prod:");
    assert_eq!(c.store.on_error, OnStoreError::Deny);
    assert!(
        !format!("{c:?}").contains("hunter2"),
        "no password in debug output"
    );
    let d = from_yaml_str(&format!(
        "{ONE}store: {{kind: redis, url: 'redis://h:1'}}\n"
    ))
    .unwrap();
    assert_eq!(
        (d.store.prefix.as_str(), d.store.on_error),
        ("shadowcat:", OnStoreError::Allow)
    );
}

#[test]
fn store_errors_name_the_field() {
    let cases = [
        ("store: {kind: etcd}", "store.kind", "unknown kind"),
        ("store: {kind: redis}", "store.url", "required"),
        (
            "store: {kind: memory, url: 'redis://h:1'}",
            "store.url",
            "only with kind: redis",
        ),
        (
            "store: {kind: redis, url: 'http://h:1'}",
            "store.url",
            "redis://",
        ),
        (
            "store: {kind: redis, url: 'redis://h:1', on_error: maybe}",
            "store.on_error",
            "allow or deny",
        ),
        (
            "store: {kind: redis, url: 'redis://h:1', prefix: 'a b'}",
            "store.prefix",
            "visible ASCII",
        ),
        (
            "store: {kind: redis, url: 'redis://h:1', pool: 3}",
            "store.pool",
            "unknown field",
        ),
    ];
    for (text, field, needle) in cases {
        let e = err(&format!("{ONE}{text}\n"));
        assert_eq!(e.field(), field, "{text:?}: {e}");
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
    }
}
