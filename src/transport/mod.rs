//! Wire-level building blocks that know nothing of Pingora's proxy phases.

pub mod sse;
