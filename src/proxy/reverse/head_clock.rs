//! The request-head clock of a client connection, seen from the proxy phases.
//!
//! The accept layer (`server::accept`) counts connections and wraps each in a
//! [`HeadDeadline`]: a head must be complete within `limits.header_read_timeout` of accept or
//! of the end of the previous response. Only the phases know when a head is in and when a
//! response is over, so they move the clock: [`head_read`] disarms it (the first phase runs once
//! Pingora parsed a head), [`response_done`] re-arms it for the next head on the connection.
//! HTTP/2 streams have no clock (their connection was disarmed at its preface).

use pingora::proxy::Session;

use crate::transport::head_deadline::HeadDeadline;

/// A request head was read: the body and the response are timed by their own limits.
pub fn head_read(session: &Session) {
    if let Some(clock) = session.stream().and_then(HeadDeadline::clock_of) {
        clock.disarm();
    }
}

/// A response ended: the next head on this connection is due within the deadline again.
pub fn response_done(session: &Session) {
    if let Some(clock) = session.stream().and_then(HeadDeadline::clock_of) {
        clock.arm();
    }
}
