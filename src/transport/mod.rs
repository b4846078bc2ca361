//! Wire-level building blocks below the proxy phases, none of them Pingora's: the SSE codec,
//! the upstream response body as the exchange reads it (idle deadline, resumption), the
//! exchange's deadlines as errors, and the downstream head deadline.

pub mod head_deadline;
pub mod sse;
pub mod upstream_body;
pub mod upstream_timeout;
