//! An upstream response body, read piece by piece as the upstream sends it: the idle deadline,
//! and, for a session SSE stream the proxy holds, the resumption of a stream whose upstream
//! connection died. No Pingora here: the exchange (`proxy::reverse::exchange`) and the task
//! that keeps a detached stream read both pull from it.
//!
//! Each [`Piece::Data`] is one read of the upstream's body as the HTTP client decoded it
//! (chunk framing removed), handed on whole and alone: the proxy writes it downstream before it
//! asks for the next one, so two upstream writes never leave merged into one.
//!
//! **Resumption.** When the connection under a resumable stream fails mid-body (reset, or
//! closed before the body's end), the stream's owner is asked for the request that resumes it
//! upstream (`GET` with the upstream's `Last-Event-ID`, built after the first read by the
//! same `upstream_request_filter` every upstream request goes through). It is sent through the
//! same client after 0, 250 ms and 1 s; a `200 text/event-stream` answer continues the body
//! (the half event the dead connection left is dropped: it comes again whole), anything else
//! ends it as failed, and the client is told to reconnect.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::upstream_client::{RequestBody, UpstreamClient};

/// Waits before each resumption attempt.
const BACKOFF: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(250),
    Duration::from_secs(1),
];

/// A stream that can be resumed upstream after its connection died.
pub trait Resumable: Send + Sync {
    /// The request that resumes the stream from the last event held (`None`: it cannot be
    /// resumed, e.g. its events carried no upstream ids).
    fn reopen_request(&self) -> Option<http::Request<RequestBody>>;
    /// The connection died: the half event it left will come again, whole.
    fn discard_partial(&self);
}

/// What the body gave.
#[derive(Debug)]
pub enum Piece {
    /// One upstream read (never empty).
    Data(Bytes),
    /// The last upstream read: the body ended with it (its length was known, so no further
    /// read is needed to see the end). A JSON response's bytes and its end are one piece.
    Last(Bytes),
    /// The body ended as the upstream framed it.
    End,
    /// Nothing for `timeouts.idle_stream`.
    Idle,
    /// The upstream failed mid-body and the stream was not resumed.
    Failed(String),
}

/// One upstream response body (see the module docs).
pub struct UpstreamBody {
    body: Incoming,
    idle: Duration,
    resume: Option<(UpstreamClient, std::sync::Arc<dyn Resumable>)>,
    /// A failed read that [`UpstreamBody::ready`] saw, left for [`UpstreamBody::next`] (which
    /// resumes or reports it): hyper's body gives an error once.
    failed: Option<hyper::Error>,
    /// A read [`UpstreamBody::ends_now`] found instead of the end, for the next call.
    held: Option<Piece>,
    /// Resumptions so far (the metric).
    pub resumed: u32,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("idle", &self.idle)
            .field("resumable", &self.resume.is_some())
            .finish()
    }
}

impl UpstreamBody {
    pub fn new(body: Incoming, idle: Duration) -> Self {
        Self {
            body,
            idle,
            resume: None,
            failed: None,
            held: None,
            resumed: 0,
        }
    }

    /// Resumed through `client` when its connection dies (a session stream the proxy holds).
    pub fn resumable(
        mut self,
        client: UpstreamClient,
        stream: std::sync::Arc<dyn Resumable>,
    ) -> Self {
        self.resume = Some((client, stream));
        self
    }

    /// Did the upstream already end the body (nothing to read)?
    pub fn is_end(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.body)
    }

    /// The next piece, if it is already here (a JSON response, or a short SSE response, often
    /// comes with its head). hyper's body is a channel its connection task fills once the body
    /// is asked for: the first poll asks, one turn of the scheduler lets that task hand over a
    /// read already received, and nothing more is waited for.
    pub async fn ready(&mut self) -> Option<Piece> {
        if let Some(piece) = self.ready_now() {
            return Some(piece);
        }
        if self.failed.is_some() {
            return None;
        }
        tokio::task::yield_now().await;
        self.ready_now()
    }

    /// After a read that did not end the body: has its end come with it (a short SSE response
    /// sent whole)? Looks as [`UpstreamBody::ready`] does; a read found instead is kept, whole
    /// and alone, for the next call.
    pub async fn ends_now(&mut self) -> bool {
        match self.ready().await {
            Some(Piece::End) => true,
            Some(piece) => {
                self.held = Some(piece);
                false
            }
            None => false,
        }
    }

    /// The next piece if the body has it now.
    fn ready_now(&mut self) -> Option<Piece> {
        use futures_util::FutureExt;
        if let Some(piece) = self.held.take() {
            return Some(piece);
        }
        if self.failed.is_some() {
            return None;
        }
        // Unconstrained: a task out of tokio's budget would see a ready read as pending.
        let frame = tokio::task::unconstrained(self.body.frame()).now_or_never()?;
        match frame {
            None => Some(Piece::End),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => Some(self.data(data)),
                // Trailers or an empty frame: read on as usual.
                _ => None,
            },
            // Failures (and resumption) go through `next`.
            Some(Err(e)) => {
                self.failed = Some(e);
                None
            }
        }
    }

    /// The next piece. Cancel-safe while it waits for the upstream (not while it resumes a
    /// stream: keep the future across a `select!` rather than dropping it).
    pub async fn next(&mut self) -> Piece {
        if let Some(piece) = self.held.take() {
            return piece;
        }
        loop {
            let frame = match self.failed.take() {
                Some(e) => Some(Err(e)),
                None => match tokio::time::timeout(self.idle, self.body.frame()).await {
                    Err(_) => return Piece::Idle,
                    Ok(frame) => frame,
                },
            };
            match frame {
                None => return Piece::End,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return self.data(data);
                        }
                    }
                }
                Some(Err(e)) => match self.resume().await {
                    Some(body) => {
                        self.body = body;
                        self.resumed += 1;
                    }
                    None => return Piece::Failed(e.to_string()),
                },
            }
        }
    }

    /// A read, marked last when the body is done with it.
    fn data(&self, data: Bytes) -> Piece {
        match self.is_end() {
            true => Piece::Last(data),
            false => Piece::Data(data),
        }
    }

    /// Resumes the stream upstream (see the module docs); `None` when it cannot be.
    async fn resume(&mut self) -> Option<Incoming> {
        let (client, stream) = self.resume.as_ref()?;
        for delay in BACKOFF {
            tokio::time::sleep(delay).await;
            let request = stream.reopen_request()?;
            match client.send(request).await {
                Ok(resp) if is_event_stream(&resp) => {
                    stream.discard_partial();
                    tracing::debug!("upstream SSE stream resumed after its connection died");
                    return Some(resp.into_body());
                }
                Ok(resp) => {
                    tracing::debug!(status = %resp.status(), "upstream did not resume the stream");
                    return None;
                }
                // Not reached, or failed before answering: the next attempt.
                Err(e) => tracing::debug!(error = %e, "resuming an upstream SSE stream"),
            }
        }
        None
    }
}

/// `200` with `Content-Type: text/event-stream`.
fn is_event_stream(resp: &http::Response<Incoming>) -> bool {
    resp.status() == http::StatusCode::OK && crate::mcp::headers::is_event_stream(resp.headers())
}

#[cfg(test)]
mod tests;
