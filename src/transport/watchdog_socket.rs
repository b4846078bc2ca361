//! The upstream socket: response deadline, SSE idle limit and SSE keep-alives, below Pingora.
//!
//! [`WatchdogSocket`] is what `transport::upstream_conn` hands Pingora for each upstream
//! request: a TCP connection that watches the HTTP/1.1 responses go by ([`ResponseFraming`])
//! and, while Pingora waits on a read:
//!
//! * fails the read with [`UpstreamTimeout::ResponseHeader`] when a response head is overdue
//!   (`timeouts.request` after the last request byte written), which the proxy answers with 504;
//! * fails it with [`UpstreamTimeout::IdleStream`] after `timeouts.idle_stream` of upstream
//!   silence on an SSE body;
//! * after `sse.keepalive` of silence on an SSE body, returns a `: keepalive` comment as if the
//!   upstream had sent it, but only between chunks and between events, so it cannot corrupt
//!   either. Pingora forwards it like any other body bytes.
//!
//!
//! It also sends the request head with the body's first bytes ([`HeadCork`]). While a
//! connection idles in the pool nothing is armed, so idle connections cost no timers.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pingora::protocols::l4::virt::{VirtualSockOpt, VirtualSocket};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::h1_framing::ResponseFraming;
use super::head_cork::HeadCork;
use super::idle_pool::IdlePool;
use super::stream_slot::{self, StreamSlot};
use super::upstream_conn::ConnPolicy;
use super::upstream_resume::{self, Reopened};
pub use super::upstream_timeout::UpstreamTimeout;

/// Reopenings of one upstream SSE body at most (each after the previous connection died).
const MAX_REOPEN: u8 = 5;

/// The reopening in progress (see `transport::upstream_resume`).
struct Reopening(Pin<Box<dyn Future<Output = io::Result<Reopened>> + Send + Sync>>);

impl std::fmt::Debug for Reopening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reopening")
    }
}

/// One upstream connection under watch.
#[derive(Debug)]
pub struct WatchdogSocket {
    /// `None` only after `Drop` handed it back to the pool.
    inner: Option<TcpStream>,
    /// Where a cleanly finished connection goes when Pingora drops it.
    pool: Option<Arc<IdlePool>>,
    /// `poll_shutdown` was called: the write side is closed, never reuse.
    shut: bool,
    policy: ConnPolicy,
    framing: ResponseFraming,
    /// When the response head became due (the request was written).
    head_due: Option<Instant>,
    /// Last byte the upstream itself sent.
    last_upstream: Instant,
    next_keepalive: Option<Instant>,
    sleep: Pin<Box<Sleep>>,
    /// Where a claimed SSE body goes (resumable session streams).
    slot: Option<Arc<StreamSlot>>,
    /// The upstream closed a claimed SSE body, which the socket then ended cleanly itself.
    ended: bool,
    /// The upstream's address, to reopen a claimed SSE body.
    peer: Option<std::net::SocketAddr>,
    /// A claimed SSE body being reopened after its connection died.
    reopening: Option<Reopening>,
    reopened: u8,
    /// Body bytes of the reopened response read with its head, still to hand to Pingora.
    pending: Vec<u8>,
    /// The request head, held for its body's first bytes (one segment, one syscall).
    cork: HeadCork,
    /// Pingora has written to this socket (it carries one request: the pool is ours).
    wrote: bool,
}

// === impl WatchdogSocket ===

impl WatchdogSocket {
    pub fn new(inner: TcpStream, mut policy: ConnPolicy) -> Self {
        // A zero period would spin in `poll_read` while no keep-alive fits.
        policy.keepalive = policy.keepalive.filter(|k| !k.is_zero());
        let now = Instant::now();
        Self {
            inner: Some(inner),
            pool: None,
            shut: false,
            policy,
            framing: ResponseFraming::new(),
            head_due: None,
            last_upstream: now,
            next_keepalive: None,
            sleep: Box::pin(tokio::time::sleep_until(now)),
            slot: None,
            ended: false,
            peer: None,
            reopening: None,
            reopened: 0,
            pending: Vec::new(),
            cork: HeadCork::default(),
            wrote: false,
        }
    }

    /// Offers SSE bodies to `slot` as they are read; `peer` is where to reopen them.
    pub fn with_slot(
        mut self,
        slot: Option<Arc<StreamSlot>>,
        peer: Option<std::net::SocketAddr>,
    ) -> Self {
        self.slot = slot;
        self.peer = peer;
        self
    }

    /// The upstream went away between two chunks of a claimed SSE body whose events had
    /// ids: starts reopening it (see `transport::upstream_resume`).
    fn start_reopen(&mut self) -> bool {
        let Some(sink) = self.slot.as_ref().and_then(|s| s.sink()) else {
            return false;
        };
        let (Some(peer), true, true) = (
            self.peer,
            self.framing.at_chunk_boundary(),
            self.reopened < MAX_REOPEN,
        ) else {
            return false;
        };
        let Some(request) = sink.reopen_request() else {
            return false;
        };
        sink.discard_partial();
        self.reopened += 1;
        self.inner = None;
        let connect = self.policy.connect;
        self.reopening = Some(Reopening(Box::pin(upstream_resume::reopen(
            peer, request, connect,
        ))));
        true
    }

    /// Feeds bytes to the observer and, for SSE bodies, their payload to the slot.
    fn observe(&mut self, bytes: &[u8]) {
        let was_sse = self.framing.in_sse_body();
        match &self.slot {
            Some(slot) => self
                .framing
                .observe_with(bytes, &mut |p| slot.on_payload(p)),
            None => self.framing.observe(bytes),
        }
        if was_sse && !self.framing.in_sse_body() {
            if let Some(slot) = &self.slot {
                slot.on_body_end(true);
            }
        }
    }

    /// The upstream went away in a claimed SSE body: the stream's sink learns it (and tells
    /// the client to reconnect), and Pingora gets a clean end of the body instead of an error.
    fn end_claimed_body(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let Some(slot) = self.slot.as_ref().filter(|s| s.sink().is_some()) else {
            return false;
        };
        let Some(end) = self.framing.clean_end_injection() else {
            return false;
        };
        if buf.remaining() < end.len() {
            return false;
        }
        slot.on_body_end(false);
        self.framing.observe(&end);
        buf.put_slice(&end);
        self.ended = true;
        true
    }

    /// Hands the connection to `pool` on drop when it ended cleanly between exchanges.
    pub fn returning_to(mut self, pool: Arc<IdlePool>) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The earliest armed deadline and what it is for.
    fn next_deadline(&self) -> Option<(Instant, Timer)> {
        let mut best: Option<(Instant, Timer)> = None;
        let mut consider = |at: Option<Instant>, what: Timer| {
            if let Some(at) = at {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, what));
                }
            }
        };
        if self.framing.awaiting_head() {
            consider(self.head_due.map(|t| t + self.policy.request), Timer::Head);
        }
        if self.framing.in_sse_body() {
            consider(
                Some(self.last_upstream + self.policy.idle_stream),
                Timer::Idle,
            );
            consider(self.next_keepalive, Timer::Keepalive);
        }
        best
    }

    fn on_upstream_bytes(&mut self, bytes: &[u8]) {
        self.observe(bytes);
        let now = Instant::now();
        self.last_upstream = now;
        if !self.framing.awaiting_head() {
            self.head_due = None;
        }
        self.next_keepalive = match (self.framing.in_sse_body(), self.policy.keepalive) {
            (true, Some(k)) => Some(now + k),
            _ => None,
        };
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Head,
    Idle,
    Keepalive,
}

impl AsyncRead for WatchdogSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(Ok(()));
        }
        if let Some(reopening) = this.reopening.as_mut() {
            let result = ready!(reopening.0.as_mut().poll(cx));
            this.reopening = None;
            match result {
                Ok((tcp, rest)) => {
                    this.inner = Some(tcp);
                    this.pending = rest;
                    this.last_upstream = Instant::now();
                }
                Err(e) => {
                    tracing::debug!(error = %e, "upstream SSE stream not reopened");
                    if this.end_claimed_body(buf) {
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Ready(Err(e));
                }
            }
        }
        if !this.pending.is_empty() {
            let n = this.pending.len().min(buf.remaining());
            let bytes: Vec<u8> = this.pending.drain(..n).collect();
            buf.put_slice(&bytes);
            this.on_upstream_bytes(&bytes);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        if let Poll::Ready(result) = Pin::new(tcp(&mut this.inner)?).poll_read(cx, buf) {
            let eof = matches!(result, Ok(())) && buf.filled().len() == before;
            if (result.is_err() || eof) && this.start_reopen() {
                return Pin::new(this).poll_read(cx, buf);
            }
            if (result.is_err() || eof) && this.end_claimed_body(buf) {
                return Poll::Ready(Ok(()));
            }
            result?;
            if buf.filled().len() > before {
                this.on_upstream_bytes(&buf.filled()[before..]);
            }
            return Poll::Ready(Ok(()));
        }
        loop {
            let Some((at, timer)) = this.next_deadline() else {
                return Poll::Pending;
            };
            if this.sleep.deadline() != at {
                this.sleep.as_mut().reset(at);
            }
            ready!(this.sleep.as_mut().poll(cx));
            match timer {
                Timer::Head => return Poll::Ready(Err(UpstreamTimeout::ResponseHeader.into_io())),
                Timer::Idle => return Poll::Ready(Err(UpstreamTimeout::IdleStream.into_io())),
                Timer::Keepalive => {
                    let next = this.policy.keepalive.map(|k| Instant::now() + k);
                    this.next_keepalive = next;
                    if let Some(bytes) = this.framing.keepalive_injection() {
                        if buf.remaining() >= bytes.len() {
                            buf.put_slice(bytes);
                            this.observe(bytes);
                            return Poll::Ready(Ok(()));
                        }
                    }
                    // Mid-event or mid-chunk: try again after another keep-alive period.
                }
            }
        }
    }
}

impl AsyncWrite for WatchdogSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Each socket carries one request (Pingora does not pool it), so its first write is the
        // request head and never body bytes that happen to look like one. The request counts
        // as written from here: a connection dropped with the head held or half sent is never
        // pooled, and the response deadline is armed even if the body never comes.
        if !std::mem::replace(&mut this.wrote, true) && this.cork.hold(buf) {
            this.framing.request_written();
            this.head_due = Some(Instant::now());
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(this
            .cork
            .poll_write(Pin::new(tcp(&mut this.inner)?), cx, buf))?;
        if n > 0 {
            this.framing.request_written();
            if this.framing.awaiting_head() {
                // The deadline runs from the last request byte: a slowly uploaded body is the
                // client's pace, not the upstream's.
                this.head_due = Some(Instant::now());
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A held head is not flushed: it goes with the body's first write, which Pingora makes
        // next (`HeadCork` never holds body bytes, so they are never behind a flush).
        Pin::new(tcp(&mut self.get_mut().inner)?).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.shut = true;
        Pin::new(tcp(&mut this.inner)?).poll_shutdown(cx)
    }
}

impl VirtualSocket for WatchdogSocket {
    fn set_socket_option(&self, opt: VirtualSockOpt) -> io::Result<()> {
        match opt {
            // Every socket here got TCP_NODELAY when it was connected (`connect_with`,
            // `upstream_resume`). Pingora asks again for each request, because a connection
            // from our pool is new to it: that was one `setsockopt` per request.
            VirtualSockOpt::NoDelay => Ok(()),
            // TCP keep-alive probes are not configured for upstreams; nothing to do.
            _ => Ok(()),
        }
    }
}

impl Drop for WatchdogSocket {
    fn drop(&mut self) {
        // The client went away from a claimed SSE body: keep reading it into its stream.
        let sink = self.slot.as_ref().and_then(|s| s.sink());
        if let (Some(sink), true, false) = (sink, self.framing.in_sse_body(), self.ended) {
            match self.inner.take() {
                Some(tcp) if self.pending.is_empty() => {
                    let framing = std::mem::take(&mut self.framing);
                    stream_slot::detach(tcp, framing, sink);
                }
                // Reopening, or bytes of a reopened body not yet read: the stream ends here,
                // and the client's reconnect resumes it upstream.
                _ => sink.body_end(false),
            }
            return;
        }
        if let (Some(pool), Some(tcp), false) = (&self.pool, self.inner.take(), self.shut) {
            if self.framing.reusable() {
                pool.put(tcp);
            }
        }
    }
}

/// The live socket (always there until `Drop`).
fn tcp(inner: &mut Option<TcpStream>) -> io::Result<&mut TcpStream> {
    inner
        .as_mut()
        .ok_or_else(|| io::ErrorKind::NotConnected.into())
}
#[cfg(test)]
#[path = "watchdog_socket_tests.rs"]
mod tests;
