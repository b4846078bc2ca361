use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::*;

fn req(body: &str) -> Plan {
    request::plan(body.as_bytes())
}

fn cacheable(body: &str) -> Request {
    match req(body) {
        Plan::Cacheable(r) => r,
        other => panic!("not cacheable: {other:?}"),
    }
}

fn key(r: &Request, principal: Option<[u8; 32]>) -> Key {
    Key::new(Arc::from("a"), r, "2026-07-28", principal)
}

#[test]
fn keys_ignore_meta_and_key_order() {
    let a = cacheable(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"c","_meta":{"x":1},"z":{"b":1,"a":2}}}"#,
    );
    let b = cacheable(
        r#"{"id":"q","method":"tools/list","jsonrpc":"2.0","params":{"z":{"a":2,"b":1},"cursor":"c"}}"#,
    );
    assert_eq!(a.params, b.params);
    assert_eq!(&*a.params, r#"{"cursor":"c","z":{"a":2,"b":1}}"#);
    assert_eq!(&*b.id, r#""q""#);
    let c = cacheable(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"d"}}"#);
    assert_ne!(a.params, c.params);
    let none = cacheable(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    assert_eq!(&*none.params, "{}");
    let read = cacheable(
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}"#,
    );
    assert_eq!(read.uri.as_deref(), Some("file:///a"));
}

#[test]
fn judges_what_bypasses() {
    assert_eq!(
        req(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#),
        Plan::NotCacheable
    );
    assert_eq!(
        req(r#"{"jsonrpc":"2.0","method":"tools/list"}"#),
        Plan::NotCacheable
    );
    let bypass = |body: &str| match req(body) {
        Plan::Bypass { why, .. } => why,
        other => panic!("not bypassed: {other:?}"),
    };
    assert_eq!(
        bypass(
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"u","requestState":"s"}}"#
        ),
        Bypass::RoundTrip
    );
    assert_eq!(
        bypass(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"inputResponses":{}}}"#),
        Bypass::RoundTrip
    );
    assert_eq!(
        bypass(
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#
        ),
        Bypass::Batch
    );
    assert_eq!(
        bypass(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1]}"#),
        Bypass::Malformed
    );
    assert_eq!(
        bypass(r#"{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}"#),
        Bypass::Malformed
    );
    // A null id is no request id (serde reads it as absent): nothing to answer from a cache.
    assert_eq!(
        req(r#"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#),
        Plan::NotCacheable
    );
}

#[test]
fn reads_hints_where_the_result_carries_them() {
    let body = Bytes::from_static(
        br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[],"ttlMs":60000,"cacheScope":"public","resultType":"complete"}}"#,
    );
    let p = result::parse(&body).unwrap();
    assert_eq!(p.hints.ttl, Some(Duration::from_secs(60)));
    assert_eq!(p.hints.scope, Scope::Public);
    assert!(!p.hints.input_required);
    assert_eq!(&p.result[p.ttl_range.clone().unwrap()], b"60000");

    let interim = Bytes::from_static(
        br#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"input_required","inputRequests":{}}}"#,
    );
    assert!(result::parse(&interim).unwrap().hints.input_required);
    let error =
        Bytes::from_static(br#"{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"x"}}"#);
    assert!(result::parse(&error).is_none());
    let no_scope = Bytes::from_static(br#"{"jsonrpc":"2.0","id":7,"result":{"ttlMs":5}}"#);
    assert_eq!(
        result::parse(&no_scope).unwrap().hints.scope,
        Scope::Private
    );
    assert!(result::is_response(&error));
    assert!(result::is_response(&body));
    assert!(!result::is_response(
        br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#
    ));
    let bad_ttl = Bytes::from_static(br#"{"jsonrpc":"2.0","id":7,"result":{"ttlMs":-5}}"#);
    assert_eq!(result::parse(&bad_ttl).unwrap().hints.ttl, None);
}

#[test]
fn admits_by_hint_then_rule_and_never_private_without_principal() {
    let cache = Cache::new(&Settings {
        max_bytes: 1 << 20,
        rules: vec![Rule {
            method: "tools/list",
            upstream: Some("old".into()),
            ttl: Duration::from_secs(30),
            scope: Scope::Public,
        }],
    });
    let hints = |ttl: Option<u64>, scope| Hints {
        ttl: ttl.map(Duration::from_millis),
        scope,
        input_required: false,
    };
    let public = hints(Some(1000), Scope::Public);
    assert_eq!(
        cache.admit(&public, "tools/list", "a", false),
        Some((Duration::from_secs(1), Scope::Public))
    );
    assert_eq!(
        cache.admit(&hints(Some(0), Scope::Public), "tools/list", "old", false),
        None
    );
    assert_eq!(
        cache.admit(&hints(Some(9), Scope::Private), "tools/list", "a", false),
        None
    );
    assert!(cache
        .admit(&hints(Some(9), Scope::Private), "tools/list", "a", true)
        .is_some());
    assert_eq!(
        cache.admit(&hints(None, Scope::Private), "tools/list", "a", true),
        None
    );
    assert_eq!(
        cache.admit(&hints(None, Scope::Private), "tools/list", "old", false),
        Some((Duration::from_secs(30), Scope::Public))
    );
    let mut interim = public.clone();
    interim.input_required = true;
    assert_eq!(cache.admit(&interim, "tools/list", "a", false), None);
}

#[tokio::test(start_paused = true)]
async fn serves_the_result_with_the_new_id_and_the_freshness_left() {
    let body = Bytes::from_static(
        br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"t"}], "ttlMs":60000,"cacheScope":"public"}}"#,
    );
    let p = result::parse(&body).unwrap();
    let entry = Entry::new(
        p.result,
        p.ttl_range,
        Duration::from_secs(60),
        Scope::Public,
        None,
    );
    tokio::time::advance(Duration::from_millis(1500)).await;
    let reply = entry.reply(r#""abc""#, Instant::now()).unwrap();
    assert_eq!(
        &reply[..],
        br#"{"jsonrpc":"2.0","id":"abc","result":{"tools":[{"name":"t"}], "ttlMs":58500,"cacheScope":"public"}}"#
    );
    tokio::time::advance(Duration::from_millis(58_500)).await;
    assert!(entry.reply("1", Instant::now()).is_none());
}

#[tokio::test(start_paused = true)]
async fn store_expires_invalidates_purges_and_stays_bounded() {
    let store = Store::new(4096);
    let list = cacheable(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    let read =
        cacheable(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"u1"}}"#);
    let entry = |ttl, uri: Option<&str>| {
        Entry::new(
            Bytes::from_static(b"{}"),
            None,
            ttl,
            Scope::Public,
            uri.map(Box::from),
        )
    };
    store.insert(key(&list, None), entry(Duration::from_secs(1), None));
    store.insert(key(&read, None), entry(Duration::from_secs(60), Some("u1")));
    assert!(store.get(&key(&list, None), Instant::now()).is_some());
    assert!(store
        .get(&key(&list, Some([1; 32])), Instant::now())
        .is_none());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(store.get(&key(&list, None), Instant::now()).is_none());
    assert_eq!(store.len(), 1);

    store.invalidate(
        "a",
        invalidations("notifications/resources/updated"),
        Some("u2"),
    );
    assert_eq!(store.len(), 1);
    store.invalidate(
        "b",
        invalidations("notifications/resources/updated"),
        Some("u1"),
    );
    assert_eq!(store.len(), 1);
    store.invalidate(
        "a",
        invalidations("notifications/resources/updated"),
        Some("u1"),
    );
    assert!(store.is_empty());

    store.insert(key(&list, None), entry(Duration::from_secs(9), None));
    store.insert(key(&read, None), entry(Duration::from_secs(9), Some("u1")));
    let purge = Purge {
        upstream: None,
        method: Some("tools/list".into()),
    };
    assert_eq!(store.purge(&purge), 1);
    assert_eq!(store.purge(&Purge::default()), 1);
    assert_eq!(store.bytes(), 0);

    for i in 0..200 {
        let r = cacheable(&format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"cursor":"{i}"}}}}"#
        ));
        store.insert(key(&r, None), entry(Duration::from_secs(9), None));
    }
    assert!(store.bytes() <= 4096, "{} bytes", store.bytes());
}

#[tokio::test]
async fn one_leader_per_key_and_waiters_wake_when_it_ends() {
    let flights = Arc::new(Flights::new(Duration::from_secs(30)));
    let list = cacheable(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    let k = key(&list, None);
    let Join::Lead(guard) = flights.join(&k) else {
        panic!("first is the leader")
    };
    let Join::Wait(mut rx) = flights.join(&k) else {
        panic!("second waits")
    };
    let waiter = tokio::spawn(async move { Join::wait(&mut rx).await });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    drop(guard);
    waiter.await.unwrap();
    assert!(flights.is_empty());
    assert!(matches!(flights.join(&k), Join::Lead(_)));
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_never_ends_loses_its_key_after_the_max_age() {
    let flights = Arc::new(Flights::new(Duration::from_secs(30)));
    let list = cacheable(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    let k = key(&list, None);
    let Join::Lead(stuck) = flights.join(&k) else {
        panic!("first is the leader")
    };
    assert!(matches!(flights.join(&k), Join::Wait(_)));
    tokio::time::advance(Duration::from_secs(30)).await;
    let Join::Lead(next) = flights.join(&k) else {
        panic!("the stuck leader aged out")
    };
    // The old guard going does not free its successor's key.
    drop(stuck);
    assert!(matches!(flights.join(&k), Join::Wait(_)));
    drop(next);
    assert!(flights.is_empty());
}
