//! Rate-limit token buckets in the store: one Lua script takes a token from every bucket a
//! request counts against (its IP, principal, session), all or none, so concurrent requests on
//! any replica cannot overdraw a bucket. Time is the server's (`TIME`), never a replica's.

use redis::{Script, ScriptInvocation};
use std::sync::LazyLock;
use std::time::Duration;

use crate::ratelimit::Rate;

/// KEYS: the buckets. ARGV: per bucket, its burst and its tokens per millisecond. Returns
/// `{0, 0}` when every bucket had a token (one taken from each), else `{i, wait_ms}`: bucket
/// `i` (1-based) is empty for `wait_ms` more, and no token was taken.
const TAKE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = {}
for i, key in ipairs(KEYS) do
  local burst = tonumber(ARGV[2 * i - 1])
  local per_ms = tonumber(ARGV[2 * i])
  local b = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(b[1]) or burst
  local at = tonumber(b[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * per_ms)
  if tokens < 1 then
    return {i, math.ceil((1 - tokens) / per_ms)}
  end
  state[i] = tokens - 1
end
for i, key in ipairs(KEYS) do
  local burst = tonumber(ARGV[2 * i - 1])
  local per_ms = tonumber(ARGV[2 * i])
  redis.call('HSET', key, 'tokens', tostring(state[i]), 'at', now)
  redis.call('PEXPIRE', key, math.ceil(burst / per_ms) + 1000)
end
return {0, 0}
"#;

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TAKE));

/// One bucket a request counts against: its scope (the metric label), its key (already
/// distinct per scope and client), and its rate.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub scope: &'static str,
    pub key: String,
    pub rate: Rate,
}

/// What the store said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Allowed,
    /// Bucket number `index` (0-based, in the order given) is empty for `retry_after`.
    Limited {
        index: usize,
        retry_after: Duration,
    },
}

impl Taken {
    pub(super) fn from_reply((index, wait_ms): (u32, u64)) -> Self {
        match index {
            0 => Taken::Allowed,
            i => Taken::Limited {
                index: i as usize - 1,
                retry_after: Duration::from_millis(wait_ms.max(1)),
            },
        }
    }
}

/// The script call for `buckets`, keys under `prefix`.
pub(super) fn invocation(prefix: &str, buckets: &[Bucket]) -> ScriptInvocation<'static> {
    let mut inv = SCRIPT.prepare_invoke();
    for b in buckets {
        let per_ms = f64::from(b.rate.rate) / b.rate.per.as_millis().max(1) as f64;
        inv.key(format!("{prefix}rl:{}:{}", b.scope, b.key))
            .arg(b.rate.burst.max(1))
            .arg(per_ms);
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_name_the_empty_bucket() {
        assert_eq!(Taken::from_reply((0, 0)), Taken::Allowed);
        assert_eq!(
            Taken::from_reply((2, 1500)),
            Taken::Limited {
                index: 1,
                retry_after: Duration::from_millis(1500)
            }
        );
    }
}
