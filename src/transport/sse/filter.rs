//! Event-level filtering that keeps pass-through bytes flowing.
//!
//! A filter must be able to drop or replace an event, so it cannot forward an event's bytes
//! before it knows the event's fate. Holding every event until its end would cost a copy of
//! every chunk (an event straddling two reads must be joined with the rest of the second read,
//! and Pingora takes one buffer per write) and would hold a slow, large event back. Instead a
//! [`Judge`] looks at the start of each event's data as soon as it arrives:
//!
//! * **pass**: nothing can touch this event (for the interceptors: no rule can match its
//!   method); its bytes flow on as they arrive, in this read and the next ones;
//! * **hold**: its bytes wait (in the scanner's bounded carry) until the event is complete,
//!   then the judge sees all of it and passes, drops or replaces it.
//!
//! When every event of a read passes, what leaves is that read itself, or a slice of it: no
//! copy. No event ever waits for a later event, only (when held) for the rest of itself.

use bytes::{Bytes, BytesMut};
use memchr::memchr2;

use super::event::RawEvent;
use super::scanner::{ScanError, SseScanner};

/// What becomes of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward the original bytes.
    Pass,
    /// Forward nothing.
    Drop,
    /// Forward the event with this `data` instead (its `id`, `event` and `retry` kept).
    Replace(String),
}

/// The first look at an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Early {
    Pass,
    Hold,
}

/// Decides events for [`filter`].
pub trait Judge {
    /// Sees the start of an event's first `data:` value and what follows it: the whole rest of
    /// the event when `complete`, else as much as has arrived. `Pass` when nothing can touch
    /// the event whatever follows.
    fn early(&mut self, data_prefix: &[u8], complete: bool) -> Early;
    /// Sees a whole event's data (`data:` lines joined with LF) when `early` said `Hold`.
    fn judge(&mut self, data: &[u8]) -> Verdict;
    /// An event that passed early while incomplete has ended: does the pass still hold for all
    /// of it (its first value and the rest of the event)? `false` ends the stream before the
    /// event's end is forwarded, so the client never dispatches it.
    fn verify(&mut self, data: &[u8]) -> bool {
        self.early(data, true) == Early::Pass
    }
}

/// Where the event in progress at a read boundary stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flow {
    /// Between events.
    #[default]
    Boundary,
    /// Passed early: its bytes so far were forwarded.
    Flowing,
    /// Its bytes so far wait in the scanner.
    Held,
    /// Between events, after a dropped or replaced event that ended with a CR at the end of
    /// the read: a lone LF starting the next read is the rest of its CRLF and goes with it.
    SwallowLf,
}

/// The outcome of one read.
#[derive(Debug, Default)]
pub struct Filtered {
    /// What to forward instead of the read; `None`: the read itself.
    pub out: Option<Bytes>,
    /// Events (blocks with fields) forwarded.
    pub events: u64,
}

enum Piece {
    /// Part of the read.
    Slice(usize, usize),
    Owned(Bytes),
}

/// Frames `chunk` with `scanner` and forwards what the judge allows; `prefix` (whole events
/// of the proxy's own) goes out first.
pub fn filter(
    scanner: &mut SseScanner,
    flow: &mut Flow,
    chunk: &Bytes,
    prefix: Vec<Bytes>,
    judge: &mut impl Judge,
) -> Result<Filtered, ScanError> {
    let carried = scanner.buffered();
    let mut pieces: Vec<Piece> = prefix.into_iter().map(Piece::Owned).collect();
    let mut pos = 0;
    let mut first = true;
    let mut events = 0;
    let mut swallow = *flow == Flow::SwallowLf;
    let mut refused = false;
    // The last event was dropped or replaced and its bytes end with CR.
    let mut changed_cr = false;
    scanner.feed(chunk, |ev: RawEvent| {
        let began_earlier = first && carried > 0;
        first = false;
        if std::mem::take(&mut swallow) && pos == 0 && ev.bytes()[..] == b"\n"[..] {
            pos = 1;
            return;
        }
        let in_chunk = if began_earlier {
            ev.bytes().len() - carried
        } else {
            ev.bytes().len()
        };
        let range = (pos, pos + in_chunk);
        pos += in_chunk;
        let state = if began_earlier { *flow } else { Flow::Boundary };
        if state == Flow::Flowing && !first_data(ev.bytes()).is_none_or(|d| judge.verify(d)) {
            refused = true;
        }
        let has_fields = ev.has_fields();
        let verdict = if !has_fields || state == Flow::Flowing {
            Verdict::Pass
        } else {
            decide(&ev, judge)
        };
        if has_fields && verdict != Verdict::Drop {
            events += 1;
        }
        changed_cr = verdict != Verdict::Pass && ev.bytes().ends_with(b"\r");
        match (verdict, state) {
            (Verdict::Pass, Flow::Held) => pieces.push(Piece::Owned(ev.into_bytes())),
            (Verdict::Pass, _) => push_slice(&mut pieces, range.0, range.1),
            (Verdict::Drop, _) => {}
            (Verdict::Replace(data), _) => {
                let mut new = ev.parse();
                new.data = Some(data);
                pieces.push(Piece::Owned(new.encode()));
            }
        }
    })?;
    if refused {
        return Err(ScanError::Refused);
    }
    // The read ends inside an event (or exactly between two).
    let began_earlier = first && carried > 0;
    let state = if began_earlier { *flow } else { Flow::Boundary };
    *flow = if scanner.at_event_boundary() {
        if changed_cr && pos == chunk.len() {
            Flow::SwallowLf
        } else {
            Flow::Boundary
        }
    } else if state == Flow::Flowing {
        push_slice(&mut pieces, pos, chunk.len());
        Flow::Flowing
    } else {
        match first_data(scanner.partial()).map(|d| judge.early(d, false)) {
            Some(Early::Pass) => {
                if state == Flow::Held {
                    // Its start waited in earlier reads: it goes out with this read's part.
                    pieces.push(Piece::Owned(Bytes::copy_from_slice(scanner.partial())));
                } else {
                    push_slice(&mut pieces, pos, chunk.len());
                }
                Flow::Flowing
            }
            _ => Flow::Held,
        }
    };
    Ok(Filtered {
        out: assemble(chunk, pieces),
        events,
    })
}

/// The verdict on a whole event (blocks without fields always pass).
pub fn verdict(ev: &RawEvent, judge: &mut impl Judge) -> Verdict {
    if !ev.has_fields() {
        return Verdict::Pass;
    }
    decide(ev, judge)
}

fn decide(ev: &RawEvent, judge: &mut impl Judge) -> Verdict {
    match first_data(ev.bytes()).map(|d| judge.early(d, true)) {
        Some(Early::Pass) => Verdict::Pass,
        // No data at all: nothing a judge of messages can act on.
        None => Verdict::Pass,
        Some(Early::Hold) => match ev.data() {
            Some(data) => judge.judge(&data),
            None => Verdict::Pass,
        },
    }
}

/// The value of the first `data:` line and everything after it, for an early look; `None`
/// when no `data:` line has started yet.
fn first_data(mut rest: &[u8]) -> Option<&[u8]> {
    rest = rest.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(rest);
    loop {
        if let Some(value) = rest.strip_prefix(b"data") {
            match value.first() {
                Some(b':') => {
                    let value = &value[1..];
                    return Some(value.strip_prefix(b" ").unwrap_or(value));
                }
                // `data` alone on its line is an empty data field.
                Some(b'\n' | b'\r') => return Some(&[]),
                // Cut short after `data`: the next read says more.
                None => return None,
                _ => {}
            }
        }
        let end = memchr2(b'\n', b'\r', rest)?;
        if end == 0 {
            // The blank line: the event has no data.
            return None;
        }
        let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
}

/// Adds a part of the read, joining it to the previous part when they touch.
fn push_slice(pieces: &mut Vec<Piece>, start: usize, end: usize) {
    if let Some(Piece::Slice(_, last)) = pieces.last_mut() {
        if *last == start {
            *last = end;
            return;
        }
    }
    pieces.push(Piece::Slice(start, end));
}

fn assemble(chunk: &Bytes, pieces: Vec<Piece>) -> Option<Bytes> {
    match pieces.as_slice() {
        [Piece::Slice(0, end)] if *end == chunk.len() => None,
        [] => Some(Bytes::new()),
        [Piece::Slice(a, b)] => Some(chunk.slice(*a..*b)),
        [Piece::Owned(b)] => Some(b.clone()),
        _ => {
            let len = pieces
                .iter()
                .map(|p| match p {
                    Piece::Slice(a, b) => b - a,
                    Piece::Owned(b) => b.len(),
                })
                .sum();
            let mut out = BytesMut::with_capacity(len);
            for p in &pieces {
                match p {
                    Piece::Slice(a, b) => out.extend_from_slice(&chunk[*a..*b]),
                    Piece::Owned(b) => out.extend_from_slice(b),
                }
            }
            Some(out.freeze())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Passes `keep…` early; drops `drop…`, replaces `edit…`, passes the rest when whole.
    struct Test;

    impl Judge for Test {
        fn early(&mut self, data: &[u8], _complete: bool) -> Early {
            if data.starts_with(b"keep") {
                Early::Pass
            } else {
                Early::Hold
            }
        }
        fn judge(&mut self, data: &[u8]) -> Verdict {
            if data.starts_with(b"drop") {
                Verdict::Drop
            } else if data.starts_with(b"edit") {
                Verdict::Replace("edited".into())
            } else {
                Verdict::Pass
            }
        }
    }

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, u64, usize) {
        let mut scanner = SseScanner::new(1 << 20);
        let mut flow = Flow::default();
        let mut out = Vec::new();
        let mut events = 0;
        let mut copies = 0;
        for c in chunks {
            let chunk = Bytes::copy_from_slice(c);
            let f = filter(&mut scanner, &mut flow, &chunk, vec![], &mut Test).unwrap();
            events += f.events;
            match f.out {
                None => out.extend_from_slice(&chunk),
                Some(o) => {
                    let (start, p) = (chunk.as_ptr() as usize, o.as_ptr() as usize);
                    let inside = p >= start && p + o.len() <= start + chunk.len();
                    copies += usize::from(!inside && !o.is_empty());
                    out.extend_from_slice(&o)
                }
            }
        }
        if let Some(tail) = scanner.finish() {
            if flow != Flow::Flowing {
                out.extend_from_slice(&tail);
            }
        }
        (out, events, copies)
    }

    const STREAM: &str = "id: 1\ndata: keep a\n\n: ping\n\ndata: drop b\r\n\r\nid: 3\nevent: message\ndata: edit c\r\n\r\ndata: other\ndata: two lines\n\ndata: keep d\r\n\r\n";
    const EXPECTED: &str = "id: 1\ndata: keep a\n\n: ping\n\nevent: message\nid: 3\ndata: edited\n\ndata: other\ndata: two lines\n\ndata: keep d\r\n\r\n";

    #[test]
    fn passes_drops_and_replaces() {
        let (out, events, _) = run(&[STREAM.as_bytes()]);
        assert_eq!(String::from_utf8(out).unwrap(), EXPECTED);
        assert_eq!(events, 4);
    }

    #[test]
    fn passing_events_flow_without_a_copy() {
        let stream = b"data: keep 1\n\ndata: keep 2 is long";
        let (out, _, copies) = run(&[&stream[..], b" and ends\n\n"]);
        assert_eq!(
            &out[..],
            b"data: keep 1\n\ndata: keep 2 is long and ends\n\n"
        );
        assert_eq!(copies, 0, "both reads left as slices of themselves");
        let mut scanner = SseScanner::new(1024);
        let mut flow = Flow::default();
        let chunk = Bytes::from_static(b"data: keep 1\n\ndata: keep 2");
        let f = filter(&mut scanner, &mut flow, &chunk, vec![], &mut Test).unwrap();
        assert!(f.out.is_none(), "the read itself went out");
        assert_eq!(flow, Flow::Flowing);
    }

    /// A judge that lets `keep` flow early but refuses it when its end says `evil`.
    struct Verifying;

    impl Judge for Verifying {
        fn early(&mut self, data: &[u8], complete: bool) -> Early {
            let evil = complete && memchr::memmem::find(data, b"evil").is_some();
            if data.starts_with(b"keep") && !evil {
                Early::Pass
            } else {
                Early::Hold
            }
        }
        fn judge(&mut self, _: &[u8]) -> Verdict {
            Verdict::Drop
        }
    }

    #[test]
    fn a_flowing_event_whose_end_fails_verification_ends_the_stream_before_its_end() {
        let mut scanner = SseScanner::new(1024);
        let mut flow = Flow::default();
        let first = Bytes::from_static(b"data: keep");
        let f = filter(&mut scanner, &mut flow, &first, vec![], &mut Verifying).unwrap();
        assert!(f.out.is_none(), "flowed");
        let rest = Bytes::from_static(b" evil\n\n");
        let err = filter(&mut scanner, &mut flow, &rest, vec![], &mut Verifying).unwrap_err();
        assert_eq!(err, ScanError::Refused);
    }

    /// Regression (found by the `sse_filter` fuzz target): a dropped event ending in CRLF, cut
    /// between its CR and LF, left the LF behind as a stray blank line.
    #[test]
    fn regression_a_dropped_crlf_event_split_at_its_cr_leaves_nothing() {
        let (out, _, _) = run(&[b"data: keep\n\ndata: drop\r\n\r", b"\ndata: keep 2\n\n"]);
        assert_eq!(&out[..], b"data: keep\n\ndata: keep 2\n\n");
        let (out, _, _) = run(&[b"data: edit\r\n\r", b"\ndata: keep\n\n"]);
        assert_eq!(&out[..], b"data: edited\n\ndata: keep\n\n");
        let (out, _, _) = run(&[b"data: keep\r\n\r", b"\ndata: keep\n\n"]);
        assert_eq!(
            &out[..],
            b"data: keep\r\n\r\ndata: keep\n\n",
            "a passed event keeps its LF"
        );
    }

    #[test]
    fn finds_the_first_data_line() {
        assert_eq!(first_data(b"id: 1\ndata: x\n"), Some(&b"x\n"[..]));
        assert_eq!(first_data(b"id: 1\r\ndata:x"), Some(&b"x"[..]));
        assert_eq!(first_data(b": c\ndata\n\n"), Some(&b""[..]));
        assert_eq!(first_data(b"id: 1\nda"), None);
        assert_eq!(first_data(b"id: 1\n\n"), None);
        assert_eq!(first_data(b"\xEF\xBB\xBFdata: y"), Some(&b"y"[..]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any split of the stream into reads forwards the same bytes.
        #[test]
        fn any_split_forwards_the_same_bytes(cuts in prop::collection::btree_set(1..STREAM.len(), 0..12)) {
            let bytes = STREAM.as_bytes();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut at = 0;
            for c in cuts {
                chunks.push(&bytes[at..c]);
                at = c;
            }
            chunks.push(&bytes[at..]);
            let (out, events, _) = run(&chunks);
            prop_assert_eq!(String::from_utf8(out).unwrap(), EXPECTED);
            prop_assert_eq!(events, 4);
        }
    }
}
