//! JSON-RPC request bodies: read them before choosing an upstream when that is safe, or peek
//! at them as they stream through, always within `limits.max_body`.
//!
//! Pingora runs `request_body_filter` only after the request header went upstream, so anything
//! the proxy must know before contacting an upstream (the JSON-RPC id for an error reply, later
//! interceptor decisions) comes from reading the body in `request_filter`. That read needs
//! retry buffering (else the request hangs) and the retry buffer holds 64 KiB, so without
//! policy only bodies whose `Content-Length` fits are pre-read; larger or chunked bodies stream
//! through and are peeked when they end. **With policy** (rules, required scopes) every body
//! is read whole before any upstream contact, since a decision on a body the proxy has not
//! read is no decision: one that outgrew Pingora's retry buffer cannot be replayed by
//! Pingora's proxy loop and takes the direct exchange, which sends the held body itself. A
//! body over `max_body` is refused with 413 (at once when its `Content-Length` says so, else
//! as soon as the count passes the limit).

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::ctx::RequestCtx;

/// Pingora's retry buffer size: the most the proxy can read before choosing an upstream.
pub const PRE_READ_LIMIT: u64 = 64 * 1024;

/// How a POST body is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPlan {
    /// Known length within the pre-read limit: read it all now.
    PreRead,
    /// Unknown or larger length, no policy: stream it, count it, peek at the end.
    Stream,
    /// Unknown or larger length, policy active: read it all now, within `max_body`.
    ReadWhole,
    /// Declared larger than `max_body`: refuse without reading.
    TooLarge,
}

pub fn plan(content_length: Option<u64>, max_body: u64, policy: bool) -> BodyPlan {
    match content_length {
        Some(n) if n > max_body => BodyPlan::TooLarge,
        Some(n) if n <= PRE_READ_LIMIT => BodyPlan::PreRead,
        _ if policy => BodyPlan::ReadWhole,
        _ => BodyPlan::Stream,
    }
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

/// Reads the whole body, within `max_body` (413 past it). Pingora replays a body of up to
/// 64 KiB upstream from its retry buffer; a larger one is marked for the direct exchange.
/// The whole read is bounded by `total` (`limits.body_total_timeout`), however the client
/// trickles it: a body held before any upstream contact is the same slow-client exposure as a
/// request head.
pub async fn read_whole(
    session: &mut Session,
    ctx: &mut RequestCtx,
    max_body: u64,
    total: std::time::Duration,
) -> Result<()> {
    match tokio::time::timeout(total, read_all(session, ctx, max_body)).await {
        Ok(read) => read,
        Err(_) => Err(Error::explain(
            ErrorType::ReadTimedout,
            "request body not complete within limits.body_total_timeout",
        )
        .into_down()),
    }
}

async fn read_all(session: &mut Session, ctx: &mut RequestCtx, max_body: u64) -> Result<()> {
    session.enable_retry_buffering();
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
    ctx.set_body(body);
    ctx.body_unreplayable = session.retry_buffer_truncated();
    // The body is in hand: an upstream must not wait to confirm it.
    session
        .req_header_mut()
        .remove_header(&http::header::EXPECT);
    Ok(())
}

/// A chunk of a streamed body: count it, keep it for the final peek, refuse past the limit.
pub fn on_streamed_chunk(
    ctx: &mut RequestCtx,
    chunk: &Option<Bytes>,
    end_of_stream: bool,
    max_body: u64,
) -> Result<()> {
    if let Some(chunk) = chunk {
        ctx.streamed.len += chunk.len() as u64;
        if ctx.streamed.len > max_body {
            ctx.streamed.chunks.clear();
            return Error::e_explain(
                ErrorType::HTTPStatus(413),
                "request body over limits.max_body",
            );
        }
        ctx.streamed.chunks.push(chunk.clone());
    }
    if end_of_stream && !ctx.streamed.chunks.is_empty() {
        let chunks = std::mem::take(&mut ctx.streamed.chunks);
        let body = if chunks.len() == 1 {
            chunks.into_iter().next().unwrap_or_default()
        } else {
            let mut all = BytesMut::with_capacity(ctx.streamed.len as usize);
            chunks.iter().for_each(|c| all.extend_from_slice(c));
            all.freeze()
        };
        ctx.set_body(body);
    }
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
    fn plans_by_declared_length() {
        assert_eq!(plan(Some(100), 4096 * 1024, false), BodyPlan::PreRead);
        assert_eq!(
            plan(Some(PRE_READ_LIMIT), u64::MAX, false),
            BodyPlan::PreRead
        );
        assert_eq!(
            plan(Some(PRE_READ_LIMIT + 1), u64::MAX, false),
            BodyPlan::Stream
        );
        assert_eq!(plan(None, 10, false), BodyPlan::Stream);
        assert_eq!(plan(Some(11), 10, false), BodyPlan::TooLarge);
        // With policy nothing streams undecided.
        assert_eq!(
            plan(Some(PRE_READ_LIMIT + 1), u64::MAX, true),
            BodyPlan::ReadWhole
        );
        assert_eq!(plan(None, 10, true), BodyPlan::ReadWhole);
        assert_eq!(plan(Some(11), 10, true), BodyPlan::TooLarge);
    }
}
