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
