//! Fuzzes the SSE event filter: the first byte picks a read size, the rest is the stream. Any
//! split into reads must forward exactly what one whole read forwards, and never panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shadowcat::transport::sse::{filter, Early, Flow, Judge, SseScanner, Verdict};

/// Passes data starting with `k` early, drops `d…`, replaces `r…`, passes the rest.
struct ByFirstByte;

impl Judge for ByFirstByte {
    fn early(&mut self, data: &[u8], _complete: bool) -> Early {
        if data.first() == Some(&b'k') {
            Early::Pass
        } else {
            Early::Hold
        }
    }
    fn judge(&mut self, data: &[u8]) -> Verdict {
        match data.first() {
            Some(b'd') => Verdict::Drop,
            Some(b'r') => Verdict::Replace("new".into()),
            _ => Verdict::Pass,
        }
    }
}

fn run(stream: &[u8], read: usize) -> Option<Vec<u8>> {
    let mut scanner = SseScanner::new(1 << 16);
    let mut flow = Flow::default();
    let mut out = Vec::new();
    for piece in stream.chunks(read) {
        let chunk = Bytes::copy_from_slice(piece);
        let f = filter(&mut scanner, &mut flow, &chunk, Vec::new(), &mut ByFirstByte).ok()?;
        out.extend_from_slice(f.out.as_deref().unwrap_or(&chunk));
    }
    if let Some(tail) = scanner.finish() {
        if flow != Flow::Flowing {
            out.extend_from_slice(&tail);
        }
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else { return };
    let whole = run(stream, stream.len().max(1));
    let split = run(stream, usize::from(split).max(1));
    if let (Some(a), Some(b)) = (whole, split) {
        assert_eq!(a, b, "the split changed what was forwarded");
    }
});
