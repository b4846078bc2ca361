//! `cache:`: on by default, every key, and errors that name the rule's field.

use super::*;
use crate::cache::{Rule, Scope, Settings};

#[test]
fn the_cache_is_on_by_default_and_every_key_can_be_set() {
    let c = from_yaml_str(ONE).unwrap();
    assert_eq!(
        c.cache,
        Some(Settings {
            max_bytes: 64 << 20,
            rules: Vec::new()
        })
    );
    let c = from_yaml_str(&format!(
        "{ONE}cache:\n  enabled: true\n  max_bytes: 1MiB\n  rules:\n    \
         - {{method: tools/list, upstream: u, ttl: 30s, scope: public}}\n    \
         - {{method: resources/read, ttl: 500ms, scope: private}}\n"
    ))
    .unwrap();
    let cache = c.cache.unwrap();
    assert_eq!(cache.max_bytes, 1 << 20);
    assert_eq!(
        cache.rules,
        vec![
            Rule {
                method: "tools/list",
                upstream: Some("u".into()),
                ttl: Duration::from_secs(30),
                scope: Scope::Public,
            },
            Rule {
                method: "resources/read",
                upstream: None,
                ttl: Duration::from_millis(500),
                scope: Scope::Private,
            },
        ]
    );
    let off = from_yaml_str(&format!("{ONE}cache: {{enabled: false}}\n")).unwrap();
    assert_eq!(off.cache, None);
}

#[test]
fn bad_cache_keys_name_their_field() {
    let cases = [
        ("cache: {max_bytes: 0}", "cache.max_bytes"),
        ("cache: {max_bytes: lots}", "cache.max_bytes"),
        (
            "cache: {rules: [{ttl: 1s, scope: public}]}",
            "cache.rules[0].method",
        ),
        (
            "cache: {rules: [{method: tools/call, ttl: 1s, scope: public}]}",
            "cache.rules[0].method",
        ),
        (
            "cache: {rules: [{method: tools/list, upstream: nope, ttl: 1s, scope: public}]}",
            "cache.rules[0].upstream",
        ),
        (
            "cache: {rules: [{method: tools/list, scope: public}]}",
            "cache.rules[0].ttl",
        ),
        (
            "cache: {rules: [{method: tools/list, ttl: 0, scope: public}]}",
            "cache.rules[0].ttl",
        ),
        (
            "cache: {rules: [{method: tools/list, ttl: 1s}]}",
            "cache.rules[0].scope",
        ),
        (
            "cache: {rules: [{method: tools/list, ttl: 1s, scope: shared}]}",
            "cache.rules[0].scope",
        ),
    ];
    for (text, field) in cases {
        let e = err(&format!("{ONE}{text}\n"));
        assert!(e.field().starts_with(field), "{text:?}: got {e}");
    }
    let e = err(&format!(
        "{ONE}cache: {{rules: [{{method: tools/list, tll: 1s}}]}}\n"
    ));
    assert!(e.to_string().contains("tll"), "{e}");
}
