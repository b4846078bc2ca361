use super::*;

const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

fn chunk(payload: &str) -> String {
    format!("{:x}\r\n{payload}\r\n", payload.len())
}

/// Feeds `input` whole and one byte at a time; both observers must agree on every query.
fn both(input: &[u8]) -> ResponseFraming {
    let mut whole = ResponseFraming::new();
    whole.request_written();
    whole.observe(input);
    let mut bytewise = ResponseFraming::new();
    bytewise.request_written();
    for b in input {
        bytewise.observe(std::slice::from_ref(b));
    }
    assert_eq!(whole.state, bytewise.state);
    assert_eq!(whole.awaiting_head(), bytewise.awaiting_head());
    assert_eq!(whole.keepalive_injection(), bytewise.keepalive_injection());
    whole
}

#[test]
fn awaits_a_head_after_a_request() {
    let mut f = ResponseFraming::new();
    assert!(!f.awaiting_head(), "idle in the pool: nothing is due");
    f.request_written();
    assert!(f.awaiting_head());
    f.observe(b"HTTP/1.1 200 OK\r\ncontent-le");
    assert!(f.awaiting_head());
    f.observe(b"ngth: 2\r\n\r\n{}");
    assert!(!f.awaiting_head());
    assert_eq!(f.state, State::Head);
}

#[test]
fn chunked_sse_injects_only_between_events_and_chunks() {
    let f = both(SSE_HEAD.as_bytes());
    assert!(f.in_sse_body());
    assert_eq!(f.keepalive_injection(), Some(CHUNKED_KEEPALIVE));
    let f = both(format!("{SSE_HEAD}{}", chunk("data: a\n\n")).as_bytes());
    assert_eq!(f.keepalive_injection(), Some(CHUNKED_KEEPALIVE));
    let f = both(format!("{SSE_HEAD}{}", chunk("data: a\r\n\r\n")).as_bytes());
    assert_eq!(f.keepalive_injection(), Some(CHUNKED_KEEPALIVE));
    // Mid-event: the chunk ended but the event did not.
    let f = both(format!("{SSE_HEAD}{}", chunk("data: half")).as_bytes());
    assert_eq!(f.keepalive_injection(), None);
    // Mid-chunk: the size line said more is coming.
    let f = both(format!("{SSE_HEAD}10\r\ndata: a\n\n").as_bytes());
    assert_eq!(f.keepalive_injection(), None);
}

#[test]
fn injected_bytes_are_a_valid_chunk() {
    let mut f = both(format!("{SSE_HEAD}{}", chunk("data: a\n\n")).as_bytes());
    let inject = f.keepalive_injection().unwrap();
    f.observe(inject);
    assert_eq!(
        f.keepalive_injection(),
        Some(CHUNKED_KEEPALIVE),
        "still between chunks and events"
    );
    f.observe(chunk("data: b\n\n").as_bytes());
    f.observe(b"0\r\n\r\n");
    assert_eq!(f.state, State::Head);
    assert!(!f.in_sse_body());
}

#[test]
fn close_delimited_sse_injects_raw_comments() {
    let f = both(b"HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream\r\n\r\ndata: x\n\n");
    assert_eq!(f.keepalive_injection(), Some(RAW_KEEPALIVE));
}

#[test]
fn json_and_length_delimited_bodies_never_inject() {
    let f = both(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
    );
    assert!(!f.in_sse_body());
    assert_eq!(f.keepalive_injection(), None);
    let f = both(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 100\r\n\r\ndata: x\n\n");
    assert!(f.in_sse_body());
    assert_eq!(f.keepalive_injection(), None);
    let f = both(b"HTTP/1.1 404 Not Found\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n");
    assert!(!f.in_sse_body(), "only 2xx streams");
}

#[test]
fn many_responses_on_one_connection() {
    let mut input = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n".to_vec();
    input.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
    input.extend_from_slice(
        format!(
            "{SSE_HEAD}{}0\r\nx-trailer: 1\r\n\r\n",
            chunk("data: a\n\n")
        )
        .as_bytes(),
    );
    input.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
    let f = both(&input);
    assert_eq!(f.state, State::Head);
    assert!(!f.awaiting_head());
}

#[test]
fn interim_responses_keep_the_head_due() {
    let f = both(b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(f.awaiting_head());
}

#[test]
fn garbage_goes_opaque_and_stays_quiet() {
    let f = both(b"NOT HTTP\r\n\r\n");
    assert_eq!(f.state, State::Opaque);
    assert!(!f.awaiting_head());
    let f = both(format!("{SSE_HEAD}zz\r\n").as_bytes());
    assert_eq!(f.state, State::Opaque);
    assert_eq!(f.keepalive_injection(), None);
    let mut f = ResponseFraming::new();
    f.request_written();
    f.observe(&vec![b'a'; MAX_HEAD + 1]);
    assert_eq!(f.state, State::Opaque);
}

#[test]
fn reusable_only_between_complete_exchanges() {
    let mut f = ResponseFraming::new();
    assert!(f.reusable());
    f.request_written();
    assert!(!f.reusable(), "a response is pending");
    f.observe(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{");
    assert!(!f.reusable(), "mid-body");
    f.observe(b"}");
    assert!(f.reusable());
    f.request_written();
    f.observe(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    assert!(!f.reusable(), "the server said it closes");
    let mut old = ResponseFraming::new();
    old.request_written();
    old.observe(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n");
    assert!(!old.reusable(), "HTTP/1.0 closes by default");
    let mut sse = ResponseFraming::new();
    sse.request_written();
    sse.observe(format!("{SSE_HEAD}{}", chunk("data: a\n\n")).as_bytes());
    assert!(!sse.reusable(), "a stream cut mid-way");
}

/// Splits `input` into two reads at every position; every split must end where one read does.
fn every_split(input: &[u8]) -> ResponseFraming {
    let whole = both(input);
    for at in 0..=input.len() {
        let mut f = ResponseFraming::new();
        f.request_written();
        f.observe(&input[..at]);
        f.observe(&input[at..]);
        assert_eq!(f.state, whole.state, "split at {at}");
        assert_eq!(f.tail[..f.tail_len], whole.tail[..whole.tail_len]);
        assert_eq!(f.keepalive_injection(), whole.keepalive_injection());
    }
    whole
}

#[test]
fn chunk_boundaries_anywhere_give_the_same_answers() {
    let body = [
        chunk("data: a\n"),
        chunk("\n"),
        "5;ext=1\r\ndata:\r\n".into(),
        chunk(" b\r\n\r\n"),
    ]
    .concat();
    let f = every_split(format!("{SSE_HEAD}{body}").as_bytes());
    assert_eq!(f.keepalive_injection(), Some(CHUNKED_KEEPALIVE));
    // The same events, but the stream stops inside a size line / a CRLF / an event.
    for cut in ["7", "7\r", "7\r\ndata: a", "7\r\ndata: a\n\r"] {
        let f = every_split(format!("{SSE_HEAD}{cut}").as_bytes());
        assert_eq!(f.keepalive_injection(), None, "after {cut:?}");
    }
}

#[test]
fn lone_cr_events_are_boundaries() {
    let f = every_split(format!("{SSE_HEAD}{}", chunk("data: a\r\r")).as_bytes());
    assert_eq!(f.keepalive_injection(), Some(CHUNKED_KEEPALIVE));
    let f = every_split(format!("{SSE_HEAD}{}", chunk("data: a\r\n")).as_bytes());
    assert_eq!(
        f.keepalive_injection(),
        None,
        "one line ended, not the event"
    );
}

#[test]
fn injection_changes_nothing_but_the_moment() {
    let mut f = every_split(format!("{SSE_HEAD}{}", chunk("data: a\n\n")).as_bytes());
    let (state, awaiting, sse) = (f.state, f.awaiting, f.sse);
    f.observe(CHUNKED_KEEPALIVE);
    assert_eq!((f.state, f.awaiting, f.sse), (state, awaiting, sse));
    let mut raw = every_split(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n");
    raw.observe(RAW_KEEPALIVE);
    assert_eq!(raw.state, State::Close);
    assert_eq!(raw.keepalive_injection(), Some(RAW_KEEPALIVE));
}

#[test]
fn no_body_statuses_and_continue() {
    let f =
        every_split(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n");
    assert_eq!(f.state, State::Length(3), "100 then the real head");
    assert!(!f.awaiting_head());
    let f = every_split(b"HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\n\r\n");
    assert_eq!(f.state, State::Head, "304 has no body whatever it says");
    let f = every_split(b"HTTP/1.1 204 No Content\r\ncontent-type: text/event-stream\r\n\r\n");
    assert!(!f.in_sse_body());
}

#[test]
fn upgrades_and_non_chunked_codings_are_not_followed_as_http() {
    let f = both(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n\x81\x05hello");
    assert_eq!(f.state, State::Opaque);
    assert!(
        !f.awaiting_head(),
        "no response-head deadline on an upgraded connection"
    );
    let f = both(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ncontent-length: 5\r\n\r\nab");
    assert_eq!(f.state, State::Close, "RFC 9112: read until close");
    let f = both(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nCONTENT-TYPE: text/event-stream; charset=utf-8\r\n\r\n",
    );
    assert_eq!(f.keepalive_injection(), Some(CHUNKED_KEEPALIVE));
}

#[test]
fn heads_up_to_the_limit_only() {
    let head = |filler: usize| {
        let mut h = b"HTTP/1.1 200 OK\r\nx-pad: ".to_vec();
        h.resize(h.len() + filler, b'a');
        h.extend_from_slice(b"\r\ncontent-length: 0\r\n\r\n");
        h
    };
    let fits = head(MAX_HEAD - 64);
    let mut f = ResponseFraming::new();
    f.request_written();
    f.observe(&fits);
    assert_eq!(f.state, State::Head);
    assert!(!f.awaiting_head());
    assert!(f.head.capacity() <= 4096, "the big head buffer is released");
    let too_big = head(MAX_HEAD);
    let mut f = ResponseFraming::new();
    f.request_written();
    for part in too_big.chunks(1000) {
        f.observe(part);
    }
    assert_eq!(f.state, State::Opaque);
    assert!(f.head.len() <= MAX_HEAD);
}

#[test]
fn bad_framing_inside_bodies_goes_opaque() {
    for body in ["5\r\ndata:X\r\n", "\r\n", "5\r\nabcde\n"] {
        let f = both(format!("{SSE_HEAD}{body}").as_bytes());
        assert_eq!(f.state, State::Opaque, "{body:?}");
        assert_eq!(f.keepalive_injection(), None);
    }
    let f = both(b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n");
    assert_eq!(f.state, State::Opaque);
}

#[test]
fn size_lines_need_digits_and_a_line_end() {
    for body in ["\r\n", ";x\r\n", "5\rX", "g\r\n"] {
        let f = both(format!("{SSE_HEAD}{body}").as_bytes());
        assert_eq!(f.state, State::Opaque, "{body:?}");
    }
    let f = every_split(format!("{SSE_HEAD}9 ; a=b\r\ndata: a\n\n\r\n0\r\n\r\n").as_bytes());
    assert_eq!(f.state, State::Head, "whitespace before an extension");
}
