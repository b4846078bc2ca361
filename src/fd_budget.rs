//! The open-files budget. Every proxied request holds a client socket and an upstream socket,
//! so the process's `RLIMIT_NOFILE` caps how many can be open at once. Past it, `accept` and
//! `connect` fail with `EMFILE`: requests fail at random, and a connect failure looked like the
//! upstream's fault (it was marked down, failing every request for `health.down_for`).
//!
//! At start-up the soft limit is raised to the hard one (as nginx's `worker_rlimit_nofile`
//! and Go's runtime do), and `limits.max_connections` / `limits.max_concurrent_requests` are
//! lowered to what fits, so the proxy answers 503 at its limit instead of running out.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use crate::upstream_client::DEFAULT_POOL_MAX_IDLE as POOL_CAPACITY;

/// Descriptors kept outside the budget: listeners, the admin port, the rules file, logs.
const RESERVED: u64 = 64;

/// Soft limits tried, largest first, when the hard limit is unlimited (macOS reports that,
/// but the kernel still caps the soft limit).
const UNLIMITED_TRIES: [u64; 3] = [1 << 20, 1 << 16, 10_240];

/// Raises the soft open-files limit to the hard limit; the limit now in force, or `None`
/// when it is unlimited.
pub fn raise_nofile() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current?;
    let targets: &[u64] = match limit.maximum {
        Some(hard) => &[hard],
        None => &UNLIMITED_TRIES,
    };
    for &target in targets.iter().filter(|&&t| t > soft) {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return Some(target),
            Err(e) => tracing::debug!(error = %e, target, "open-files soft limit not raised"),
        }
    }
    Some(soft)
}

/// Requests (each a client and an upstream socket) that fit in `nofile` descriptors, after
/// the reserve and the upstreams' idle pools. The pools' share is at most a quarter of the
/// limit: with many upstreams and a small limit, their full capacity would leave requests
/// nothing (past that share, idle connections use the requests' own, and a connect that then
/// runs out gets 503, see `proxy::reverse::failure::out_of_resources`).
pub fn requests_for(nofile: u64, upstreams: usize) -> usize {
    let pools = ((POOL_CAPACITY * upstreams) as u64).min(nofile / 4);
    (nofile.saturating_sub(RESERVED + pools) / 2).max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_descriptors_per_request_after_the_reserve() {
        // This machine's limit in the load test: 20,000, one upstream.
        assert_eq!(requests_for(20_000, 1), 9_840);
        assert_eq!(requests_for(1_048_576, 2), 524_000);
        // Regression (review): 1,024 files and 4 upstreams left 1 request; the pools now take
        // at most a quarter.
        assert_eq!(requests_for(1_024, 4), 352);
        assert_eq!(requests_for(256, 1), 64);
        assert_eq!(requests_for(10, 1), 1, "never zero");
    }

    #[test]
    fn reports_the_limit_in_force() {
        let now = raise_nofile();
        assert_eq!(now, getrlimit(Resource::Nofile).current);
        assert_eq!(raise_nofile(), now, "raising again changes nothing");
    }
}
