//! Wire-level building blocks below the proxy phases: the SSE codec (no Pingora at all), the
//! HTTP/1.1 response observer, and the upstream socket that enforces deadlines and writes SSE
//! keep-alives.

pub mod h1_framing;
pub mod head_cork;
pub mod head_deadline;
pub mod idle_pool;
pub mod sse;
pub mod stream_slot;
pub mod upstream_conn;
pub mod upstream_resume;
pub mod upstream_timeout;
pub mod watchdog_socket;
