//! JSON-RPC request bodies: read whole before any upstream contact, always within
//! `limits.max_body` and `limits.body_total_timeout`.
//!
//! The proxy holds every request body before it chooses an upstream: the JSON-RPC id for an
//! error reply, the method label, the judge and the interceptor rules all read it there, and
//! the upstream exchange (`exchange.rs`) sends the held bytes with their own length. A body
//! over `max_body` is refused with 413, at once when its `Content-Length` says so, else as
//! soon as the count passes the limit. MCP messages are small; holding them costs at most
//! `max_body` per request in flight, the bound an operator sets.

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::ctx::RequestCtx;

/// Is the declared length already past the limit (refused without reading)?
pub fn declared_too_large(content_length: Option<u64>, max_body: u64) -> bool {
    content_length.is_some_and(|n| n > max_body)
}

/// The request's declared `Content-Length`, if any and well-formed. A value Pingora accepts
/// repeated (`40, 40`, or two equal lines) is that one value.
pub fn content_length(session: &Session) -> Option<u64> {
    declared_length(
        session
            .req_header()
            .headers
            .get_all(http::header::CONTENT_LENGTH),
    )
}

fn declared_length(values: http::header::GetAll<'_, http::HeaderValue>) -> Option<u64> {
    let mut length = None;
    for item in values
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
    {
        let n: u64 = std::str::from_utf8(item.trim_ascii()).ok()?.parse().ok()?;
        if length.is_some_and(|l| l != n) {
            return None;
        }
        length = Some(n);
    }
    length
}

/// Reads the whole body, within `max_body` (413 past it). The whole read is bounded by `total` (`limits.body_total_timeout`), however the client
/// trickles it: a body held before any upstream contact is the same slow-client exposure as a
/// request head.
///
/// `peek`: the body is a JSON-RPC message (a POST) and is peeked for the method, the id and
/// the judge; a body on another method (forwarded only when no policy is on) is just held.
pub async fn read_whole(
    session: &mut Session,
    ctx: &mut RequestCtx,
    max_body: u64,
    total: std::time::Duration,
    peek: bool,
) -> Result<()> {
    match tokio::time::timeout(total, read_all(session, ctx, max_body, peek)).await {
        Ok(read) => read,
        Err(_) => Err(Error::explain(
            ErrorType::ReadTimedout,
            "request body not complete within limits.body_total_timeout",
        )
        .into_down()),
    }
}

async fn read_all(
    session: &mut Session,
    ctx: &mut RequestCtx,
    max_body: u64,
    peek: bool,
) -> Result<()> {
    // Pingora does not answer `Expect: 100-continue`: a client waiting for it would stall.
    let expects = session.req_header().headers.get(http::header::EXPECT);
    if expects.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")) {
        session
            .write_continue_response()
            .await
            .map_err(|e| e.into_down())?;
    }
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut len = 0u64;
    // A read failure here is the client's (slow, truncated or gone): mark it so, or it would
    // be classified as the proxy's own fault.
    while let Some(chunk) = session
        .read_request_body()
        .await
        .map_err(|e| e.into_down())?
    {
        len += chunk.len() as u64;
        if len > max_body {
            return Error::e_explain(
                ErrorType::HTTPStatus(413),
                "request body over limits.max_body",
            );
        }
        match &first {
            None => first = Some(chunk),
            Some(f) => {
                if rest.is_empty() {
                    rest.extend_from_slice(f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    let body = if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        rest.freeze()
    };
    match peek {
        true => ctx.set_body(body),
        false => ctx.body = Some(body),
    }
    // The body is in hand: an upstream must not wait to confirm it.
    session
        .req_header_mut()
        .remove_header(&http::header::EXPECT);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_length_is_one_length() {
        let mut headers = http::HeaderMap::new();
        let len = |h: &http::HeaderMap| declared_length(h.get_all(http::header::CONTENT_LENGTH));
        assert_eq!(len(&headers), None);
        headers.insert(http::header::CONTENT_LENGTH, "40, 40".parse().unwrap());
        assert_eq!(len(&headers), Some(40));
        headers.append(http::header::CONTENT_LENGTH, "40".parse().unwrap());
        assert_eq!(len(&headers), Some(40));
        headers.append(http::header::CONTENT_LENGTH, "41".parse().unwrap());
        assert_eq!(len(&headers), None);
        headers.insert(http::header::CONTENT_LENGTH, "x".parse().unwrap());
        assert_eq!(len(&headers), None);
    }

    #[test]
    fn only_a_declared_length_past_the_limit_is_refused_unread() {
        assert!(!declared_too_large(None, 10));
        assert!(!declared_too_large(Some(10), 10));
        assert!(declared_too_large(Some(11), 10));
    }
}
