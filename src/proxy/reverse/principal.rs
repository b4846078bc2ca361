//! Who a session belongs to: a digest of the credential (or verified client certificate) that
//! created it. No Pingora here.

use sha2::{Digest, Sha256};

/// Who created a session: a SHA-256 of the `Authorization` header value it was created with.
pub type Principal = [u8; 32];

/// The principal for a request's `Authorization` header (`None` without one).
pub fn principal_of(authorization: Option<&[u8]>) -> Option<Principal> {
    authorization.map(|v| Sha256::digest(v).into())
}

/// The principal for a verified client certificate's identity. The NUL bytes keep it apart
/// from every `Authorization` value (a header value cannot hold one), so no header can
/// claim a certificate's sessions.
pub fn principal_of_certificate(identity: &str) -> Principal {
    let mut h = Sha256::new();
    h.update(b"\0x509\0");
    h.update(identity.as_bytes());
    h.finalize().into()
}
