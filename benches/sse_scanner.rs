//! SSE framer throughput: events of 100 B, 1 KiB and 64 KiB, fed whole-stream in 16 KiB reads
//! (the common case) and in random-sized reads (events straddling reads get copied).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shadowcat::transport::sse::SseScanner;

fn stream(event_size: usize, total: usize) -> Vec<u8> {
    let payload = "x".repeat(event_size.saturating_sub(8));
    let event = format!("data: {payload}\n\n");
    event.repeat((total / event.len()).max(1)).into_bytes()
}

/// Deterministic pseudo-random read sizes between 1 B and 32 KiB.
fn random_chunks(data: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut pos = 0;
    while pos < data.len() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed as usize % (32 * 1024)).max(1).min(data.len() - pos);
        out.push(Bytes::copy_from_slice(&data[pos..pos + len]));
        pos += len;
    }
    out
}

fn scan_all(chunks: &[Bytes]) -> u64 {
    let mut scanner = SseScanner::new(usize::MAX);
    let mut events = 0u64;
    for chunk in chunks {
        scanner
            .feed(chunk, |e| events += u64::from(e.has_fields()))
            .expect("bounded");
    }
    events
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse_scanner");
    for size in [100usize, 1024, 64 * 1024] {
        let data = stream(size, 4 * 1024 * 1024);
        group.throughput(Throughput::Bytes(data.len() as u64));
        let fixed: Vec<Bytes> = data.chunks(16 * 1024).map(Bytes::copy_from_slice).collect();
        group.bench_with_input(
            BenchmarkId::new("16KiB_reads", size),
            &fixed,
            |b, chunks| b.iter(|| scan_all(chunks)),
        );
        let random = random_chunks(&data);
        group.bench_with_input(
            BenchmarkId::new("random_reads", size),
            &random,
            |b, chunks| b.iter(|| scan_all(chunks)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
