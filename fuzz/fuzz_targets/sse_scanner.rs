//! Fuzzes the SSE framer: the first byte picks a read size, the rest is the stream. Framing must
//! never panic, never hold more than the bound, and (when it succeeds) account for every byte.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shadowcat::transport::sse::SseScanner;

const MAX_EVENT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else { return };
    let read = usize::from(split).max(1);
    let mut scanner = SseScanner::new(MAX_EVENT);
    let mut framed = Vec::with_capacity(stream.len());
    for chunk in stream.chunks(read) {
        let ok = scanner
            .feed(&Bytes::copy_from_slice(chunk), |e| {
                let _ = e.parse();
                let _ = e.id();
                framed.extend_from_slice(e.bytes());
            })
            .is_ok();
        assert!(scanner.buffered() <= MAX_EVENT);
        if !ok {
            return;
        }
    }
    if let Some(tail) = scanner.finish() {
        framed.extend_from_slice(&tail);
    }
    assert_eq!(framed, stream, "every byte is accounted for");
});
