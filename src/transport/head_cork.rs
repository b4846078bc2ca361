//! Sends a request head together with the first bytes of its body.
//!
//! Pingora writes and flushes the request head, then writes the body, and an upstream
//! connection has no write buffer: every POST went out as two TCP segments from two `sendto`
//! calls (measured under `json_max`: 3 sends per proxied request where 2 do the job), and the
//! upstream's first read often got the head alone. [`HeadCork`] holds a head that announces a
//! body (and asks for no `100 Continue`) until the body's first write, then sends both with one
//! vectored write. Body bytes are never held: a write that carries them returns only once they
//! are in the socket, so nothing waits on a flush that may never come.
//!
//! A head held for a body that never comes is never sent. The socket counts the request as
//! written when the head is held, so such a connection (or one dropped with the head half
//! sent) is never reused, and the response deadline still runs.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;

/// Larger heads are written as they come (no copy).
const MAX_HELD: usize = 16 << 10;

/// A request head waiting for its body's first bytes (see the module docs).
#[derive(Debug, Default)]
pub struct HeadCork {
    held: Vec<u8>,
}

impl HeadCork {
    /// Keeps `buf` when it is one whole request head announcing a body; `false` leaves it to
    /// the caller to write.
    pub fn hold(&mut self, buf: &[u8]) -> bool {
        if !self.held.is_empty() || buf.len() > MAX_HELD || !announces_body(buf) {
            return false;
        }
        self.held.extend_from_slice(buf);
        true
    }

    /// A head is waiting.
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Writes what is held, then `buf`; returns how much of `buf` went out. With nothing
    /// held this is `io.poll_write(buf)`.
    pub fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        mut io: Pin<&mut W>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        while !self.held.is_empty() {
            let parts = [IoSlice::new(&self.held), IoSlice::new(buf)];
            let n = ready!(io.as_mut().poll_write_vectored(cx, &parts))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n < self.held.len() {
                self.held.drain(..n);
                continue;
            }
            let of_buf = n - self.held.len();
            self.held = Vec::new();
            if of_buf > 0 || buf.is_empty() {
                return Poll::Ready(Ok(of_buf));
            }
        }
        io.poll_write(cx, buf)
    }
}

/// `head` is exactly one HTTP/1.1 request head whose request has a body (a non-zero
/// `Content-Length`, or a `Transfer-Encoding`), and no `Expect` (a client waiting for
/// `100 Continue` must not wait on the proxy instead).
pub fn announces_body(head: &[u8]) -> bool {
    // Built once: a searcher built per call cost more than the search (perf, json_rate).
    static HEAD_END: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
    let Some(end) = HEAD_END.find(head) else {
        return false;
    };
    if end + 4 != head.len() {
        return false;
    }
    let mut body = false;
    for line in head[..end].split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"expect") {
            return false;
        }
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            body = true;
        }
        // Pingora takes a list (`0, 0`) when its values agree: a body only if one is not 0.
        if name.eq_ignore_ascii_case(b"content-length")
            && value
                .split(|&b| b == b',')
                .any(|v| v.trim_ascii().iter().any(|&b| b != b'0'))
        {
            body = true;
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    const POST: &[u8] = b"POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";

    #[test]
    fn heads_with_a_body_are_recognised() {
        assert!(announces_body(POST));
        assert!(announces_body(
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        ));
        assert!(announces_body(
            b"POST / HTTP/1.1\r\ncontent-length:10\r\n\r\n"
        ));
        assert!(announces_body(
            b"POST / HTTP/1.1\r\ncontent-length: 7, 7\r\n\r\n"
        ));
    }

    #[test]
    fn heads_without_a_body_or_waiting_for_continue_are_not() {
        for head in [
            &b"GET /mcp HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            // Regression (review): Pingora frames `0, 0` as no body; holding it hung the request.
            b"GET / HTTP/1.1\r\nContent-Length: 0, 0\r\n\r\n",
            b"DELETE / HTTP/1.1\r\ncontent-length: 00,0\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
            // Not exactly one head: the body is already in the write, or the head is partial.
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
            b"POST / HTTP/1.1\r\nContent-Length: 2\r\n",
            b"",
        ] {
            assert!(!announces_body(head), "{}", String::from_utf8_lossy(head));
        }
    }

    /// Records each write call; accepts at most `limit` bytes per call, and is pending on
    /// every other call when `flaky`.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        limit: usize,
        flaky: bool,
        calls: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.calls += 1;
            if this.flaky && this.calls % 2 == 1 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len().min(this.limit);
            this.writes.push(all[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Writes all of `buf` through the cork, as `write_all` would.
    fn write_all(cork: &mut HeadCork, io: &mut Recorder, mut buf: &[u8]) {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        while !buf.is_empty() {
            if let Poll::Ready(n) = cork.poll_write(Pin::new(io), &mut cx, buf) {
                buf = &buf[n.unwrap()..];
            }
        }
    }

    #[test]
    fn the_head_goes_out_with_the_first_body_bytes_in_one_write() {
        let (mut cork, mut io) = (
            HeadCork::default(),
            Recorder {
                limit: usize::MAX,
                ..Default::default()
            },
        );
        assert!(cork.hold(POST));
        assert!(io.writes.is_empty());
        write_all(&mut cork, &mut io, b"hello");
        assert_eq!(io.writes, vec![[POST, b"hello"].concat()]);
        assert!(!cork.holding());
        // The next request's head is held again; one without a body is not.
        assert!(cork.hold(POST));
        write_all(&mut cork, &mut io, b"12345");
        assert!(!cork.hold(b"GET / HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn partial_and_pending_writes_keep_every_byte_in_order() {
        for limit in [1, 3, POST.len() - 1, POST.len(), POST.len() + 2] {
            let mut io = Recorder {
                limit,
                flaky: true,
                ..Default::default()
            };
            let mut cork = HeadCork::default();
            assert!(cork.hold(POST));
            write_all(&mut cork, &mut io, b"hello");
            write_all(&mut cork, &mut io, b" world");
            let sent: Vec<u8> = io.writes.concat();
            assert_eq!(sent, [POST, b"hello world"].concat(), "limit {limit}");
        }
    }
}
