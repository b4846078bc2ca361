//! The open-files budget. Every proxied request holds a client socket and an upstream socket,
//! so the process's `RLIMIT_NOFILE` caps how many can be open at once. Past it, `accept` and
//! `connect` fail with `EMFILE`: requests fail at random, and a connect failure looked like the
//! upstream's fault (it was marked down, failing every request for `health.down_for`).
//!
//! At start-up the soft limit is raised to the hard one (as nginx's `worker_rlimit_nofile`
//! and Go's runtime do), and `limits.max_connections` / `limits.max_concurrent_requests` are
//! lowered to what fits, so the proxy answers 503 at its limit instead of running out.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use crate::transport::upstream_conn::POOL_CAPACITY;

/// Descriptors kept outside the budget: listeners, the admin port, the rules file, logs.
const RESERVED: u64 = 64;

/// Raises the soft open-files limit to the hard limit; the limit now in force, or `None`
/// when the platform reports none (unlimited).
pub fn raise_nofile() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum) {
        if soft < hard {
            let raised = Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => return Some(hard),
                Err(e) => tracing::debug!(error = %e, "open-files soft limit not raised"),
            }
        }
    }
    limit.current
}

/// Requests (each a client and an upstream socket) that fit in `nofile` descriptors, after
/// the reserve and the upstreams' idle pools.
pub fn requests_for(nofile: u64, upstreams: usize) -> usize {
    let kept = RESERVED + (POOL_CAPACITY * upstreams) as u64;
    (nofile.saturating_sub(kept) / 2).max(1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_descriptors_per_request_after_the_reserve() {
        // This machine's limit in the load test: 20,000, one upstream.
        assert_eq!(requests_for(20_000, 1), 9_840);
        assert_eq!(requests_for(1_048_576, 2), 524_000);
        assert_eq!(requests_for(100, 1), 1, "never zero");
    }

    #[test]
    fn reports_the_limit_in_force() {
        let now = raise_nofile();
        assert_eq!(now, getrlimit(Resource::Nofile).current);
        assert_eq!(raise_nofile(), now, "raising again changes nothing");
    }
}
