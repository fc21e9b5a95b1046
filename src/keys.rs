//! Algorithms and keys. The token's `alg` header is only ever used to pick
//! among the algorithms the operator allowed; it never selects a key type on
//! its own (RFC 8725 section 3.1).

use jwt_compact::alg::{Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key};
use jwt_compact::{Algorithm as JwsAlgorithm, AlgorithmSignature};

use crate::error::GateError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Hs256,
    Hs384,
    Hs512,
}

impl Algorithm {
    pub const ALL: &'static [Algorithm] = &[Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512];

    /// Exact, case-sensitive match on the JOSE name (RFC 7518 names are
    /// case-sensitive); `none` and unknown names give `None`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .iter()
            .copied()
            .find(|alg| alg.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
        }
    }

    pub fn is_hmac(self) -> bool {
        matches!(self, Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512)
    }
}

/// Checks a JWS signature. Asynchronous so that an implementation can call
/// WebCrypto (`crypto.subtle.verify` returns a Promise) without the core
/// knowing anything about JavaScript.
#[allow(async_fn_in_trait)] // Worker futures are !Send; no Send bound wanted.
pub trait SignatureVerifier {
    /// `Ok(())` when `signature` is valid for `signing_input` under the key
    /// the token names; `UnknownKey` or `SignatureInvalid` otherwise.
    async fn verify(
        &self,
        alg: Algorithm,
        key_id: Option<&str>,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), GateError>;
}

/// The `JWT_SECRET` prepared once for each HMAC algorithm.
#[derive(Clone)]
pub struct HmacKeys {
    hs256: Hs256Key,
    hs384: Hs384Key,
    hs512: Hs512Key,
}

impl std::fmt::Debug for HmacKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKeys(<redacted>)")
    }
}

impl HmacKeys {
    pub fn new(secret: &[u8]) -> HmacKeys {
        HmacKeys {
            hs256: Hs256Key::new(secret),
            hs384: Hs384Key::new(secret),
            hs512: Hs512Key::new(secret),
        }
    }

    /// Constant-time HMAC check (jwt-compact compares `CtOutput`s).
    pub fn verify(&self, alg: Algorithm, signing_input: &[u8], signature: &[u8]) -> bool {
        match alg {
            Algorithm::Hs256 => check(Hs256, &self.hs256, signing_input, signature),
            Algorithm::Hs384 => check(Hs384, &self.hs384, signing_input, signature),
            Algorithm::Hs512 => check(Hs512, &self.hs512, signing_input, signature),
        }
    }
}

fn check<A: JwsAlgorithm>(alg: A, key: &A::VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    // `try_from_slice` of an HMAC signature panics on a wrong length, so the
    // length is checked first.
    if A::Signature::LENGTH.is_some_and(|len| len.get() != signature.len()) {
        return false;
    }
    match A::Signature::try_from_slice(signature) {
        Ok(signature) => alg.verify_signature(&signature, key, message),
        Err(_) => false,
    }
}

/// Verifies HMAC tokens in pure Rust. Measured faster than a WebCrypto round
/// trip for HS* (see README, "Performance"), and synchronous underneath.
impl SignatureVerifier for Option<HmacKeys> {
    async fn verify(
        &self,
        alg: Algorithm,
        _key_id: Option<&str>,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), GateError> {
        let keys = self.as_ref().ok_or(GateError::UnknownKey)?;
        if keys.verify(alg, signing_input, signature) {
            Ok(())
        } else {
            Err(GateError::SignatureInvalid)
        }
    }
}
