use bytes::Bytes;
use proptest::prelude::*;

use super::*;

/// Feeds `chunks` and returns (raw event blocks, unterminated tail).
fn scan(chunks: &[&[u8]], max: usize) -> Result<(Vec<RawEvent>, Option<Bytes>), ScanError> {
    let mut scanner = SseScanner::new(max);
    let mut events = Vec::new();
    for chunk in chunks {
        scanner.feed(&Bytes::copy_from_slice(chunk), |e| events.push(e))?;
    }
    let tail = scanner.finish();
    Ok((events, tail))
}

/// The events a client would see: blocks with fields, parsed.
fn parsed(events: &[RawEvent]) -> Vec<SseEvent> {
    events
        .iter()
        .filter(|e| e.has_fields())
        .map(RawEvent::parse)
        .collect()
}

fn concat(events: &[RawEvent], tail: &Option<Bytes>) -> Vec<u8> {
    let mut out: Vec<u8> = events.iter().flat_map(|e| e.bytes().to_vec()).collect();
    if let Some(t) = tail {
        out.extend_from_slice(t);
    }
    out
}

#[test]
fn frames_lf_crlf_and_cr_events() {
    for sep in ["\n", "\r\n", "\r"] {
        let text = format!("id: 1{sep}data: a{sep}{sep}data: b{sep}data: c{sep}{sep}");
        let (events, tail) = scan(&[text.as_bytes()], 1024).unwrap();
        assert_eq!(events.len(), 2, "{sep:?}");
        assert!(tail.is_none());
        let p = parsed(&events);
        assert_eq!(p[0].id.as_deref(), Some("1"));
        assert_eq!(p[0].data.as_deref(), Some("a"));
        assert_eq!(p[1].data.as_deref(), Some("b\nc"));
    }
}

#[test]
fn event_inside_one_chunk_is_a_zero_copy_slice() {
    let chunk = Bytes::from_static(b"data: x\n\ndata: y\n\n");
    let mut scanner = SseScanner::new(1024);
    let mut events = Vec::new();
    scanner.feed(&chunk, |e| events.push(e)).unwrap();
    assert_eq!(events.len(), 2);
    let base = chunk.as_ptr() as usize;
    assert_eq!(events[0].bytes().as_ptr() as usize, base);
    assert_eq!(events[1].bytes().as_ptr() as usize, base + 9);
}

#[test]
fn comments_retry_event_and_priming_events() {
    let (events, _) = scan(
        &[b": keepalive\n\nid: p1\ndata: \n\nretry: 3000\n\nevent: message\n: note\ndata: {}\n\n"],
        1024,
    )
    .unwrap();
    assert_eq!(events.len(), 4);
    assert!(!events[0].has_fields(), "a comment block is not an event");
    let priming = events[1].parse();
    assert_eq!(priming.id.as_deref(), Some("p1"));
    assert_eq!(priming.data.as_deref(), Some(""));
    assert_eq!(events[2].parse().retry, Some(3000));
    let msg = events[3].parse();
    assert_eq!(msg.event.as_deref(), Some("message"));
    assert_eq!(msg.data.as_deref(), Some("{}"));
}

#[test]
fn field_parsing_edge_cases() {
    let (events, _) = scan(
        &[b"data\ndata:no-space\ndata:  two\nid: a\0b\nretry: 1x\nfoo: bar\n\n"],
        1024,
    )
    .unwrap();
    let e = events[0].parse();
    assert_eq!(e.data.as_deref(), Some("\nno-space\n two"));
    assert_eq!(e.id, None, "an id with NUL is ignored");
    assert_eq!(e.retry, None, "a non-numeric retry is ignored");
    assert_eq!(events[0].id(), None);
}

#[test]
fn leading_bom_is_not_content() {
    let (events, _) = scan(&[b"\xEF\xBB", b"\xBFdata: x\n\n"], 1024).unwrap();
    assert_eq!(parsed(&events), vec![SseEvent::message("x")]);
    // A BOM alone on the first line is a blank line.
    let (events, _) = scan(&[b"\xEF\xBB\xBF\ndata: y\n\n"], 1024).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(parsed(&events), vec![SseEvent::message("y")]);
}

#[test]
fn crlf_split_across_chunks_keeps_every_byte() {
    let (events, tail) = scan(&[b"data: a\r\n\r", b"\ndata: b\r\n\r\n"], 1024).unwrap();
    assert_eq!(
        parsed(&events),
        vec![SseEvent::message("a"), SseEvent::message("b")]
    );
    assert_eq!(concat(&events, &tail), b"data: a\r\n\r\ndata: b\r\n\r\n");
}

/// Regression: an empty read between a CR and its LF cleared the pending CR, so the LF was
/// taken for a blank line and dispatched an unfinished event (found by the split property test).
#[test]
fn regression_empty_chunk_between_cr_and_lf_is_not_a_blank_line() {
    let (events, tail) = scan(&[b"data: a\r", b"", b"\ndata: b"], 1024).unwrap();
    assert!(parsed(&events).is_empty(), "no blank line yet: {events:?}");
    assert_eq!(tail.as_deref(), Some(&b"data: a\r\ndata: b"[..]));
}

#[test]
fn unterminated_tail_is_returned_by_finish() {
    let (events, tail) = scan(&[b"data: a\n\ndata: partial"], 1024).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(tail.as_deref(), Some(&b"data: partial"[..]));
}

#[test]
fn oversized_event_fails_and_stays_failed() {
    let mut scanner = SseScanner::new(16);
    let err = scanner.feed(&Bytes::from_static(b"data: 0123456789abcdef"), |_| {});
    assert_eq!(err, Err(ScanError::EventTooLarge { limit: 16 }));
    assert_eq!(scanner.buffered(), 0, "the partial event is released");
    assert!(scanner.feed(&Bytes::from_static(b"\n\n"), |_| {}).is_err());
    // A complete event over the limit inside one chunk fails too.
    assert!(scan(&[b"data: 0123456789abcdef\n\n"], 16).is_err());
}

#[test]
fn boundary_tracking_for_keepalive_injection() {
    let mut scanner = SseScanner::new(1024);
    assert!(scanner.at_event_boundary());
    scanner
        .feed(&Bytes::from_static(b"data: a\n"), |_| {})
        .unwrap();
    assert!(!scanner.at_event_boundary());
    scanner.feed(&Bytes::from_static(b"\n"), |_| {}).unwrap();
    assert!(scanner.at_event_boundary());
    scanner.feed(&Bytes::from_static(b"da"), |_| {}).unwrap();
    assert!(!scanner.at_event_boundary());
}

#[test]
fn encode_round_trips_through_the_scanner() {
    let event = SseEvent {
        id: Some("s1-7".into()),
        event: Some("message".into()),
        data: Some("line1\nline2\r\nline3".into()),
        retry: Some(500),
    };
    let (events, _) = scan(&[&event.encode()], 1024).unwrap();
    let back = events[0].parse();
    assert_eq!(back.data.as_deref(), Some("line1\nline2\nline3"));
    assert_eq!(back.id, event.id);
    assert_eq!(back.retry, event.retry);
    assert_eq!(KEEPALIVE, b": keepalive\n\n");
}

fn stream_strategy() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        "[a-z]{0,12}".prop_map(|v| format!("data: {v}")),
        "[0-9a-z-]{1,8}".prop_map(|v| format!("id: {v}")),
        "[0-9]{1,5}".prop_map(|v| format!("retry: {v}")),
        "[a-z]{1,8}".prop_map(|v| format!("event: {v}")),
        "[ a-z]{0,8}".prop_map(|v| format!(":{v}")),
        Just(String::new()),
    ];
    let sep = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
    (any::<bool>(), prop::collection::vec((line, sep), 0..40)).prop_map(|(bom, lines)| {
        let mut out = if bom {
            b"\xEF\xBB\xBF".to_vec()
        } else {
            Vec::new()
        };
        for (l, s) in lines {
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out
    })
}

fn split(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for c in cuts {
        out.push(data[last..c].to_vec());
        last = c;
    }
    out.push(data[last..].to_vec());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any split of a stream into chunks yields the same events and accounts for every byte.
    #[test]
    fn any_split_gives_the_same_events(stream in stream_strategy(), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        let (whole, whole_tail) = scan(&[&stream], usize::MAX).unwrap();
        let chunks = split(&stream, &cuts);
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let (pieces, pieces_tail) = scan(&refs, usize::MAX).unwrap();
        prop_assert_eq!(parsed(&whole), parsed(&pieces));
        prop_assert_eq!(concat(&whole, &whole_tail), stream.clone());
        prop_assert_eq!(concat(&pieces, &pieces_tail), stream.clone());
        // One byte at a time, the worst case for carry handling.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let (single, single_tail) = scan(&bytes, usize::MAX).unwrap();
        prop_assert_eq!(parsed(&whole), parsed(&single));
        prop_assert_eq!(concat(&single, &single_tail), stream);
    }

    /// Arbitrary bytes never panic and never exceed the bound.
    #[test]
    fn arbitrary_bytes_are_framed_within_the_bound(data in prop::collection::vec(any::<u8>(), 0..2048), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let mut scanner = SseScanner::new(256);
        for chunk in split(&data, &cuts) {
            let mut ok = true;
            if scanner.feed(&Bytes::from(chunk), |e| { let _ = e.parse(); }).is_err() { ok = false; }
            prop_assert!(scanner.buffered() <= 256);
            if !ok { break; }
        }
    }
}
