//! Session ids and the shards they pick: minting (256 bits from the OS CSPRNG), decoding, and
//! hashing a key by its own random bits (a sealed id's key is its digest). No Pingora here;
//! the table is `session.rs`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Number of shards per map (a power of two). At a million sessions a write clones a shard of
/// about 120 entries; the shard arrays take 128 KiB and all start on one shared empty map.
pub(super) const SHARDS: usize = 8192;

/// Random bytes in a minted session id: 256 bits, 43 base64url characters (visible ASCII).
pub(super) const ID_BYTES: usize = 32;
const ID_CHARS: usize = 43;

/// A downstream id, decoded: the 32 random bytes themselves. Keys live inline in the map (no
/// pointer to chase when comparing) and hash to their own bytes: every stored key is CSPRNG
/// output, so no input can make them collide, and a lookup costs no hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key(pub(super) [u8; ID_BYTES]);

impl Key {
    /// The key of a minted id (its 32 decoded bytes) or of a sealed one (`sealed_id.rs`,
    /// longer: its SHA-256, uniform like the random bytes). A sealed id is opened, so known
    /// to be the proxy's, before it is ever looked up; no client input picks its shard.
    pub(super) fn parse(id: &str) -> Option<Key> {
        if id.len() > ID_CHARS && id.len() <= crate::sealed_id::MAX_TOKEN_LEN {
            return Some(Key(Sha256::digest(id.as_bytes()).into()));
        }
        let mut out = [0u8; ID_BYTES];
        (id.len() == ID_CHARS
            && base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode_slice(id, &mut out)
                .ok()?
                == ID_BYTES)
            .then_some(Key(out))
    }

    pub(super) fn shard(&self) -> usize {
        usize::from(u16::from_le_bytes([self.0[0], self.0[1]])) & (SHARDS - 1)
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Bytes 8..16: independent of the shard bits (0..2).
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[8..16]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

/// Passes a [`Key`]'s own random bits through as its hash.
#[derive(Debug, Default)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `Key`; fold anything else in rather than drop it.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One shard of a map. Not cache-line padded: reads dominate, and a compact array of shard
/// pointers stays in cache, which matters more than writers to neighbouring shards meeting.
#[derive(Debug)]
pub(super) struct Shard<M>(pub(super) ArcSwap<M>);

pub(super) fn shards<M: Default>() -> Box<[Shard<M>]> {
    let empty = Arc::new(M::default());
    (0..SHARDS)
        .map(|_| Shard(ArcSwap::new(empty.clone())))
        .collect()
}

/// A fresh downstream session id: 256 bits from the OS CSPRNG, base64url without padding.
pub fn mint_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; ID_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(encode_id(&bytes))
}

pub(super) fn encode_id(bytes: &[u8; ID_BYTES]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
