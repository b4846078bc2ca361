//! Token buckets keyed by principal, client IP or session.
//!
//! Each limiter holds `burst` tokens per key, refilled at `rate` per `per`; a request takes one
//! token or is refused with the time until the next one. Keys are 64-bit keyed hashes (a
//! collision would only merge two clients' budgets). Buckets live in mutex-sharded maps: the
//! critical section is a few arithmetic operations, and a bucket that has refilled completely
//! carries no information, so idle ones are pruned as the map grows. Time is tokio's clock.
//! No Pingora here.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const SHARDS: usize = 64;
/// A shard is pruned of full buckets each time it grows past this many more keys.
const PRUNE_EVERY: usize = 1024;

/// `rate` tokens every `per`, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub rate: u32,
    pub per: Duration,
    pub burst: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<u64, Bucket>,
    prune_at: usize,
}

/// One limiter (one scope).
#[derive(Debug)]
pub struct Limiter {
    per_ms: f64,
    burst: f64,
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    origin: Instant,
}

impl Limiter {
    pub fn new(rate: Rate) -> Self {
        Self {
            per_ms: f64::from(rate.rate) / rate.per.as_millis().max(1) as f64,
            burst: f64::from(rate.burst.max(1)),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            origin: Instant::now(),
        }
    }

    /// Takes a token for `key`; `Err(wait)` when none is left.
    pub fn check<K: Hash + ?Sized>(&self, key: &K) -> Result<(), Duration> {
        let hash = self.hasher.hash_one(key);
        let now = Instant::now()
            .saturating_duration_since(self.origin)
            .as_millis() as u64;
        let shard = &self.shards[(hash >> 58) as usize % SHARDS];
        let mut shard = shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = shard.buckets.entry(hash).or_insert(Bucket {
            tokens: self.burst,
            last_ms: now,
        });
        let refill = (now.saturating_sub(bucket.last_ms)) as f64 * self.per_ms;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.last_ms = now;
        let result = if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - bucket.tokens) / self.per_ms).ceil() as u64;
            Err(Duration::from_millis(wait_ms.max(1)))
        };
        if shard.buckets.len() >= shard.prune_at + PRUNE_EVERY {
            let (per_ms, burst) = (self.per_ms, self.burst);
            shard
                .buckets
                .retain(|_, b| b.tokens + (now.saturating_sub(b.last_ms)) as f64 * per_ms < burst);
            shard.prune_at = shard.buckets.len();
        }
        result
    }

    /// Keys currently tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.buckets.len()))
            .sum()
    }
}

/// An IPv4 or IPv6 network in CIDR form (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("invalid address {addr:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("invalid prefix length {p:?}"))?,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> (u128, u32) {
            match ip {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (IpAddr::V6(_), IpAddr::V4(_)) => return false,
            _ => ip,
        };
        let ((net, _), (addr, _)) = (bits(self.addr), bits(ip));
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        };
        net & mask == addr & mask
    }
}

/// The client's IP: the peer address, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(xff) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in xff.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn buckets_refill_at_the_rate() {
        let l = Limiter::new(Rate {
            rate: 2,
            per: Duration::from_secs(1),
            burst: 3,
        });
        assert!((0..3).all(|_| l.check("a").is_ok()), "the burst");
        let wait = l.check("a").unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(l.check("b").is_ok(), "keys are independent");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_err());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(
            (0..3).all(|_| l.check("a").is_ok()),
            "refill stops at the burst"
        );
        assert!(l.check("a").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_full_buckets_are_pruned() {
        let l = Limiter::new(Rate {
            rate: 1000,
            per: Duration::from_secs(1),
            burst: 1,
        });
        for i in 0..(SHARDS * PRUNE_EVERY * 2) {
            let _ = l.check(&i);
            if i % 1000 == 0 {
                tokio::time::advance(Duration::from_millis(5)).await;
            }
        }
        assert!(
            l.tracked() < SHARDS * PRUNE_EVERY * 2,
            "tracked {}",
            l.tracked()
        );
    }

    #[test]
    fn cidrs_and_forwarded_for() {
        let lo = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(lo.contains("127.1.2.3".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
        let trusted = [lo, Cidr::parse("10.0.0.0/8").unwrap()];
        let peer = "127.0.0.1".parse().unwrap();
        let ip = |xff| client_ip(peer, xff, &trusted).to_string();
        assert_eq!(ip(Some("203.0.113.9, 10.1.1.1")), "203.0.113.9");
        assert_eq!(
            ip(Some("6.6.6.6, 203.0.113.9")),
            "203.0.113.9",
            "the left part is the client's to forge"
        );
        assert_eq!(ip(None), "127.0.0.1");
        assert_eq!(ip(Some("garbage")), "127.0.0.1");
        let untrusted_peer = "198.51.100.7".parse().unwrap();
        assert_eq!(
            client_ip(untrusted_peer, Some("1.2.3.4"), &trusted).to_string(),
            "198.51.100.7"
        );
    }
}
