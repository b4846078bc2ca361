//! Session table: lookup, insert and remove at 1k, 100k and 1M sessions, and the memory one
//! session costs (counted by a wrapping global allocator).

// The counting allocator is the only unsafe code in the project: it forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use shadowcat::proxy::reverse::session::SessionTable;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A table holding `n` sessions (upstream ids shaped like the UUIDs SDKs use), and their ids
/// back to back in one buffer (43 bytes each). Lookups walk that buffer in order, which the CPU
/// prefetches, so the bench measures the table's memory accesses (random, since ids are), not
/// its own: in the proxy the id comes from a request header that is already in cache.
fn filled(n: usize) -> (Arc<SessionTable>, String) {
    let table = Arc::new(SessionTable::new(usize::MAX, 2));
    let mut ids = String::with_capacity(n * 43);
    for i in 0..n {
        let up = format!("{i:08x}-0000-4000-8000-{:012x}", i * 7919);
        ids.push_str(&table.insert(i % 2, &up, None).unwrap().id);
    }
    (table, ids)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sessions");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    for n in [1_000usize, 100_000, 1_000_000] {
        let before = LIVE.load(Ordering::Relaxed);
        let (table, ids) = filled(n);
        let ids_bytes = ids.capacity();
        let empty = {
            let before = LIVE.load(Ordering::Relaxed);
            let t = SessionTable::new(1, 2);
            let size = LIVE.load(Ordering::Relaxed) - before;
            drop(t);
            size
        };
        let per =
            (LIVE.load(Ordering::Relaxed) - before - ids_bytes as isize - empty) as f64 / n as f64;
        eprintln!(
            "sessions/{n}: {per:.0} bytes per session (empty table {} KiB)",
            empty / 1024
        );

        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::new("lookup", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % n;
                table.get(&ids[i * 43..i * 43 + 43]).is_some()
            })
        });
        group.bench_with_input(BenchmarkId::new("insert", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let new: Vec<_> = (0..iters)
                    .map(|k| table.insert(0, &format!("new-{k}"), None).unwrap())
                    .collect();
                let took = start.elapsed();
                new.iter().for_each(|s| drop(table.remove(&s.id)));
                took
            })
        });
        group.bench_with_input(BenchmarkId::new("remove", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let new: Vec<_> = (0..iters)
                    .map(|k| table.insert(0, &format!("new-{k}"), None).unwrap())
                    .collect();
                let start = Instant::now();
                new.iter().for_each(|s| drop(table.remove(&s.id)));
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
