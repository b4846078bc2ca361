//! Sealed session ids: sealing one (on `initialize`) and opening one (every request with a
//! session id, on any replica), with claims shaped as SDKs make them (a UUID upstream id).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use shadowcat::sealed_id::{principal_hash, Claims, Sealer};

fn bench(c: &mut Criterion) {
    let secret = b"0123456789abcdef0123456789abcdef".as_slice();
    let sealer = Sealer::new([("k1", secret)], Duration::from_secs(86_400)).unwrap();
    let now = 1_796_000_000u64;
    let claims = Claims {
        upstream: "default".into(),
        upstream_id: "3f1c2a7e-9b7d-4c1e-8a3f-0d2b6c9e5a41".into(),
        principal: Some(principal_hash(&[7u8; 32])),
        issued: now as u32,
    };
    let token = sealer.seal(&claims).unwrap();
    println!("token: {} characters", token.len());
    c.bench_function("sealed_id/seal", |b| {
        b.iter(|| sealer.seal(&claims).unwrap())
    });
    c.bench_function("sealed_id/open", |b| {
        b.iter(|| sealer.open(&token, now).unwrap())
    });
    let tampered = format!("{}A", &token[..token.len() - 1]);
    c.bench_function("sealed_id/open_tampered", |b| {
        b.iter(|| sealer.open(&tampered, now).unwrap_err())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
