//! The SSE codec: an incremental `memchr` framer ([`SseScanner`]), borrowed field access on the
//! framed blocks ([`RawEvent`]), and an owned, re-encodable [`SseEvent`].
//!
//! No Pingora here: the codec works on `Bytes`, so it is unit-tested, property-tested and
//! benchmarked on its own.

pub mod cache_control;
mod event;
mod filter;
mod replay;
mod scanner;

pub use event::{Field, Fields, RawEvent, SseEvent, KEEPALIVE};
pub use filter::{filter, verdict, Early, Filtered, Flow, Judge, Verdict};
pub use replay::{with_id, EventId, Evicted, ReplayBuffer, ReplayLimits};
pub use scanner::{ScanError, SseScanner};

#[cfg(test)]
mod tests;
