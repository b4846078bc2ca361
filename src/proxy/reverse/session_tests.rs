use std::sync::Arc;
use std::time::Duration;

use super::*;

#[test]
fn minted_ids_are_long_random_visible_ascii() {
    let a = mint_id().unwrap();
    let b = mint_id().unwrap();
    assert_eq!(a.len(), 43);
    assert_ne!(a, b);
    assert!(a.bytes().all(|c| (0x21..=0x7e).contains(&c)));
}

#[tokio::test]
async fn maps_both_ways_and_removes_once() {
    let table = Arc::new(SessionTable::new(10, 2));
    let s = table.insert(1, "up-1", None).unwrap();
    assert_ne!(&*s.id, "up-1", "the downstream id is the proxy's own");
    assert_eq!(table.get(&s.id).unwrap().upstream_id.as_ref(), "up-1");
    assert_eq!(table.downstream_id(1, "up-1").as_deref(), Some(&*s.id));
    assert_eq!(
        table.downstream_id(0, "up-1"),
        None,
        "reverse keys include the upstream"
    );
    assert_eq!(
        (table.len(), table.sessions_on(1), table.sessions_on(0)),
        (1, 1, 0)
    );
    assert!(table.remove(&s.id).is_some());
    assert!(
        table.remove(&s.id).is_none(),
        "a second removal finds nothing"
    );
    assert!(table.get(&s.id).is_none());
    assert_eq!(table.downstream_id(1, "up-1"), None);
    assert_eq!((table.len(), table.sessions_on(1)), (0, 0));
}

#[tokio::test]
async fn the_cap_holds() {
    let table = Arc::new(SessionTable::new(2, 1));
    let a = table.insert(0, "a", None).unwrap();
    table.insert(0, "b", None).unwrap();
    assert_eq!(table.insert(0, "c", None).unwrap_err(), InsertError::Full);
    assert_eq!(table.len(), 2);
    table.remove(&a.id);
    assert!(table.insert(0, "c", None).is_ok());
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_expire_on_tokio_time() {
    let table = Arc::new(SessionTable::new(10, 1));
    let old = table.insert(0, "old", None).unwrap();
    tokio::time::advance(Duration::from_secs(20 * 60)).await;
    let fresh = table.insert(0, "fresh", None).unwrap();
    tokio::time::advance(Duration::from_secs(5 * 60)).await;
    table.touch(&old);
    tokio::time::advance(Duration::from_secs(26 * 60)).await;
    // `fresh` idled 31 min, `old` 26 min since its touch.
    let expired = table.expire_idle(Duration::from_secs(30 * 60));
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, fresh.id);
    assert!(table.get(&old.id).is_some());
    assert_eq!(table.idle_for(&old), Duration::from_secs(26 * 60));
}

#[test]
fn principal_is_a_hash_of_the_header() {
    let a = principal_of(Some(b"Bearer one"));
    assert_eq!(a, principal_of(Some(b"Bearer one")));
    assert_ne!(a, principal_of(Some(b"Bearer two")));
    assert_eq!(principal_of(None), None);
}

#[test]
fn concurrent_writers_lose_nothing() {
    let table = Arc::new(SessionTable::new(100_000, 1));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let table = table.clone();
            std::thread::spawn(move || {
                (0..2000)
                    .map(|i| {
                        table
                            .insert(0, &format!("{t}-{i}"), None)
                            .unwrap()
                            .id
                            .clone()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: Vec<Arc<str>> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(table.len(), 8000);
    assert!(ids.iter().all(|id| table.get(id).is_some()));
    for t in 0..4 {
        assert!(table.downstream_id(0, &format!("{t}-1999")).is_some());
    }
}

#[tokio::test]
async fn reservations_hold_a_place_until_committed_or_dropped() {
    let table = Arc::new(SessionTable::new(1, 1));
    let r = table.reserve().unwrap();
    assert_eq!(
        table.reserve().unwrap_err(),
        InsertError::Full,
        "the place is taken"
    );
    drop(r);
    let r = table.reserve().unwrap();
    let (s, evicted) = r.commit(0, "u", None).unwrap();
    assert!(evicted.is_none());
    assert_eq!(table.len(), 1);
    assert!(table.get(&s.id).is_some());
}

#[tokio::test]
async fn a_reused_upstream_id_evicts_the_stale_mapping() {
    let table = Arc::new(SessionTable::new(10, 1));
    let old = table.insert(0, "1", None).unwrap();
    let (new, evicted) = table.reserve().unwrap().commit(0, "1", None).unwrap();
    assert_eq!(evicted.unwrap().id, old.id);
    assert!(table.get(&old.id).is_none());
    assert_eq!(table.downstream_id(0, "1").as_deref(), Some(&*new.id));
    assert_eq!(table.len(), 1);
}

#[tokio::test]
async fn ids_that_were_never_minted_are_simply_unknown() {
    let table = Arc::new(SessionTable::new(10, 1));
    let s = table.insert(0, "u", None).unwrap();
    for bogus in [
        "",
        "no-such-session",
        &s.id[..42],
        &format!("{}A", s.id),
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        &s.id.to_uppercase(),
    ] {
        assert!(table.get(bogus).is_none(), "{bogus:?}");
        assert!(table.remove(bogus).is_none(), "{bogus:?}");
    }
    assert!(table.get(&s.id).is_some());
}
