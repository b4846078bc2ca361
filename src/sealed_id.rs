//! Sealed session ids: the client's `Mcp-Session-Id` as an AEAD token that any replica holding
//! the keys can open, so a session is routed without shared state.
//!
//! A token holds the upstream's name, the upstream's own session id, a hash of the principal
//! (16 bytes of its SHA-256), the issue time and the key id; the upstream's id is encrypted
//! (never readable by the client) and every bit is authenticated. AES-256-GCM (RustCrypto,
//! AES-NI and carry-less multiply detected at run time): about ten times faster than
//! XChaCha20-Poly1305 here at this size (measured: `benches/README.md`). Its 96-bit nonces
//! are drawn at random on every replica, safe up to 2^32 tokens per key (NIST SP 800-38D),
//! a billion sessions a year for four years; keys rotate long before.
//!
//! Layout, base64url without padding (visible ASCII, as MCP requires of session ids):
//!
//! ```text
//! version (1) | key id length (1) | key id | nonce (12) | ciphertext | tag (16)
//! plaintext: issued, Unix seconds (u32 BE) | flags (1) | principal hash (16)
//!            | upstream name length (1) | name | upstream id length (1) | id
//! ```
//!
//! The header (version, key id) is the associated data, so a token cannot be moved to another
//! key. The first key seals, every key opens: add a new key first, keep the old one until its
//! tokens are past `sessions.max_age`, then drop it. A token is at most [`MAX_TOKEN_LEN`]
//! characters; what would not fit is refused when sealing ([`SealError::TooLong`]).
//! No Pingora here.

use std::time::Duration;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use base64::Engine;
use sha2::{Digest, Sha256};

/// The longest token sealed or opened (characters): session ids stay under 200 bytes.
pub const MAX_TOKEN_LEN: usize = 199;
/// The longest key id (characters of `A-Z a-z 0-9 - _`).
pub const MAX_KEY_ID_LEN: usize = 8;
/// The shortest secret accepted (bytes): it is the whole of the key's strength.
pub const MIN_SECRET_LEN: usize = 32;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Bytes of the principal's SHA-256 kept in a token.
pub const PRINCIPAL_HASH_LEN: usize = 16;
const FLAG_PRINCIPAL: u8 = 1;
/// Raw bytes that base64url-encode to at most [`MAX_TOKEN_LEN`] characters.
const MAX_RAW: usize = MAX_TOKEN_LEN * 3 / 4;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The first bytes of a principal's SHA-256, as a token holds them.
pub type PrincipalHash = [u8; PRINCIPAL_HASH_LEN];

/// What a token says about its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The upstream's configured name.
    pub upstream: String,
    /// The upstream's own `Mcp-Session-Id`.
    pub upstream_id: String,
    /// The principal's hash, when the session has one.
    pub principal: Option<PrincipalHash>,
    /// When the token was sealed, Unix seconds.
    pub issued: u32,
}

/// Why a token was not opened. The proxy answers all of them alike (404), so a client learns
/// nothing; the kinds are for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a sealed session id")]
    Malformed,
    #[error("sealed with a key this proxy does not hold")]
    UnknownKey,
    #[error("does not authenticate (tampered, or another secret under the same key id)")]
    Tampered,
    #[error("older than sessions.max_age")]
    Expired,
}

/// Why a token could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("upstream name and session id too long for a sealed id of at most {MAX_TOKEN_LEN} characters")]
    TooLong,
    #[error("the operating system's random source failed")]
    NoRandomness,
}

/// A configured key id that is not 1 to [`MAX_KEY_ID_LEN`] characters of `A-Z a-z 0-9 - _`,
/// or a secret shorter than [`MIN_SECRET_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key id must be 1 to {MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 - _")]
    BadId,
    #[error("secret must be at least {MIN_SECRET_LEN} bytes (e.g. `openssl rand -base64 32`)")]
    ShortSecret,
    #[error("no keys")]
    NoKeys,
    #[error("key id {0:?} appears twice")]
    DuplicateId(String),
}

struct SealKey {
    id: Box<[u8]>,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        f.debug_struct("SealKey")
            .field("id", &String::from_utf8_lossy(&self.id))
            .finish_non_exhaustive()
    }
}

/// Seals and opens session ids: the first key seals, all open.
#[derive(Debug)]
pub struct Sealer {
    keys: Vec<SealKey>,
    max_age: Duration,
}

/// The 256-bit key for a secret: SHA-256 over a domain label and the secret, so the same
/// secret used elsewhere (another product, another purpose) gives another key.
fn derive_key(secret: &[u8]) -> Key<Aes256Gcm> {
    let mut h = Sha256::new();
    h.update(b"shadowcat sealed session id v1\0");
    h.update(secret);
    h.finalize()
}

/// The principal hash a token holds for a principal's full SHA-256 (or any 32-byte digest).
pub fn principal_hash(principal: &[u8; 32]) -> PrincipalHash {
    let mut out = [0u8; PRINCIPAL_HASH_LEN];
    out.copy_from_slice(&principal[..PRINCIPAL_HASH_LEN]);
    out
}

// === impl Sealer ===

impl Sealer {
    /// `keys` as `(id, secret)`, the sealing key first; tokens older than `max_age` are refused.
    pub fn new<'a>(
        keys: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        max_age: Duration,
    ) -> Result<Self, KeyError> {
        let mut out: Vec<SealKey> = Vec::new();
        for (id, secret) in keys {
            let id_ok = (1..=MAX_KEY_ID_LEN).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !id_ok {
                return Err(KeyError::BadId);
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(KeyError::ShortSecret);
            }
            if out.iter().any(|k| &*k.id == id.as_bytes()) {
                return Err(KeyError::DuplicateId(id.to_owned()));
            }
            out.push(SealKey {
                id: id.as_bytes().into(),
                cipher: Aes256Gcm::new(&derive_key(secret)),
            });
        }
        if out.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(Self { keys: out, max_age })
    }

    /// The id of the key that seals.
    pub fn sealing_key_id(&self) -> &str {
        std::str::from_utf8(&self.keys[0].id).unwrap_or_default()
    }

    /// How long a token is accepted after it was sealed.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// A token for `claims`, sealed with the first key under a fresh random nonce.
    pub fn seal(&self, claims: &Claims) -> Result<String, SealError> {
        let key = &self.keys[0];
        let (name, up_id) = (claims.upstream.as_bytes(), claims.upstream_id.as_bytes());
        let header_len = 2 + key.id.len();
        let plain_len = 4 + 1 + PRINCIPAL_HASH_LEN + 1 + name.len() + 1 + up_id.len();
        let raw_len = header_len + NONCE_LEN + plain_len + TAG_LEN;
        if raw_len > MAX_RAW || name.len() > 255 || up_id.len() > 255 {
            return Err(SealError::TooLong);
        }
        let mut raw = Vec::with_capacity(raw_len);
        raw.push(VERSION);
        raw.push(key.id.len() as u8);
        raw.extend_from_slice(&key.id);
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError::NoRandomness)?;
        raw.extend_from_slice(&nonce);
        let body = raw.len();
        raw.extend_from_slice(&claims.issued.to_be_bytes());
        raw.push(if claims.principal.is_some() {
            FLAG_PRINCIPAL
        } else {
            0
        });
        raw.extend_from_slice(&claims.principal.unwrap_or_default());
        raw.push(name.len() as u8);
        raw.extend_from_slice(name);
        raw.push(up_id.len() as u8);
        raw.extend_from_slice(up_id);
        let (head, rest) = raw.split_at_mut(body);
        let tag = key
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &head[..header_len], rest)
            .map_err(|_| SealError::TooLong)?;
        raw.extend_from_slice(&tag);
        Ok(B64.encode(&raw))
    }

    /// The claims of a token this proxy's keys sealed, if it is younger than `max_age` at
    /// `now` (Unix seconds). Anything else is an [`OpenError`].
    pub fn open(&self, token: &str, now: u64) -> Result<Claims, OpenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(OpenError::Malformed);
        }
        let mut buf = [0u8; MAX_RAW + 3];
        let n = B64
            .decode_slice(token, &mut buf)
            .map_err(|_| OpenError::Malformed)?;
        let raw = &mut buf[..n];
        if raw.len() < 2 || raw[0] != VERSION {
            return Err(OpenError::Malformed);
        }
        let header_len = 2 + usize::from(raw[1]);
        if raw.len() < header_len + NONCE_LEN + TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let key = self
            .keys
            .iter()
            .find(|k| *k.id == raw[2..header_len])
            .ok_or(OpenError::UnknownKey)?;
        let (head, rest) = raw.split_at_mut(header_len);
        let (nonce, rest) = rest.split_at_mut(NONCE_LEN);
        let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        key.cipher
            .decrypt_in_place_detached(Nonce::from_slice(nonce), head, body, Tag::from_slice(tag))
            .map_err(|_| OpenError::Tampered)?;
        let claims = parse_plain(body).ok_or(OpenError::Malformed)?;
        if now.saturating_sub(u64::from(claims.issued)) >= self.max_age.as_secs() {
            return Err(OpenError::Expired);
        }
        Ok(claims)
    }
}

/// The plaintext's fields; `None` for a layout no sealer wrote (only reachable with a key).
fn parse_plain(body: &[u8]) -> Option<Claims> {
    let issued = u32::from_be_bytes(body.get(..4)?.try_into().ok()?);
    let flags = *body.get(4)?;
    let hash: PrincipalHash = body.get(5..5 + PRINCIPAL_HASH_LEN)?.try_into().ok()?;
    let rest = &body[5 + PRINCIPAL_HASH_LEN..];
    let (name, rest) = take_str(rest)?;
    let (up_id, rest) = take_str(rest)?;
    rest.is_empty().then(|| Claims {
        upstream: name.to_owned(),
        upstream_id: up_id.to_owned(),
        principal: (flags & FLAG_PRINCIPAL != 0).then_some(hash),
        issued,
    })
}

fn take_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let len = usize::from(*bytes.first()?);
    let s = std::str::from_utf8(bytes.get(1..1 + len)?).ok()?;
    Some((s, &bytes[1 + len..]))
}

#[cfg(test)]
#[path = "sealed_id_tests.rs"]
mod tests;
