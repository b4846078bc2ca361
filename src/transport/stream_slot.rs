//! Where an upstream SSE body goes when the proxy holds the stream itself (resumable session
//! streams), taken from the socket as it is read.
//!
//! Taking the payload in the socket, not in `response_body_filter`, is what makes the replay
//! buffer complete: Pingora reads ahead of what it has handed to the filters, so when a client
//! disconnects, bytes already read from the upstream would be lost with Pingora's session.
//! Here every payload byte is handed over exactly once, at the moment it is read.
//!
//! Each request gets its own slot (through a per-request connector). The socket offers every
//! SSE body's payload to it; the proxy decides in `response_filter` whether it wants the body
//! ([`StreamSlot::claim`]): bytes read before that are kept (the head and the first events
//! often come in one read) and handed over at the claim, or dropped when the proxy declines.
//! When the client goes away mid-stream, the socket is not closed: [`detach`] keeps reading
//! it into the sink for the sink's grace period, so the upstream is not told to stop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::h1_framing::ResponseFraming;

/// Most payload kept while the proxy has not yet claimed or declined a body.
const UNCLAIMED_MAX: usize = 1 << 20;

/// Takes an upstream SSE body's payload.
pub trait PayloadSink: Send + Sync {
    /// The next payload bytes, in order.
    fn payload(&self, bytes: &[u8]);
    /// The body ended: `clean` when the upstream finished it, not when it failed.
    fn body_end(&self, clean: bool);
    /// How long to keep reading after the client went away.
    fn detached_grace(&self) -> Duration;
    /// The request that resumes the stream upstream after its connection died (with the
    /// upstream's `Last-Event-ID`), when the stream can be resumed.
    fn reopen_request(&self) -> Option<Vec<u8>> {
        None
    }
    /// The connection died: the half event it left will come again, whole.
    fn discard_partial(&self) {}
}

#[derive(Default)]
enum State {
    /// No SSE body yet.
    #[default]
    Idle,
    /// An SSE body is arriving (or, `ended`, has arrived whole: a short response often comes
    /// in one read) and the proxy has not said whether it wants it.
    Unclaimed {
        bytes: BytesMut,
        ended: Option<bool>,
    },
    Claimed(Arc<dyn PayloadSink>),
    Declined,
}

/// One request's SSE body destination (see the module docs).
#[derive(Default)]
pub struct StreamSlot {
    state: Mutex<State>,
}

impl std::fmt::Debug for StreamSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamSlot")
    }
}

impl StreamSlot {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The proxy wants this body (`Some`): what arrived so far is handed over now, the rest as
    /// it is read. `None`: it does not; nothing is kept.
    pub fn claim(&self, sink: Option<Arc<dyn PayloadSink>>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let (earlier, ended) = match std::mem::take(&mut *state) {
            State::Unclaimed { bytes, ended } => (Some(bytes), ended),
            _ => (None, None),
        };
        *state = match sink {
            Some(sink) => {
                if let Some(bytes) = earlier.filter(|b| !b.is_empty()) {
                    sink.payload(&bytes);
                }
                match ended {
                    Some(clean) => {
                        sink.body_end(clean);
                        State::Idle
                    }
                    None => State::Claimed(sink),
                }
            }
            None => State::Declined,
        };
    }

    /// The claimed sink, if any.
    pub fn sink(&self) -> Option<Arc<dyn PayloadSink>> {
        match &*self.state.lock().ok()? {
            State::Claimed(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The socket read SSE body payload.
    pub fn on_payload(&self, bytes: &[u8]) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        match &mut *state {
            State::Idle => {
                *state = State::Unclaimed {
                    bytes: BytesMut::from(bytes),
                    ended: None,
                };
            }
            State::Unclaimed { bytes: held, .. } => {
                if held.len() + bytes.len() > UNCLAIMED_MAX {
                    // Never claimed in time: not a body the proxy holds.
                    *state = State::Declined;
                } else {
                    held.extend_from_slice(bytes);
                }
            }
            State::Claimed(sink) => sink.payload(bytes),
            State::Declined => {}
        }
    }

    /// The SSE body ended (cleanly or not).
    pub fn on_body_end(&self, clean: bool) {
        if let Ok(mut state) = self.state.lock() {
            match &mut *state {
                State::Claimed(sink) => {
                    sink.body_end(clean);
                    *state = State::Idle;
                }
                // Kept for the claim.
                State::Unclaimed { ended, .. } => *ended = Some(clean),
                _ => {}
            }
        }
    }
}

/// Keeps reading a claimed SSE body whose client went away, for the sink's grace period, then
/// closes the connection. Called from the socket's `Drop` (so it spawns; it must not block).
pub fn detach(tcp: TcpStream, mut framing: ResponseFraming, sink: Arc<dyn PayloadSink>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        sink.body_end(false);
        return;
    };
    let grace = sink.detached_grace();
    runtime.spawn(async move {
        let mut tcp = tcp;
        let mut buf = vec![0u8; 16 * 1024];
        let read_all = async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => {
                        framing.observe_with(&buf[..n], &mut |p| sink.payload(p));
                        if !framing.in_sse_body() {
                            return true;
                        }
                    }
                }
            }
        };
        let clean = tokio::time::timeout(grace, read_all).await.unwrap_or(false);
        sink.body_end(clean);
        tracing::debug!(clean, "detached upstream SSE stream ended");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<(Vec<u8>, Option<bool>)>);

    impl PayloadSink for Collect {
        fn payload(&self, bytes: &[u8]) {
            self.0.lock().unwrap().0.extend_from_slice(bytes);
        }
        fn body_end(&self, clean: bool) {
            self.0.lock().unwrap().1 = Some(clean);
        }
        fn detached_grace(&self) -> Duration {
            Duration::from_secs(1)
        }
    }

    #[test]
    fn bytes_before_the_claim_are_handed_over_at_it() {
        let slot = StreamSlot::new();
        slot.on_payload(b"data: 1\n\n");
        let sink = Arc::new(Collect::default());
        slot.claim(Some(sink.clone()));
        slot.on_payload(b"data: 2\n\n");
        slot.on_body_end(true);
        let got = sink.0.lock().unwrap();
        assert_eq!(&got.0[..], b"data: 1\n\ndata: 2\n\n");
        assert_eq!(got.1, Some(true));
    }

    /// Regression: a whole short SSE response read at once (before the proxy's claim) was
    /// dropped at its end, so the client got an empty body.
    #[test]
    fn regression_a_body_that_ended_before_the_claim_is_handed_over_whole() {
        let slot = StreamSlot::new();
        slot.on_payload(b"data: only\n\n");
        slot.on_body_end(true);
        let sink = Arc::new(Collect::default());
        slot.claim(Some(sink.clone()));
        let got = sink.0.lock().unwrap();
        assert_eq!(&got.0[..], b"data: only\n\n");
        assert_eq!(got.1, Some(true));
    }

    #[test]
    fn a_declined_body_keeps_nothing() {
        let slot = StreamSlot::new();
        slot.on_payload(b"data: 1\n\n");
        slot.claim(None);
        slot.on_payload(b"data: 2\n\n");
        assert!(slot.sink().is_none());
        assert!(matches!(*slot.state.lock().unwrap(), State::Declined));
    }
}
