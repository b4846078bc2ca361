use super::*;
use proptest::prelude::*;

const DAY: Duration = Duration::from_secs(86_400);
const NOW: u64 = 1_796_000_000;
const SECRET_A: &[u8] = b"0123456789abcdef0123456789abcdef-a";
const SECRET_B: &[u8] = b"0123456789abcdef0123456789abcdef-b";

fn claims() -> Claims {
    Claims {
        upstream: "default".into(),
        upstream_id: "3f1c2a7e-9b7d-4c1e-8a3f-0d2b6c9e5a41".into(),
        principal: Some(principal_hash(&[7u8; 32])),
        issued: NOW as u32,
    }
}

fn sealer(keys: &[(&str, &[u8])]) -> Sealer {
    Sealer::new(keys.iter().copied(), DAY).unwrap()
}

#[test]
fn round_trip_and_hidden_upstream_id() {
    let s = sealer(&[("k1", SECRET_A)]);
    let token = s.seal(&claims()).unwrap();
    assert!(token.len() <= MAX_TOKEN_LEN, "{} chars", token.len());
    assert!(token.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    assert!(
        !token.contains("3f1c2a7e"),
        "the upstream's id is never readable"
    );
    assert_eq!(s.open(&token, NOW).unwrap(), claims());
    // Fresh nonces: the same claims never give the same token.
    assert_ne!(token, s.seal(&claims()).unwrap());
}

#[test]
fn sessions_without_a_principal() {
    let s = sealer(&[("k1", SECRET_A)]);
    let anon = Claims {
        principal: None,
        ..claims()
    };
    assert_eq!(s.open(&s.seal(&anon).unwrap(), NOW).unwrap(), anon);
}

#[test]
fn rotation_first_seals_all_open() {
    let old = sealer(&[("k1", SECRET_A)]);
    let rotated = sealer(&[("k2", SECRET_B), ("k1", SECRET_A)]);
    let dropped = sealer(&[("k2", SECRET_B)]);
    let before = old.seal(&claims()).unwrap();
    assert_eq!(rotated.open(&before, NOW).unwrap(), claims());
    let after = rotated.seal(&claims()).unwrap();
    assert_eq!(rotated.sealing_key_id(), "k2");
    assert_eq!(dropped.open(&after, NOW).unwrap(), claims());
    assert_eq!(dropped.open(&before, NOW), Err(OpenError::UnknownKey));
    assert_eq!(old.open(&after, NOW), Err(OpenError::UnknownKey));
}

#[test]
fn same_key_id_other_secret_does_not_open() {
    let a = sealer(&[("k1", SECRET_A)]);
    let b = sealer(&[("k1", SECRET_B)]);
    assert_eq!(
        b.open(&a.seal(&claims()).unwrap(), NOW),
        Err(OpenError::Tampered)
    );
}

#[test]
fn expiry_by_max_age() {
    let s = sealer(&[("k1", SECRET_A)]);
    let token = s.seal(&claims()).unwrap();
    assert!(s.open(&token, NOW + DAY.as_secs() - 1).is_ok());
    assert_eq!(s.open(&token, NOW + DAY.as_secs()), Err(OpenError::Expired));
}

#[test]
fn malformed_tokens() {
    let s = sealer(&[("k1", SECRET_A)]);
    for bad in [
        "",
        "a",
        "not base64 !",
        "AQJrMQ",
        &"A".repeat(MAX_TOKEN_LEN + 1),
        // a random-style 43-character id (the format without keys)
        "q8b3WJ4o3cC1I5m2dG6gkVx0bqk2wq3uJm1yXnL9aZc",
    ] {
        assert!(s.open(bad, NOW).is_err(), "{bad:?}");
    }
}

#[test]
fn too_long_to_seal() {
    let s = sealer(&[("k1", SECRET_A)]);
    let long = Claims {
        upstream_id: "x".repeat(100),
        ..claims()
    };
    assert_eq!(s.seal(&long), Err(SealError::TooLong));
    // A 64-hex-digit upstream id (as some servers issue) behind an 8-character name fits.
    let hex = Claims {
        upstream: "upstream".into(),
        upstream_id: "f".repeat(64),
        ..claims()
    };
    let s8 = sealer(&[("k2026-12", SECRET_A)]);
    let token = s8.seal(&hex).unwrap();
    assert!(token.len() <= MAX_TOKEN_LEN, "{}", token.len());
    assert_eq!(s8.open(&token, NOW).unwrap(), hex);
}

#[test]
fn key_validation() {
    let short: &[u8] = b"short";
    assert_eq!(
        Sealer::new([("k1", short)], DAY).unwrap_err(),
        KeyError::ShortSecret
    );
    assert_eq!(
        Sealer::new([("", SECRET_A)], DAY).unwrap_err(),
        KeyError::BadId
    );
    assert_eq!(
        Sealer::new([("k.1", SECRET_A)], DAY).unwrap_err(),
        KeyError::BadId
    );
    assert_eq!(
        Sealer::new([("toolongid", SECRET_A)], DAY).unwrap_err(),
        KeyError::BadId
    );
    assert_eq!(
        Sealer::new([("k1", SECRET_A), ("k1", SECRET_B)], DAY).unwrap_err(),
        KeyError::DuplicateId("k1".into())
    );
    assert_eq!(
        Sealer::new(std::iter::empty(), DAY).unwrap_err(),
        KeyError::NoKeys
    );
    // Debug never shows key material.
    let dbg = format!("{:?}", sealer(&[("k1", SECRET_A)]));
    assert!(dbg.contains("k1") && !dbg.contains("cipher"), "{dbg}");
}

proptest! {
    /// Any claims that fit round-trip exactly.
    #[test]
    fn any_claims_round_trip(
        upstream in "[a-z0-9-]{1,16}",
        upstream_id in "[!-~]{1,48}",
        principal in proptest::option::of(any::<[u8; 16]>()),
        age in 0u64..86_400,
    ) {
        let s = sealer(&[("k1", SECRET_A)]);
        let c = Claims { upstream, upstream_id, principal, issued: (NOW - age) as u32 };
        let token = s.seal(&c).unwrap();
        prop_assert!(token.len() <= MAX_TOKEN_LEN);
        prop_assert_eq!(s.open(&token, NOW).unwrap(), c);
    }

    /// Flipping any bit of any byte of a token makes it unopenable.
    #[test]
    fn any_tampering_is_refused(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let s = sealer(&[("k1", SECRET_A)]);
        let token = s.seal(&claims()).unwrap();
        let mut raw = B64.decode(&token).unwrap();
        let i = pos.index(raw.len());
        raw[i] ^= 1 << bit;
        prop_assert!(s.open(&B64.encode(&raw), NOW).is_err());
    }

    /// Arbitrary text never panics and never opens.
    #[test]
    fn arbitrary_text_never_opens(text in "[A-Za-z0-9_-]{0,220}") {
        let s = sealer(&[("k1", SECRET_A)]);
        prop_assert!(s.open(&text, NOW).is_err());
    }
}
