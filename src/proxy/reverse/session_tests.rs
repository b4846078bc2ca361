use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::proxy::reverse::session_quota::{Cap, ClientNet, Owners};

fn owned_by(principal: Option<&[u8]>) -> Owners {
    Owners {
        principal: principal_of(principal),
        net: None,
    }
}

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
    let r = table.reserve(Owners::default()).unwrap();
    assert_eq!(
        table.reserve(Owners::default()).unwrap_err(),
        InsertError::Full,
        "the place is taken"
    );
    drop(r);
    let r = table.reserve(Owners::default()).unwrap();
    let (s, evicted) = r.commit(0, "u", None).unwrap();
    assert!(evicted.is_none());
    assert_eq!(table.len(), 1);
    assert!(table.get(&s.id).is_some());
}

/// An upstream that restarted and issues its ids from the start again: the same principal's
/// old mapping is stale, and the new session takes the id.
#[tokio::test]
async fn a_reissued_upstream_id_evicts_the_same_principals_stale_mapping() {
    let table = Arc::new(SessionTable::new(10, 1));
    let old = table
        .insert(0, "1", principal_of(Some(b"Bearer a")))
        .unwrap();
    let (new, evicted) = table
        .reserve(owned_by(Some(b"Bearer a")))
        .unwrap()
        .commit(0, "1", None)
        .unwrap();
    assert_eq!(evicted.unwrap().id, old.id);
    assert!(table.get(&old.id).is_none());
    assert_eq!(table.downstream_id(0, "1").as_deref(), Some(&*new.id));
    assert_eq!(table.len(), 1);
    assert_eq!(table.counts(&owned_by(Some(b"Bearer a"))).0, 1);
}

/// Regression (session hijack by upstream): an upstream that answered client B's `initialize`
/// with client A's upstream id moved A's upstream session to B.
#[tokio::test]
async fn regression_an_upstream_id_is_never_handed_to_another_principal() {
    let table = Arc::new(SessionTable::new(10, 1));
    let a = table
        .insert(0, "shared", principal_of(Some(b"Bearer a")))
        .unwrap();
    for b in [Some(&b"Bearer b"[..]), None] {
        let refused = table
            .reserve(owned_by(b))
            .unwrap()
            .commit(0, "shared", None);
        assert_eq!(refused.unwrap_err(), InsertError::Conflict);
    }
    assert_eq!(table.downstream_id(0, "shared").as_deref(), Some(&*a.id));
    assert_eq!(table.len(), 1, "the refused places were given back");
    assert_eq!(table.counts(&owned_by(Some(b"Bearer b"))), (0, 0));
    // Anonymous clients are not one principal: one never takes another's mapping either.
    let anon = table.insert(0, "anon", None).unwrap();
    let refused = table
        .reserve(Owners::default())
        .unwrap()
        .commit(0, "anon", None);
    assert_eq!(refused.unwrap_err(), InsertError::Conflict);
    assert_eq!(table.downstream_id(0, "anon").as_deref(), Some(&*anon.id));
    assert_eq!(table.len(), 2);
}

/// Two `initialize` answers with one upstream id, committed at once: one session gets it.
#[test]
fn racing_commits_of_one_upstream_id_map_it_once() {
    for _ in 0..50 {
        let table = Arc::new(SessionTable::new(100, 1));
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (table, barrier) = (table.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let r = table.reserve(Owners::default()).unwrap();
                    barrier.wait();
                    r.commit(0, "same", None).map(|(s, _)| s.id.clone())
                })
            })
            .collect();
        let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let won: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "{outcomes:?}");
        assert_eq!(table.len(), 1);
        assert_eq!(table.downstream_id(0, "same").as_deref(), Some(&**won[0]));
    }
}

#[tokio::test]
async fn per_client_caps_are_held_and_given_back_when_sessions_end() {
    let table = Arc::new(SessionTable::new(10, 1).with_caps(2, 3));
    let net = Some(ClientNet::of("192.0.2.1".parse().unwrap()));
    let alice = Owners {
        net,
        ..owned_by(Some(b"Bearer alice"))
    };
    let s1 = table
        .reserve(alice)
        .unwrap()
        .commit(0, "1", None)
        .unwrap()
        .0;
    table.reserve(alice).unwrap().commit(0, "2", None).unwrap();
    assert_eq!(
        table.reserve(alice).unwrap_err(),
        InsertError::Capped(Cap::PerPrincipal)
    );
    let rotated = Owners {
        net,
        ..owned_by(Some(b"Bearer alice-2"))
    };
    let held = table.reserve(rotated).unwrap();
    assert_eq!(
        table.reserve(rotated).unwrap_err(),
        InsertError::Capped(Cap::PerIp)
    );
    drop(held);
    assert_eq!(
        table.counts(&rotated),
        (0, 2),
        "an unused place is given back"
    );
    table.remove(&s1.id);
    assert_eq!(table.counts(&alice), (1, 1), "so is an ended session's");
    assert!(table.reserve(alice).is_ok());
    let expired = table.expire_idle(Duration::ZERO);
    assert_eq!(expired.len(), 1);
    assert_eq!(table.counts(&alice), (0, 0), "and an expired one's");
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

#[tokio::test]
async fn adopting_a_sealed_id() {
    let table = Arc::new(SessionTable::new(2, 1).with_caps(1, 1));
    let alice = principal_of(Some(b"Bearer alice"));
    let owners = Owners {
        principal: alice,
        net: None,
    };
    table.insert(0, "held", alice).unwrap();
    // At her cap already: a session sealed elsewhere is still taken in (it exists).
    let id = "A".repeat(120);
    let s = table.adopt(&id, 0, "u-1", alice).unwrap();
    assert_eq!(&*s.id, id.as_str());
    assert_eq!(table.counts(&owners).0, 2);
    // Adopted again (a concurrent request): the same session, counted once.
    assert!(Arc::ptr_eq(&table.adopt(&id, 0, "u-1", alice).unwrap(), &s));
    assert_eq!(table.len(), 2);
    assert_eq!(table.downstream_id(0, "u-1").as_deref(), Some(id.as_str()));
    // A full table refuses another one.
    assert_eq!(
        table.adopt(&"B".repeat(120), 0, "u-2", alice).unwrap_err(),
        InsertError::Full
    );
    table.remove(&id).unwrap();
    assert_eq!((table.len(), table.counts(&owners).0), (1, 1));
}
