//! A bearer token a listener (or the admin endpoint) requires, kept as its digest.

/// A bearer token a listener requires. Only its SHA-256 digest is kept, so the secret never
/// shows in debug output, and comparing digests in constant time leaks neither the token's
/// bytes nor its length through timing.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken([u8; 32]);

impl BearerToken {
    pub fn new(token: &str) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(token.as_bytes()).into())
    }

    /// Does this `Authorization` header value carry the token (`Bearer <token>`)?
    pub fn admits(&self, authorization: &[u8]) -> bool {
        use sha2::Digest;
        use subtle::ConstantTimeEq;
        let Some(space) = authorization.iter().position(|b| *b == b' ') else {
            return false;
        };
        let (scheme, token) = authorization.split_at(space);
        let digest: [u8; 32] = sha2::Sha256::digest(token.trim_ascii()).into();
        scheme.eq_ignore_ascii_case(b"bearer") && bool::from(digest.ct_eq(&self.0))
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}
