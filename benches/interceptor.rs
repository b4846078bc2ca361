//! Interceptor cost: rule matching (1 and 100 rules, hit and miss), and SSE pass-through with
//! 100 rules that match none of the stream's events against no rules at all.
//!
//! The 100 rules are half client-side (blocks, mocks, edits on tools nobody calls) and half
//! server-side (drops and edits on methods the stream never carries, exact and glob), so every
//! event of the stream takes the SSE interception path: framed, sniffed, and forwarded as its
//! original bytes.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shadowcat::interceptor::{
    plan_event, EventJudge, EventPlan, From, Kind, Memo, MessageView, RuleSet,
};
use shadowcat::proxy::reverse::sse::SseStream;
use shadowcat::proxy::reverse::Metrics;

fn rules(n: usize) -> RuleSet {
    let mut yaml = String::from("rules:\n");
    for i in 0..n {
        let rule = match i % 4 {
            0 => format!("  - name: block-{i}\n    match: {{method: tools/call, tool: \"tool_{i}_*\"}}\n    action: {{block: {{}}}}\n"),
            1 => format!("  - name: mock-{i}\n    match: {{method: prompts/get, tool: prompt_{i}}}\n    action: {{mock: {{result: {{}}}}}}\n"),
            2 => format!("  - name: drop-{i}\n    match: {{from: server, method: notifications/custom_{i}}}\n    action: drop\n"),
            _ => format!("  - name: edit-{i}\n    match: {{from: server, method: \"x/{i}/*\"}}\n    action: {{remove: [\"/params/secret\"]}}\n"),
        };
        yaml.push_str(&rule);
    }
    RuleSet::from_yaml(&yaml).expect("bench rules load")
}

/// 4 MiB of ~1 KiB progress notifications in 16 KiB reads.
fn stream() -> Vec<Bytes> {
    let pad = "p".repeat(900);
    let mut data = String::new();
    let mut i = 0;
    while data.len() < 4 << 20 {
        data.push_str(&format!(
            "id: {i}\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":\"t\",\"progress\":{i},\"message\":\"{pad}\"}}}}\n\n"
        ));
        i += 1;
    }
    data.as_bytes()
        .chunks(16 * 1024)
        .map(Bytes::copy_from_slice)
        .collect()
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("rule_matching");
    let hit_one = rules(1);
    let hit_many = rules(100);
    let call = |tool| MessageView {
        from: From::Client,
        kind: Kind::Request,
        method: "tools/call",
        tool: Some(tool),
        uri: None,
        upstream: None,
        params: None,
    };
    for (name, set) in [("1_rule", &hit_one), ("100_rules", &hit_many)] {
        group.bench_function(BenchmarkId::new("hit", name), |b| {
            b.iter(|| black_box(set.evaluate(black_box(&call("tool_0_delete")))))
        });
        group.bench_function(BenchmarkId::new("miss", name), |b| {
            b.iter(|| black_box(set.evaluate(black_box(&call("echo")))))
        });
        group.bench_function(BenchmarkId::new("fast_path_miss", name), |b| {
            b.iter(|| {
                black_box(set.may_match(
                    From::Server,
                    Kind::Notification,
                    black_box("notifications/progress"),
                ))
            })
        });
    }
    group.finish();
}

fn sse_passthrough(c: &mut Criterion) {
    let chunks = stream();
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let metrics = Metrics::new().expect("metrics");
    let many = rules(100);
    let mut group = c.benchmark_group("sse_passthrough");
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("no_rules", |b| {
        b.iter(|| {
            let mut s = SseStream::new(1 << 20);
            for chunk in &chunks {
                s.on_chunk(chunk, &metrics).expect("framed");
            }
            s.events
        })
    });
    group.bench_function("100_rules_none_match", |b| {
        b.iter(|| {
            let mut s = SseStream::new(1 << 20);
            let mut memo = Memo::new();
            let mut forwarded = 0;
            for chunk in &chunks {
                let mut judge = EventJudge {
                    rules: &many,
                    calls: &[],
                    upstream: None,
                    memo: &mut memo,
                    probe: false,
                    hits: Vec::new(),
                };
                let out = s
                    .filter_chunk(chunk, &metrics, Vec::new(), &mut judge)
                    .expect("framed");
                forwarded += out.map_or(chunk.len(), |o| o.len());
            }
            assert_eq!(forwarded, total, "every byte forwarded");
            s.events
        })
    });
    // The per-event decision alone, for the record.
    let event = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#;
    group.throughput(Throughput::Elements(1));
    group.bench_function("plan_event_miss", |b| {
        b.iter(|| {
            let mut hits = Vec::new();
            let plan = plan_event(&many, black_box(event), &[], None, &mut hits);
            assert_eq!(plan, EventPlan::Pass);
        })
    });
    group.finish();
}

criterion_group!(benches, matching, sse_passthrough);
criterion_main!(benches);
