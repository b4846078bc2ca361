//! Per-client session caps: `sessions.max_per_principal` and `sessions.max_per_ip`.
//!
//! Without them one client could fill `sessions.max` (rotating bearer tokens, or just calling
//! `initialize` in a loop) and lock every other client out of `initialize` until its sessions
//! idled out. A session counts against its principal (when it has one) and, when the proxy
//! does not authenticate, against its client's network too: without `auth:` the principal is
//! only the `Authorization` text the client chose, so a new token is a new principal, and only
//! the address stops a client that rotates them.
//!
//! IPv6 clients count per /64, the block one host or site routinely holds, so a client cannot
//! walk its own prefix to get a fresh cap per address. IPv4-mapped IPv6 addresses count as IPv4.
//!
//! Counts live in mutex-sharded maps: they change only when a session is created or ends (not
//! per request), and an owner whose count returns to zero is removed, so the maps hold only
//! clients that have sessions. No Pingora here.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

use super::principal::Principal;

const SHARDS: usize = 64;

/// The network a client address counts under (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientNet(IpAddr);

impl ClientNet {
    pub fn of(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
            },
            v4 => v4,
        };
        Self(ip)
    }
}

/// What a session counts against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owners {
    pub principal: Option<Principal>,
    pub net: Option<ClientNet>,
}

/// Which cap refused a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    PerPrincipal,
    PerIp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Principal(Principal),
    Net(ClientNet),
}

/// Session counts per principal and per client network, and their caps.
#[derive(Debug)]
pub struct Quota {
    per_principal: usize,
    per_ip: usize,
    shards: Box<[Mutex<HashMap<Key, usize>>]>,
    hasher: RandomState,
}

// === impl Quota ===

impl Quota {
    /// `usize::MAX` turns a cap off.
    pub fn new(per_principal: usize, per_ip: usize) -> Self {
        Self {
            per_principal,
            per_ip,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    /// Counts one more session for `owners`, or refuses it (counting nothing) when any of its
    /// owners is at its cap.
    pub fn acquire(&self, owners: &Owners) -> Result<(), Cap> {
        if let Some(p) = owners.principal {
            self.take(Key::Principal(p), self.per_principal)
                .map_err(|()| Cap::PerPrincipal)?;
        }
        if let Some(net) = owners.net {
            if self.take(Key::Net(net), self.per_ip).is_err() {
                if let Some(p) = owners.principal {
                    self.give_back(Key::Principal(p));
                }
                return Err(Cap::PerIp);
            }
        }
        Ok(())
    }

    /// Counts one more session for `owners` whatever their caps (a session another replica
    /// created, taken in here: it exists already).
    pub fn add(&self, owners: &Owners) {
        if let Some(p) = owners.principal {
            let _ = self.take(Key::Principal(p), usize::MAX);
        }
        if let Some(net) = owners.net {
            let _ = self.take(Key::Net(net), usize::MAX);
        }
    }

    /// One session of `owners` ended (or was never created).
    pub fn release(&self, owners: &Owners) {
        if let Some(p) = owners.principal {
            self.give_back(Key::Principal(p));
        }
        if let Some(net) = owners.net {
            self.give_back(Key::Net(net));
        }
    }

    /// Sessions counted for `owners`' principal and network (tests and debugging).
    pub fn counts(&self, owners: &Owners) -> (usize, usize) {
        let count = |key: Key| {
            self.shard(&key)
                .lock()
                .map_or(0, |m| m.get(&key).copied().unwrap_or(0))
        };
        (
            owners.principal.map_or(0, |p| count(Key::Principal(p))),
            owners.net.map_or(0, |n| count(Key::Net(n))),
        )
    }

    fn shard(&self, key: &Key) -> &Mutex<HashMap<Key, usize>> {
        &self.shards[(self.hasher.hash_one(key) >> 58) as usize % SHARDS]
    }

    fn take(&self, key: Key, cap: usize) -> Result<(), ()> {
        let mut map = self
            .shard(&key)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = map.entry(key).or_insert(0);
        if *n >= cap {
            if *n == 0 {
                map.remove(&key);
            }
            return Err(());
        }
        *n += 1;
        Ok(())
    }

    fn give_back(&self, key: Key) {
        let mut map = self
            .shard(&key)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(n) = map.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&key);
            }
        }
    }

    /// Owners holding at least one session (tests: the maps do not keep ended clients).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(principal: Option<&[u8]>, ip: Option<&str>) -> Owners {
        Owners {
            principal: crate::proxy::reverse::principal::principal_of(principal),
            net: ip.map(|ip| ClientNet::of(ip.parse().unwrap())),
        }
    }

    #[test]
    fn each_owner_has_its_own_cap_and_a_refusal_counts_nothing() {
        let q = Quota::new(2, 3);
        let alice = owners(Some(b"Bearer alice"), Some("192.0.2.1"));
        assert!(q.acquire(&alice).is_ok());
        assert!(q.acquire(&alice).is_ok());
        assert_eq!(q.acquire(&alice), Err(Cap::PerPrincipal));
        assert_eq!(q.counts(&alice), (2, 2), "the refusal took nothing");
        // Same address, new token: the address is the limit now.
        let rotated = owners(Some(b"Bearer alice-2"), Some("192.0.2.1"));
        assert!(q.acquire(&rotated).is_ok());
        assert_eq!(q.acquire(&rotated), Err(Cap::PerIp));
        assert_eq!(
            q.counts(&rotated),
            (1, 3),
            "the principal's count was given back when the address refused"
        );
        let elsewhere = owners(None, Some("192.0.2.2"));
        assert!(
            q.acquire(&elsewhere).is_ok(),
            "other clients are unaffected"
        );
        q.release(&alice);
        assert!(
            q.acquire(&rotated).is_ok(),
            "an ended session frees its places"
        );
        assert_eq!(q.acquire(&alice), Err(Cap::PerIp));
        assert_eq!(q.counts(&alice), (1, 3));
        q.release(&rotated);
        assert!(q.acquire(&alice).is_ok());
        assert_eq!(q.counts(&alice), (2, 3));
    }

    #[test]
    fn counts_go_away_when_sessions_end() {
        let q = Quota::new(1, 1);
        let a = owners(Some(b"a"), Some("2001:db8::1"));
        for _ in 0..3 {
            assert!(q.acquire(&a).is_ok());
            q.release(&a);
        }
        assert_eq!(q.tracked(), 0);
        assert!(q.acquire(&owners(None, None)).is_ok(), "no owner: no cap");
        assert_eq!(q.tracked(), 0);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let net = |ip: &str| ClientNet::of(ip.parse().unwrap());
        assert_eq!(net("2001:db8:1:2::1"), net("2001:db8:1:2:ffff::9"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("::ffff:192.0.2.7"), net("192.0.2.7"));
        assert_ne!(net("192.0.2.7"), net("192.0.2.8"), "IPv4 per address");
        let q = Quota::new(usize::MAX, 1);
        assert!(q.acquire(&owners(None, Some("2001:db8::1"))).is_ok());
        assert_eq!(
            q.acquire(&owners(None, Some("2001:db8::2"))),
            Err(Cap::PerIp)
        );
    }
}
