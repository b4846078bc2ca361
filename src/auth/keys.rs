//! The verification keys of a JWKS, by `kid` and algorithm family. HMAC (`oct`) keys and keys
//! of unknown types are dropped on load: a resource server has no business with shared
//! secrets, and skipping them makes algorithm confusion impossible by construction.

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::AlgorithmFamily;
use jsonwebtoken::{Algorithm, DecodingKey};

/// Usable public keys.
#[derive(Default)]
pub struct Keys {
    keys: Vec<(Option<String>, AlgorithmFamily, DecodingKey)>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|(k, fam, _)| (k, fam)).collect();
        f.debug_struct("Keys").field("keys", &kids).finish()
    }
}

impl Keys {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let set: JwkSet =
            serde_json::from_str(text).map_err(|e| format!("JWKS is not valid: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let family = match jwk.algorithm {
                AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
                AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
                AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
                _ => continue,
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => keys.push((jwk.common.key_id.clone(), family, key)),
                Err(e) => {
                    tracing::warn!(kid = ?jwk.common.key_id, error = %e, "skipping unusable JWK")
                }
            }
        }
        Ok(Self { keys })
    }

    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading JWKS {}: {e}", path.display()))?;
        Self::from_json(&text)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token: the one with its `kid` (or the only key of the family when the
    /// token names none), and only if the key's family is the algorithm's.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&DecodingKey> {
        let family = alg.family();
        let mut candidates = self
            .keys
            .iter()
            .filter(|(k, fam, _)| *fam == family && (kid.is_none() || k.as_deref() == kid));
        let first = candidates.next()?;
        // Without a kid, several keys of the family would be a guess: refuse.
        (kid.is_some() || candidates.next().is_none()).then_some(&first.2)
    }
}
